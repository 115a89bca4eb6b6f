"""Secrets encrypted at rest: AES-256-GCM under keys from the environment, each with an id so keys
can rotate.

`NEARHOME_SECRET_KEYS=kid1:<base64 of 32 bytes>,kid2:<...>`: the first key encrypts, every key
decrypts, and each ciphertext is stored with the id of the key that made it. To rotate, put a new
key first and keep the old ones after it until nothing is sealed with them. Only with
`NEARHOME_ENV=development` is a built-in development key used when none is set; in production
nothing is sealed without a key from the environment.

A sealed secret is a fresh 12-byte nonce followed by the ciphertext and its tag; the caller's
`context` (a subscription's id, say) is authenticated with it, so a ciphertext copied onto another
row does not decrypt there.
"""

import base64
import binascii
import os
import re
from dataclasses import dataclass
from typing import Final, Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.platform.environment import is_development

KEYS_VARIABLE: Final = "NEARHOME_SECRET_KEYS"
KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# Written here on purpose: it protects nothing, and is used only with NEARHOME_ENV=development.
DEVELOPMENT_KEYS: Final = (
    "development:" + base64.b64encode(b"nearhome-development-key-32bytes").decode()
)


class SecretKeyError(ValueError):
    """Keys that cannot be used (malformed, repeated), or a secret that will not decrypt."""


@dataclass(frozen=True, slots=True)
class Sealed:
    key_id: str
    ciphertext: bytes


class SecretBox:
    """Seals secrets with the first of its keys and opens them with whichever key sealed them."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise SecretKeyError("at least one key is needed")
        ids = [key_id for key_id, _ in keys]
        if len(set(ids)) != len(ids):
            raise SecretKeyError(f"a key id is given twice in {ids}")
        for key_id, key in keys:
            if not _KEY_ID.fullmatch(key_id):
                raise SecretKeyError(f"key id {key_id!r}: letters, digits, '.', '_', '-'")
            if len(key) != KEY_BYTES:
                raise SecretKeyError(f"key {key_id!r} is {len(key)} bytes, not {KEY_BYTES}")
        self._current = ids[0]
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys}

    @classmethod
    def parse(cls, spec: str) -> Self:
        """Keys as `NEARHOME_SECRET_KEYS` gives them: `kid:<base64 key>`, comma-separated."""
        keys: list[tuple[str, bytes]] = []
        for item in spec.split(","):
            if not item.strip():
                continue
            key_id, colon, encoded = item.strip().partition(":")
            if not colon:
                raise SecretKeyError(f"{KEYS_VARIABLE}: each key is <id>:<base64>, not {key_id!r}")
            try:
                keys.append((key_id, base64.b64decode(encoded, validate=True)))
            except binascii.Error as error:
                raise SecretKeyError(f"key {key_id!r} is not base64: {error}") from error
        return cls(keys)

    @classmethod
    def from_environment(cls, spec: str | None = None) -> Self | None:
        """The keys `spec` (or else `NEARHOME_SECRET_KEYS`) gives; the development key if
        neither does and NEARHOME_ENV=development; otherwise None: nothing can be sealed."""
        spec = spec if spec is not None else os.environ.get(KEYS_VARIABLE)
        if spec and spec.strip():
            return cls.parse(spec)
        if is_development():
            return cls.parse(DEVELOPMENT_KEYS)
        return None

    @property
    def current_key_id(self) -> str:
        return self._current

    def seal(self, secret: str, *, context: bytes) -> Sealed:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self._current].encrypt(nonce, secret.encode(), context)
        return Sealed(self._current, nonce + sealed)

    def open(self, sealed: Sealed, *, context: bytes) -> str:
        cipher = self._ciphers.get(sealed.key_id)
        if cipher is None:
            raise SecretKeyError(f"no key {sealed.key_id!r} to decrypt with")
        nonce, ciphertext = sealed.ciphertext[:NONCE_BYTES], sealed.ciphertext[NONCE_BYTES:]
        try:
            opened: bytes = cipher.decrypt(nonce, ciphertext, context)
        except InvalidTag as error:
            raise SecretKeyError(
                f"the secret does not decrypt with key {sealed.key_id!r}"
            ) from error
        return opened.decode()
