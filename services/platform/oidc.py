"""Bearer tokens from an OpenID Connect provider (Keycloak, Microsoft Entra ID, ...).

A token is trusted when it is signed by one of the keys the provider publishes (its JWKS, found
through the issuer's /.well-known/openid-configuration unless configured), with an algorithm
allowed here (asymmetric only), by the configured issuer, for the configured audience, and not
expired. The keys are cached (PyJWT's `PyJWKClient`) and fetched again when the cache expires, or
when a token names a key id the set does not have (a rotation; at most once per cooldown, so that
made-up key ids cannot make the service hammer the provider). While the provider cannot be reached
the last key set fetched is kept (a key it has withdrawn meanwhile is trusted until it answers
again); before any was fetched, no token can be checked (503).

The role and its scope come from the claims the settings name: the caller's organisation is
derived from the scope exactly as for development tokens (`principal_for`), never from a body.

`verify` may fetch over the network (blocking): call it from a worker thread, as FastAPI does for
a synchronous dependency.
"""

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from jwt import PyJWK, PyJWKClient

from services.platform.auth import IdentityProviderUnavailableError, Principal, Role, principal_for
from services.platform.errors import UnauthenticatedError

logger = logging.getLogger(__name__)

DISCOVERY_PATH = "/.well-known/openid-configuration"
# The key type (JWK `kty`) each family of algorithms signs with.
KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC"}


@dataclass(frozen=True, slots=True)
class OidcConfig:
    issuer: str
    audience: str
    jwks_url: str | None
    algorithms: tuple[str, ...]
    role_claim: str
    role_names: Mapping[str, Role]
    provider_id_claim: str
    authority_code_claim: str
    footprints_claim: str
    leeway_seconds: float = 30.0
    jwks_cache_seconds: float = 300.0
    jwks_refresh_cooldown_seconds: float = 30.0
    http_timeout_seconds: float = 5.0


def claim(claims: Mapping[str, Any], name: str) -> object:
    """The claim `name`, reaching into objects along a dotted name; None if absent."""
    if name in claims:
        return claims[name]
    value: object = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _text_claim(claims: Mapping[str, Any], name: str) -> str | None:
    value = claim(claims, name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise UnauthenticatedError(f"the token's {name} claim is not a string")
    return value or None


def _role(claims: Mapping[str, Any], config: OidcConfig) -> Role:
    value = claim(claims, config.role_claim)
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(item, str) for item in values):
        raise UnauthenticatedError(
            f"the token's {config.role_claim} claim must be a role or a list of roles"
        )
    roles = {config.role_names[item] for item in values if item in config.role_names}
    if len(roles) != 1:
        found = "no NearHome role" if not roles else "more than one NearHome role"
        raise UnauthenticatedError(f"the token's {config.role_claim} claim has {found}")
    return roles.pop()


