"""Secrets encrypted at rest (services/platform/secrets.py): AES-GCM under keys from the
environment, each ciphertext with its key's id, so keys rotate."""

import base64
from uuid import uuid4

import pytest

from services.alerting.settings import Settings
from services.platform.secrets import SecretBox, SecretKeyError

OLD = "old:" + base64.b64encode(b"o" * 32).decode()
NEW = "new:" + base64.b64encode(b"n" * 32).decode()
SECRET = "whsec_c2VmdG9uLWhvbWUtZmluZGVycy1zZWNyZXQtMzI="


def test_a_sealed_secret_opens_with_its_key_and_context_and_hides_the_plain_text():
    box = SecretBox.parse(OLD)
    context = uuid4().bytes
    sealed = box.seal(SECRET, context=context)
    assert sealed.key_id == "old"
    assert SECRET.encode() not in sealed.ciphertext
    assert box.seal(SECRET, context=context).ciphertext != sealed.ciphertext  # a fresh nonce
    assert box.open(sealed, context=context) == SECRET
    with pytest.raises(SecretKeyError, match="does not decrypt"):
        box.open(sealed, context=uuid4().bytes)  # copied onto another subscription's row


def test_the_first_key_seals_and_every_key_opens_so_keys_rotate():
    before = SecretBox.parse(OLD)
    sealed_before = before.seal(SECRET, context=b"s")
    rotated = SecretBox.parse(f"{NEW}, {OLD}")
    assert rotated.current_key_id == "new"
    assert rotated.open(sealed_before, context=b"s") == SECRET
    assert rotated.seal(SECRET, context=b"s").key_id == "new"
    with pytest.raises(SecretKeyError, match="no key 'old'"):
        SecretBox.parse(NEW).open(sealed_before, context=b"s")


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("", "at least one key"),
        ("nokey", "<id>:<base64>"),
        ("k1:not base64!", "not base64"),
        ("k1:" + base64.b64encode(b"short").decode(), "5 bytes, not 32"),
        (f"{OLD},{OLD}", "given twice"),
        ("bad id:" + base64.b64encode(b"o" * 32).decode(), "key id 'bad id'"),
    ],
)
def test_unusable_keys_are_refused_saying_why(spec: str, why: str):
    with pytest.raises(SecretKeyError, match=why):
        SecretBox.parse(spec)


def test_only_development_has_a_key_without_one_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.delenv("NEARHOME_SECRET_KEYS", raising=False)
    monkeypatch.delenv("NEARHOME_ENV", raising=False)
    assert Settings().secret_box() is None
    monkeypatch.setenv("NEARHOME_ENV", "development")
    box = Settings().secret_box()
    assert box is not None
    assert box.current_key_id == "development"
    monkeypatch.setenv("NEARHOME_ENV", "production")
    monkeypatch.setenv("NEARHOME_SECRET_KEYS", f"{NEW},{OLD}")
    configured = Settings().secret_box()
    assert configured is not None
    assert configured.current_key_id == "new"
