"""A stand-in OpenID Connect provider for tests: real keys (`cryptography`), published over real
HTTP (a thread of the standard library's HTTP server on a free port), and tokens signed with them.

It serves `/.well-known/openid-configuration` and `/jwks`, counts the key set's fetches, and can
rotate a key (a new `kid` published), as a real provider does.
"""

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from uuid import uuid4

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from services.platform.auth import Principal

AUDIENCE = "nearhome-api"


@dataclass
class SigningKey:
    kid: str
    algorithm: str
    private: PrivateKeyTypes

    def public_jwk(self) -> dict[str, Any]:
        public = self.private.public_key()  # type: ignore[union-attr]
        converter = RSAAlgorithm if self.algorithm.startswith("RS") else ECAlgorithm
        jwk: dict[str, Any] = json.loads(converter.to_jwk(public))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.algorithm}


def rsa_key(kid: str | None = None) -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKey(kid or f"rsa-{uuid4().hex[:8]}", "RS256", private)


def ec_key(kid: str | None = None) -> SigningKey:
    return SigningKey(
        kid or f"ec-{uuid4().hex[:8]}", "ES256", ec.generate_private_key(ec.SECP256R1())
    )


@dataclass
class IdentityProvider:
    """The provider's state: the keys it publishes, and how often its key set was fetched."""

    base_url: str = ""
    keys: list[SigningKey] = field(default_factory=lambda: [rsa_key(), ec_key()])
    jwks_fetches: int = 0
    # False: every request answered 503, as a provider that is down (behind its proxy).
    available: bool = True
    discovery_fetches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/realms/nearhome"

    @property
    def rsa(self) -> SigningKey:
        return next(key for key in self.keys if key.algorithm == "RS256")

    @property
    def ec(self) -> SigningKey:
        return next(key for key in self.keys if key.algorithm == "ES256")

    def jwks(self) -> dict[str, Any]:
        with self.lock:
            self.jwks_fetches += 1
            return {"keys": [key.public_jwk() for key in self.keys]}

    def discovery(self) -> dict[str, Any]:
        with self.lock:
            self.discovery_fetches += 1
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.base_url}/jwks",
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        }

    def rotate(self) -> SigningKey:
        """A new RSA key, published (and used from now on) beside the old ones."""
        key = rsa_key()
        with self.lock:
            self.keys.insert(0, key)
        return key

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """A service's identity settings trusting this provider (the key set found by discovery)."""
        return {
            "oidc_issuer": self.issuer,
            "oidc_audience": AUDIENCE,
            "oidc_role_claim": "realm_access.roles",
            **overrides,
        }

    def token_for(self, principal: Principal, **claims: Any) -> str:
        """The token a Keycloak realm set up as README's example says would carry for
        `principal` (the role among the realm's roles, the scope in its own claims)."""
        scope: dict[str, Any] = {
            "realm_access": {"roles": ["offline_access", principal.role.value]},
            "provider_id": principal.provider_id,
            "authority_code": principal.authority_code,
            "footprints": list(principal.footprints) or None,
        }
        return self.token({k: v for k, v in scope.items() if v is not None} | claims)

    def token(
        self,
        claims: dict[str, Any],
        *,
        key: SigningKey | None = None,
        kid: str | None = None,
        lifetime: timedelta = timedelta(minutes=5),
        **registered: Any,
    ) -> str:
        """A token signed with `key` (the RSA key by default) naming `kid` (the key's own)."""
        key = key or self.rsa
        now = datetime.now(UTC)
        payload = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": str(uuid4()),
            "iat": now,
            "exp": now + lifetime,
            **registered,
            **claims,
        }
        return jwt.encode(
            payload, key.private, algorithm=key.algorithm, headers={"kid": kid or key.kid}
        )


def _handler(provider: IdentityProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if not provider.available:
                self.send_error(503)
                return
            if self.path == "/realms/nearhome/.well-known/openid-configuration":
                body = provider.discovery()
            elif self.path == "/jwks":
                body = provider.jwks()
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: Any) -> None:
            pass

    return Handler


@contextlib.contextmanager
def serving_identity_provider() -> Iterator[IdentityProvider]:
    """An `IdentityProvider` answering on 127.0.0.1 (a free port) until the block ends."""
    provider = IdentityProvider()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(provider))
    provider.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="identity-provider", daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