def _footprints(claims: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = claim(claims, name)
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(item for item in value.replace(",", " ").split() if item)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise UnauthenticatedError(f"the token's {name} claim must be a list of footprint ids")


def principal_from_claims(claims: Mapping[str, Any], config: OidcConfig) -> Principal:
    """The caller the verified `claims` describe, or UnauthenticatedError saying what is amiss."""
    role = _role(claims, config)
    try:
        return principal_for(
            role,
            provider_id=_text_claim(claims, config.provider_id_claim),
            authority_code=_text_claim(claims, config.authority_code_claim),
            footprints=_footprints(claims, config.footprints_claim),
        )
    except ValueError as error:
        claim_of = {
            Role.PROVIDER: config.provider_id_claim,
            Role.AUTHORITY: config.authority_code_claim,
        }
        needed = claim_of.get(role, config.footprints_claim)
        raise UnauthenticatedError(f"a {role} token must carry the {needed} claim") from error


class _KeySet(PyJWKClient):
    """PyJWT's JWKS client, but while the provider cannot be reached it goes on with the last key
    set it fetched (trying again once the cache expires) instead of refusing every token."""

    def __init__(
        self, uri: str, *, lifespan: float, timeout: float, cooldown_duration: float
    ) -> None:
        super().__init__(
            uri, lifespan=lifespan, timeout=timeout, cooldown_duration=cooldown_duration
        )
        self._last_fetched: dict[str, Any] | None = None

    def fetch_data(self) -> dict[str, Any]:
        try:
            fetched: dict[str, Any] = super().fetch_data()
        except jwt.PyJWKClientConnectionError as error:
            if self._last_fetched is None:
                raise
            logger.warning("the identity provider's keys could not be fetched again: %s", error)
            return self._last_fetched
        self._last_fetched = fetched
        return fetched


class OidcTokens:
    """Verifies the provider's tokens (the module's docstring)."""

    blocking = True

    def __init__(self, config: OidcConfig) -> None:
        self._config = config
        self._keys: _KeySet | None = None
        self._lock = threading.Lock()

    @property
    def config(self) -> OidcConfig:
        return self._config

    def _jwks_url(self) -> str:
        config = self._config
        if config.jwks_url is not None:
            return config.jwks_url
        address = config.issuer.rstrip("/") + DISCOVERY_PATH
        try:
            answer = httpx.get(address, timeout=config.http_timeout_seconds)
            answer.raise_for_status()
            document = answer.json()
        except (httpx.HTTPError, ValueError) as error:
            raise IdentityProviderUnavailableError(
                f"the identity provider's configuration ({address}) could not be read: {error}"
            ) from error
        if not isinstance(document, dict) or not isinstance(document.get("jwks_uri"), str):
            raise IdentityProviderUnavailableError(f"{address} names no jwks_uri")
        if document.get("issuer") != config.issuer:
            # OpenID Connect Discovery 1.0, section 4.3: they must be identical.
            raise IdentityProviderUnavailableError(
                f"{address} names the issuer {document.get('issuer')!r}, "
                f"not NEARHOME_OIDC_ISSUER {config.issuer!r}"
            )
        jwks_url: str = document["jwks_uri"]
        return jwks_url

    def _client(self) -> _KeySet:
        with self._lock:
            if self._keys is None:
                config = self._config
                self._keys = _KeySet(
                    self._jwks_url(),
                    lifespan=config.jwks_cache_seconds,
                    timeout=config.http_timeout_seconds,
                    cooldown_duration=config.jwks_refresh_cooldown_seconds,
                )
            return self._keys

    def verify(self, token: str) -> Principal:
        config = self._config
        key = self._signing_key(token)
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=list(config.algorithms),
                audience=config.audience,
                issuer=config.issuer,
                leeway=config.leeway_seconds,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as error:
            raise UnauthenticatedError("the token has expired") from error
        except jwt.InvalidAudienceError as error:
            raise UnauthenticatedError("the token is not for this audience") from error
        except jwt.InvalidIssuerError as error:
            raise UnauthenticatedError("the token is not from the configured issuer") from error
        except jwt.PyJWTError as error:  # InvalidKeyError too: the key is not for this algorithm
            raise UnauthenticatedError(f"the token is not valid: {error}") from error
        return principal_from_claims(claims, config)

    def _signing_key(self, token: str) -> PyJWK:
        """The published key the token's header names, if it fits an allowed algorithm."""
        algorithms = self._config.algorithms
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as error:
            raise UnauthenticatedError(f"the token is not valid: {error}") from error
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in algorithms:
            raise UnauthenticatedError(
                f"the token is signed with {algorithm!r}, not one of {', '.join(algorithms)}"
            )
        if not isinstance(kid, str) or not kid:
            raise UnauthenticatedError("the token names no signing key (kid)")
        try:
            key = self._client().get_signing_key(kid)
        except (jwt.PyJWKClientConnectionError, jwt.PyJWKSetError) as error:
            logger.warning("the identity provider's keys could not be fetched: %s", error)
            raise IdentityProviderUnavailableError(
                "the identity provider's keys could not be fetched"
            ) from error
        except jwt.PyJWKClientError as error:
            raise UnauthenticatedError(
                f"the token is signed with a key the identity provider does not publish ({kid})"
            ) from error
        if key.key_type != KEY_TYPES[algorithm[:2]]:
            raise UnauthenticatedError(
                f"the token's algorithm {algorithm} does not fit its key ({kid})"
            )
        return key
