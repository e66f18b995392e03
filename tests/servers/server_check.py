"""Is the server at a URL one we may use: does it serve this model with this key?

Rule: answering ``/health`` is not enough. People run their own vLLM on :8000 with
another model or key; the demo and the tests use a server only if ``GET {base}/models``
with the key answers 200 and lists the model. Otherwise they say why and start their own.

    KEY=test-key python server_check.py http://127.0.0.1:8000/v1 tiny-model

Exit 0: use it; 1: something else answers there; 3: nothing listens there. Why, on stdout.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    usable: bool
    reason: str
    occupied: bool = True  # False: nothing listens there (the port is free to start a server on)


def _shown(ids: Sequence[str], most: int = 3) -> str:
    """Model ids as a short, printable list (they come from the server: cut and escaped).

    >>> _shown(["a", "b"]), _shown(["a", "b", "c", "d"]), _shown([]), _shown(["x\\x1b[31m"])
    ('a, b', 'a, b, c and 1 more', 'no model', "'x\\\\x1b[31m'")
    """
    if not ids:
        return "no model"
    shown = [i[:60] if i.isprintable() else ascii(i[:60]) for i in ids[:most]]
    more = f" and {len(ids) - most} more" if len(ids) > most else ""
    return ", ".join(shown) + more


def served_ids(body: bytes) -> list[str] | None:
    """The model ids of an OpenAI ``/models`` answer; None if the body is not one.

    >>> served_ids(b'{"object": "list", "data": [{"id": "tiny-model"}, {"id": 7}]}')
    ['tiny-model']
    >>> served_ids(b"<html>"), served_ids(b'{"data": 3}')
    (None, None)
    """
    try:
        document = json.loads(body)
    except ValueError:
        return None
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, list):
        return None
    return [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]


def check(base_url: str, key: str, model: str, timeout: float = 5.0) -> Verdict:
    """Whether ``base_url`` (``http://host:port/v1``) serves ``model`` to ``key``, and why not."""
    request = urllib.request.Request(f"{base_url.rstrip('/')}/models", headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(1 << 20)
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            return Verdict(False, f"{base_url} wants another API key (GET /models answered {error.code})")
        return Verdict(False, f"{base_url} is not an OpenAI-compatible server serving {model} (GET /models answered {error.code})")
    except urllib.error.URLError as error:
        if isinstance(error.reason, ConnectionRefusedError):
            return Verdict(False, f"nothing listens on {base_url}", occupied=False)
        return Verdict(False, f"{base_url} did not answer GET /models ({error.reason})")
    except (OSError, ValueError) as error:
        return Verdict(False, f"{base_url} did not answer GET /models ({type(error).__name__})")
    ids = served_ids(body)
    if ids is None:
        return Verdict(False, f"{base_url} answered GET /models with something other than a model list")
    if model not in ids:
        return Verdict(False, f"{base_url} serves {_shown(ids)}, not {model}")
    return Verdict(True, f"{base_url} serves {model} with the key")


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2:
        print("usage: KEY=... server_check.py BASE_URL MODEL", file=sys.stderr)
        return 2
    verdict = check(argv[0], os.environ.get("KEY", ""), argv[1])
    print(verdict.reason)
    return 0 if verdict.usable else 1 if verdict.occupied else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
