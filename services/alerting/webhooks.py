"""Signed webhooks, pure: Standard Webhooks signatures, their check, and when to try again.

Every webhook is signed as the Standard Webhooks specification says (standardwebhooks.com;
docs/events.md, Webhooks), so a receiver can check it with any Standard Webhooks library:

- `webhook-id`: the delivery's id, the same on every try of it (a receiver drops repeats by it);
- `webhook-timestamp`: when this try was sent, in unix seconds;
- `webhook-signature`: `v1,<base64 of HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`, where the
  subscription's secret is `whsec_<base64>` and `key` is the bytes that base64 decodes to.

A receiver recomputes the HMAC over the raw body it received, compares in constant time, and
refuses a timestamp more than five minutes from its clock to stop replays.
"""

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix every secret has, not a secret
# The specification's bounds for a secret's key: 24 to 64 bytes; a generated one has 32.
SECRET_BYTES = 32
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"


def new_secret() -> str:
    """A fresh subscription secret (`whsec_` and 32 random bytes in base64), shown once."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def check_secret(secret: str) -> str:
    """`secret` if it is `whsec_` and the base64 of 24 to 64 bytes; ValueError saying why not."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a secret starts with {SECRET_PREFIX!r} (Standard Webhooks)")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as error:
        raise ValueError(f"after {SECRET_PREFIX!r} a secret is base64 ({error})") from error
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(
            f"a secret's base64 decodes to {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes,"
            f" not {len(key)}"
        )
    return secret


def secret_key(secret: str) -> bytes:
    """The HMAC key of `secret`: its base64 part decoded, the way Standard Webhooks' own library
    decodes it (padding added, characters outside base64 skipped), so a secret stored before
    secrets were checked signs exactly as the receiver's library expects."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "==")
    except binascii.Error:
        key = b""
    return key or encoded.encode()


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header's value for `body` sent as `message_id` at `timestamp`."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(
    secret: str, message_id: str, timestamp: int, body: bytes
) -> list[tuple[str, str]]:
    """The three Standard Webhooks headers of one try of a delivery."""
    return [
        (ID_HEADER, message_id),
        (TIMESTAMP_HEADER, str(timestamp)),
        (SIGNATURE_HEADER, signature(secret, message_id, timestamp, body)),
    ]


class BadSignatureError(ValueError):
    """A webhook whose signature headers are missing, stale or do not match its body."""


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, *, now: int, tolerance_s: int = 300
) -> None:
    """Raise BadSignatureError unless `headers` (names in lower case) sign `body` with `secret`
    within the tolerance: what a receiver does (tests use it; so may a council in Python)."""
    message_id = headers.get(ID_HEADER, "")
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    signatures = headers.get(SIGNATURE_HEADER, "")
    if not (message_id and timestamp.isdigit() and signatures):
        raise BadSignatureError(
            f"a webhook needs {ID_HEADER}, {TIMESTAMP_HEADER} (unix seconds) and {SIGNATURE_HEADER}"
        )
    if abs(now - int(timestamp)) > tolerance_s:
        raise BadSignatureError(f"the signature's time is more than {tolerance_s}s from now")
    expected = signature(secret, message_id, int(timestamp), body)
    # The header may carry several space-separated signatures (while a secret is rotated).
    if not any(hmac.compare_digest(expected, given) for given in signatures.split()):
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
