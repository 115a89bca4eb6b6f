"""Signed webhooks (docs/events.md): the X-Signature header, its check, and the retry schedule."""

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.alerting.webhooks import (
    BadSignatureError,
    new_secret,
    retry_delay,
    signature,
    verify,
)

SECRET = "a-subscription-secret-of-some-length"
BODY = b'{"alert_id":"1","type":"raised"}'


def test_the_signature_is_the_hmac_sha256_of_time_dot_body_with_the_secret():
    expected = hmac.new(SECRET.encode(), b"1764000000." + BODY, hashlib.sha256).hexdigest()
    assert signature(SECRET, 1764000000, BODY) == f"t=1764000000,v1={expected}"


@given(st.binary(max_size=2000), st.integers(min_value=0, max_value=2**33))
def test_a_receiver_accepts_what_was_signed_for_it(body: bytes, timestamp: int):
    verify(SECRET, signature(SECRET, timestamp, body), body, now=timestamp + 10)


def test_a_changed_body_or_another_secret_is_refused():
    header = signature(SECRET, 1764000000, BODY)
    with pytest.raises(BadSignatureError, match="does not match"):
        verify(SECRET, header, BODY + b" ", now=1764000000)
    with pytest.raises(BadSignatureError, match="does not match"):
        verify("another-secret-entirely-here", header, BODY, now=1764000000)


def test_an_old_signature_is_refused_as_a_replay():
    header = signature(SECRET, 1764000000, BODY)
    with pytest.raises(BadSignatureError, match="more than 300s"):
        verify(SECRET, header, BODY, now=1764000000 + 301)


@pytest.mark.parametrize("header", ["", "t=abc,v1=00", "v1=00", "t=1764000000"])
def test_a_header_without_a_time_and_a_digest_is_refused(header: str):
    with pytest.raises(BadSignatureError, match="needs t="):
        verify(SECRET, header, BODY, now=1764000000)


def test_a_generated_secret_is_long_and_new_each_time():
    first, second = new_secret(), new_secret()
    assert first != second
    assert len(first) >= 40


def test_a_delivery_is_tried_once_more_than_there_are_delays_then_given_up():
    backoff = (1.0, 5.0, 30.0)
    assert [retry_delay(backoff, attempts) for attempts in (1, 2, 3, 4)] == [1.0, 5.0, 30.0, None]
    assert retry_delay((), 1) is None
    with pytest.raises(ValueError, match="at least 1"):
        retry_delay(backoff, 0)
