"""Signed webhooks, pure: the signature header, its check, and when to try a failed one again.

`X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">` with the subscription's secret
(docs/events.md, Webhooks). A receiver recomputes the HMAC over the raw body it received, compares
in constant time, and refuses an old `t` to stop replays.
"""

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

SIGNATURE_HEADER = "X-Signature"
SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh subscription secret, shown to the council once."""
    return "whsec_" + secrets.token_urlsafe(SECRET_BYTES)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-Signature` header's value for `body` sent at `timestamp` (unix seconds)."""
    signed = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class BadSignatureError(ValueError):
    """A webhook whose signature header is missing parts, stale or does not match its body."""


@dataclass(frozen=True, slots=True)
class SignedAt:
    timestamp: int
    digests: tuple[str, ...]


def parse_signature(header: str) -> SignedAt:
    timestamp: int | None = None
    digests: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            digests.append(value)
    if timestamp is None or not digests:
        raise BadSignatureError("the signature needs t=<unix seconds> and v1=<hex digest>")
    return SignedAt(timestamp, tuple(digests))


def verify(secret: str, header: str, body: bytes, *, now: int, tolerance_s: int = 300) -> None:
    """Raise BadSignatureError unless `header` signs `body` with `secret` within the tolerance."""
    signed = parse_signature(header)
    if abs(now - signed.timestamp) > tolerance_s:
        raise BadSignatureError(f"the signature's time is more than {tolerance_s}s from now")
    expected = signature(secret, signed.timestamp, body).rpartition("v1=")[2]
    if not any(hmac.compare_digest(expected, digest) for digest in signed.digests):
        raise BadSignatureError("the signature does not match the body")


def retry_delay(backoff: Sequence[float], attempts_made: int) -> float | None:
    """Seconds until the next try after `attempts_made` failed tries; None once they are all spent.

    `backoff[i]` is the wait after the (i+1)th failure, so a delivery is tried len(backoff) + 1
    times in all and then dead-lettered.
    """
    if attempts_made < 1:
        raise ValueError(f"attempts_made must be at least 1, got {attempts_made}")
    if attempts_made > len(backoff):
        return None
    return backoff[attempts_made - 1]
