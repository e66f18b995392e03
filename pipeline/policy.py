"""How a request to one provider is sent: timeouts, size caps, retries, TLS. Pure data.

Rules (defaults here, per provider in the config):
- ``timeoutSeconds`` sets connect and idle-read together; ``connectTimeoutSeconds``
  and ``readTimeoutSeconds`` set each one and win over it.
- ``totalTimeoutSeconds`` is a deadline for one attempt, from the request going out
  to the last byte: a server that trickles a byte at a time, floods informational
  responses or never stops streaming is cut off by it.
- ``maxResponseBytes`` caps what one answer may be, before and after decompression.
- ``maxRetries`` is how often one model is retried before the next fallback.
- ``tls``: ``caFile`` adds a CA bundle to trust; ``verify: false`` turns
  verification off (a warning says so on every use).
"""

from __future__ import annotations

import msgspec

from pipeline.config import ProviderConfig

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 300.0
DEFAULT_TOTAL_TIMEOUT = 900.0
DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_RETRIES = 2
MAX_INFORMATIONAL_RESPONSES = 16


class SendPolicy(msgspec.Struct, frozen=True):
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    total_timeout: float = DEFAULT_TOTAL_TIMEOUT
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    max_retries: int = DEFAULT_MAX_RETRIES
    tls_verify: bool = True
    tls_ca_file: str | None = None


DEFAULT_POLICY = SendPolicy()


def policy_for(provider: ProviderConfig) -> SendPolicy:
    """The send policy a provider's config asks for.

    >>> from pipeline.config import ProviderConfig
    >>> p = policy_for(ProviderConfig(base_url="http://h/v1", timeout_seconds=5, read_timeout_seconds=60))
    >>> p.connect_timeout, p.read_timeout, p.max_retries
    (5, 60, 2)
    """

    def given(value: object, default: float) -> float:
        return value if isinstance(value, (int, float)) else default

    both = provider.timeout_seconds
    return SendPolicy(
        connect_timeout=given(provider.connect_timeout_seconds, given(both, DEFAULT_CONNECT_TIMEOUT)),
        read_timeout=given(provider.read_timeout_seconds, given(both, DEFAULT_READ_TIMEOUT)),
        total_timeout=given(provider.total_timeout_seconds, DEFAULT_TOTAL_TIMEOUT),
        max_response_bytes=provider.max_response_bytes if isinstance(provider.max_response_bytes, int) else DEFAULT_MAX_RESPONSE_BYTES,
        max_retries=provider.max_retries if isinstance(provider.max_retries, int) else DEFAULT_MAX_RETRIES,
        tls_verify=provider.tls.verify,
        tls_ca_file=provider.tls.ca_file if isinstance(provider.tls.ca_file, str) else None,
    )
