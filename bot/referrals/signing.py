"""Sign and verify referral HTTP bodies: `X-Hubbot-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<raw body>">`.

While a secret rotates, a request carries one `v1=` value per secret ("v1=<new>,v1=<old>"); a receiver
accepts the request when any value matches any secret it knows. Receivers reject timestamps more than
`tolerance` seconds (default 300) away from their clock, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

SCHEME = "v1"
TIMESTAMP_HEADER = "X-Hubbot-Timestamp"
SIGNATURE_HEADER = "X-Hubbot-Signature"
DEFAULT_TOLERANCE_S = 300
MAX_SIGNATURES = 8  # more values than this in one header is refused (it would only cost us CPU)
MAX_TIMESTAMP_DIGITS = 12


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """`v1=<hex>`: HMAC-SHA256 over the ASCII timestamp, a dot and the raw body bytes."""
    message = str(int(timestamp)).encode("ascii") + b"." + body
    return f"{SCHEME}={hmac.new(secret, message, hashlib.sha256).hexdigest()}"


def signature_header(secrets: Sequence[bytes], timestamp: int, body: bytes) -> str:
    """One `v1=` value per secret, newest first, comma-separated."""
    if not secrets:
        raise ValueError("signature_header needs at least one secret")
    return ",".join(sign(secret, timestamp, body) for secret in secrets)


def parse_timestamp(value: str | None) -> int | None:
    """The header's unix seconds, or None when it is missing or not plain digits."""
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit() or not text.isascii() or len(text) > MAX_TIMESTAMP_DIGITS:
        return None
    return int(text)


def _candidates(header: str) -> list[str] | None:
    values = []
    for item in header.split(","):
        scheme, sep, digest = item.strip().partition("=")
        if not sep:
            continue
        if scheme.strip() == SCHEME:
            values.append(digest.strip())
    if len(values) > MAX_SIGNATURES:
        return None
    return values


def verify(
    header: str | None,
    timestamp_header: str | None,
    body: bytes,
    secrets: Sequence[bytes],
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE_S,
) -> bool:
    """True when the timestamp is within `tolerance` of `now` and a `v1=` value matches one of `secrets`.

    Values of unknown schemes are ignored (a later `v2=` can be added beside `v1=`); every comparison
    is constant-time.
    """
    timestamp = parse_timestamp(timestamp_header)
    if header is None or timestamp is None or not secrets:
        return False
    if abs(float(now) - timestamp) > tolerance:
        return False
    candidates = _candidates(header)
    if not candidates:
        return False
    matched = False
    for secret in secrets:
        expected = sign(secret, timestamp, body).partition("=")[2].encode("ascii")
        for candidate in candidates:
            # compare_digest on bytes: a non-ASCII candidate cannot raise, it just does not match
            matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    return matched
