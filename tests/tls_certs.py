"""A self-signed certificate for TLS tests (openssl, one day, RSA 2048)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def self_signed(folder: Path, alt_names: str = "DNS:localhost,IP:127.0.0.1") -> tuple[Path, Path]:
    """``(key, cert)``, written to ``folder``: a certificate for ``/CN=localhost`` and ``alt_names``."""
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1"]
        + ["-addext", f"subjectAltName={alt_names}", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return key, cert
