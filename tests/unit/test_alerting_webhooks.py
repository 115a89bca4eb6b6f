"""Signed webhooks (docs/events.md): Standard Webhooks signatures, their check, the secrets, and
the retry schedule."""

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook, WebhookVerificationError

from services.alerting.webhooks import (
    BadSignatureError,
    check_secret,
    new_secret,
    retry_delay,
    signature,
    signed_headers,
    verify,
)

KEY = bytes(range(32))
SECRET = "whsec_" + base64.b64encode(KEY).decode()
BODY = b'{"alert_id":"1","type":"raised"}'


def headers_of(message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return dict(signed_headers(SECRET, message_id, timestamp, body))


def test_the_signature_is_the_base64_hmac_sha256_of_id_dot_time_dot_body_keyed_by_the_secret():
    digest = hmac.new(KEY, b"42.1764000000." + BODY, hashlib.sha256).digest()
    assert signature(SECRET, "42", 1764000000, BODY) == "v1," + base64.b64encode(digest).decode()
    assert headers_of("42", 1764000000, BODY) == {
        "webhook-id": "42",
        "webhook-timestamp": "1764000000",
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


def test_the_standard_webhooks_library_signs_the_same():
    signed_at = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    expected = Webhook(SECRET).sign("42", signed_at, BODY.decode())
    assert signature(SECRET, "42", int(signed_at.timestamp()), BODY) == expected


@given(st.binary(max_size=2000), st.integers(min_value=0, max_value=2**33))
def test_a_receiver_accepts_what_was_signed_for_it(body: bytes, timestamp: int):
    verify(SECRET, headers_of("7", timestamp, body), body, now=timestamp + 10)


def test_a_changed_body_id_or_another_secret_is_refused():
    headers = headers_of("42", 1764000000, BODY)
    with pytest.raises(BadSignatureError, match="does not match"):
        verify(SECRET, headers, BODY + b" ", now=1764000000)
    with pytest.raises(BadSignatureError, match="does not match"):
        verify(SECRET, {**headers, "webhook-id": "43"}, BODY, now=1764000000)
    with pytest.raises(BadSignatureError, match="does not match"):
        verify(new_secret(), headers, BODY, now=1764000000)


def test_any_of_several_signatures_may_match():
    headers = headers_of("42", 1764000000, BODY)
    headers["webhook-signature"] = "v1,bm90LWl0 " + headers["webhook-signature"]
    verify(SECRET, headers, BODY, now=1764000000)


def test_an_old_signature_is_refused_as_a_replay():
    headers = headers_of("42", 1764000000, BODY)
    with pytest.raises(BadSignatureError, match="more than 300s"):
        verify(SECRET, headers, BODY, now=1764000000 + 301)


@pytest.mark.parametrize(
    "missing", ["webhook-id", "webhook-timestamp", "webhook-signature", "nothing"]
)
def test_a_webhook_without_its_three_headers_is_refused(missing: str):
    headers = headers_of("42", 1764000000, BODY)
    headers.pop(missing, None)
    if missing == "nothing":
        headers["webhook-timestamp"] = "soon"
    with pytest.raises(BadSignatureError, match="needs webhook-id"):
        verify(SECRET, headers, BODY, now=1764000000)


def test_a_generated_secret_is_standard_and_new_each_time():
    first, second = new_secret(), new_secret()
    assert first != second
    assert check_secret(first) == first
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        ("a-subscription-secret-of-some-length", "starts with 'whsec_'"),
        ("whsec_not base64 at all!", "is base64"),
        ("whsec_" + base64.b64encode(b"x" * 23).decode(), "24 to 64 bytes, not 23"),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), "24 to 64 bytes, not 65"),
    ],
)
def test_a_secret_not_in_the_standard_form_is_refused(secret: str, why: str):
    with pytest.raises(ValueError, match=why):
        check_secret(secret)


def test_a_secret_stored_before_the_check_still_signs_as_the_library_verifies():
    # Older generated secrets were url-safe base64 without padding; the library decodes them
    # leniently, and so does the signer.
    legacy = "whsec_Ab-_cdEFghIJklMNopQRstUVwxYZ0123456789a-cdE"
    headers = dict(signed_headers(legacy, "42", int(datetime.now(UTC).timestamp()), BODY))
    Webhook(legacy).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)


def test_a_delivery_is_tried_once_more_than_there_are_delays_then_given_up():
    backoff = (1.0, 5.0, 30.0)
    assert [retry_delay(backoff, attempts) for attempts in (1, 2, 3, 4)] == [1.0, 5.0, 30.0, None]
    assert retry_delay((), 1) is None
    with pytest.raises(ValueError, match="at least 1"):
        retry_delay(backoff, 0)
