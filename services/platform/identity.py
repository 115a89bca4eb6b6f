"""Which bearer tokens a service trusts: an OpenID Connect provider's, or in development its own.

* With `NEARHOME_OIDC_ISSUER` set, tokens from that provider are verified against its published
  keys (JWKS), their issuer and audience checked, and the role and its scope read from the claims
  the settings name (services/platform/oidc.py).
* With `NEARHOME_ENV=development`, tokens signed with `NEARHOME_JWT_SECRET` (HS256, issuer
  `nearhome`, made by `nearhome token issue`) are trusted as well, and are the only ones trusted
  when no provider is configured.
* Anywhere else (production, the default) a service without a provider refuses to start:
  `token_verifier` raises `IdentityNotConfiguredError`, saying what to set.
"""

from typing import Annotated, Literal, Self

import jwt
from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.platform.auth import (
    DEVELOPMENT_SECRET,
    ISSUER,
    REMEMBER_VERIFIED_S,
    LocalTokens,
    Principal,
    RememberedTokens,
    Role,
    TokenVerifier,
)
from services.platform.environment import is_development
from services.platform.errors import UnauthenticatedError
from services.platform.oidc import OidcConfig, OidcTokens

# Asymmetric algorithms only: a provider's public keys can never be used as an HMAC secret.
SigningAlgorithm = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"]


def _alias(name: str) -> AliasChoices:
    return AliasChoices(f"NEARHOME_{name.upper()}", name)


def _comma_separated(value: object) -> object:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


class IdentitySettings(BaseSettings):
    """Where bearer tokens come from (every service's settings extend this)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    # Development only (NEARHOME_ENV=development): the HS256 secret of `nearhome token issue`.
    jwt_secret: str = Field(default=DEVELOPMENT_SECRET, validation_alias=_alias("jwt_secret"))

    # The OpenID Connect provider: its issuer (the `iss` of its tokens, exactly), the audience
    # NearHome's tokens are issued for (`aud`), and where its signing keys are published (by
    # default the `jwks_uri` of the issuer's /.well-known/openid-configuration).
    oidc_issuer: str | None = Field(default=None, validation_alias=_alias("oidc_issuer"))
    oidc_audience: str | None = Field(default=None, validation_alias=_alias("oidc_audience"))
    oidc_jwks_url: str | None = Field(default=None, validation_alias=_alias("oidc_jwks_url"))
    oidc_algorithms: Annotated[tuple[SigningAlgorithm, ...], NoDecode] = Field(
        default=("RS256", "ES256"), min_length=1, validation_alias=_alias("oidc_algorithms")
    )
    # Which claims carry the role and its scope. A dotted name reaches into objects
    # (`realm_access.roles`); the role claim may be a string or a list of strings, of which
    # exactly one must name a NearHome role.
    oidc_role_claim: str = Field(
        default="nearhome_role", validation_alias=_alias("oidc_role_claim")
    )
    # The provider's names for NearHome's roles, when they differ: `provider=NearHome.Provider,...`.
    oidc_role_values: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), validation_alias=_alias("oidc_role_values")
    )
    oidc_provider_id_claim: str = Field(
        default="provider_id", validation_alias=_alias("oidc_provider_id_claim")
    )
    oidc_authority_code_claim: str = Field(
        default="authority_code", validation_alias=_alias("oidc_authority_code_claim")
    )
    # A list of footprint ids, or one string of them separated by spaces or commas.
    oidc_footprints_claim: str = Field(
        default="footprints", validation_alias=_alias("oidc_footprints_claim")
    )
    # Clock skew allowed on `exp`, `nbf` and `iat`.
    oidc_leeway_seconds: float = Field(
        default=30.0, ge=0, le=300, validation_alias=_alias("oidc_leeway_seconds")
    )
    # How long the key set is kept before it is fetched again, and the least time between two
    # fetches forced by a token signed with a key the set does not have (a rotation).
    oidc_jwks_cache_seconds: float = Field(
        default=300.0, gt=0, validation_alias=_alias("oidc_jwks_cache_seconds")
    )
    oidc_jwks_refresh_cooldown_seconds: float = Field(
        default=30.0, ge=0, validation_alias=_alias("oidc_jwks_refresh_cooldown_seconds")
    )
    oidc_http_timeout_seconds: float = Field(
        default=5.0, gt=0, le=60, validation_alias=_alias("oidc_http_timeout_seconds")
    )

    _split = field_validator("oidc_algorithms", "oidc_role_values", mode="before")(_comma_separated)

    @model_validator(mode="after")
    def _provider_complete(self) -> Self:
        if self.oidc_issuer is not None and not self.oidc_audience:
            raise ValueError("NEARHOME_OIDC_AUDIENCE is required with NEARHOME_OIDC_ISSUER")
        self.role_names  # noqa: B018 - raises if NEARHOME_OIDC_ROLE_VALUES is malformed
        return self

    @property
    def uses_development_secret(self) -> bool:
        return self.jwt_secret == DEVELOPMENT_SECRET

    @property
    def role_names(self) -> dict[str, Role]:
        """The provider's role values, each to the NearHome role it means."""
        names = {role.value: role for role in Role}
        for item in self.oidc_role_values:
            role, equals, value = (part.strip() for part in item.partition("="))
            if not equals or not value or role not in names:
                raise ValueError(
                    "NEARHOME_OIDC_ROLE_VALUES: each item is <role>=<the provider's value>, "
                    f"the role one of {', '.join(Role)}; not {item!r}"
                )
            names[value] = Role(role)
        return names

    def oidc_config(self) -> OidcConfig | None:
        if self.oidc_issuer is None or self.oidc_audience is None:
            return None
        return OidcConfig(
            issuer=self.oidc_issuer,
            audience=self.oidc_audience,
            jwks_url=self.oidc_jwks_url,
            algorithms=self.oidc_algorithms,
            role_claim=self.oidc_role_claim,
            role_names=self.role_names,
            provider_id_claim=self.oidc_provider_id_claim,
            authority_code_claim=self.oidc_authority_code_claim,
            footprints_claim=self.oidc_footprints_claim,
            leeway_seconds=self.oidc_leeway_seconds,
            jwks_cache_seconds=self.oidc_jwks_cache_seconds,
            jwks_refresh_cooldown_seconds=self.oidc_jwks_refresh_cooldown_seconds,
            http_timeout_seconds=self.oidc_http_timeout_seconds,
        )


class IdentityNotConfiguredError(RuntimeError):
    """A service outside development with no identity provider to trust."""


NOT_CONFIGURED = (
    "no identity provider is configured: set NEARHOME_OIDC_ISSUER and NEARHOME_OIDC_AUDIENCE "
    "(README, 'Production'), or NEARHOME_ENV=development to trust tokens made by "
    "`nearhome token issue`"
)


class DevelopmentTokens:
    """Local tokens (issuer `nearhome`) and, if one is configured, the provider's."""

    def __init__(self, local: LocalTokens, provider: OidcTokens) -> None:
        self._local = local
        self._provider = provider
        self.blocking = provider.blocking

    def verify(self, token: str) -> Principal:
        try:
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.InvalidTokenError as error:
            raise UnauthenticatedError(f"the token is not valid: {error}") from error
        if issuer == ISSUER:
            return self._local.verify(token)
        return self._provider.verify(token)


def token_verifier(settings: IdentitySettings) -> TokenVerifier:
    """What the service trusts (the module's docstring); raises `IdentityNotConfiguredError`."""
    config = settings.oidc_config()
    development = is_development()
    if config is None:
        if not development:
            raise IdentityNotConfiguredError(NOT_CONFIGURED)
        return LocalTokens(settings.jwt_secret)
    provider = OidcTokens(config)
    if development:
        return DevelopmentTokens(LocalTokens(settings.jwt_secret), provider)
    return provider


def trusted_tokens(settings: IdentitySettings) -> RememberedTokens:
    """What a service checks its callers' tokens with: `token_verifier`'s verifier, its answers
    remembered for a while (`RememberedTokens`): REMEMBER_VERIFIED_S, but never longer than the
    provider's key set is kept (NEARHOME_OIDC_JWKS_CACHE_SECONDS). A token signed with a key the
    provider withdraws is then refused at most twice that time after the withdrawal: up to one
    for the key set fetched before it to expire, up to one more for the token's last check to be
    forgotten."""
    config = settings.oidc_config()
    remember_s = REMEMBER_VERIFIED_S
    if config is not None:
        remember_s = min(remember_s, config.jwks_cache_seconds)
    return RememberedTokens(token_verifier(settings), remember_s=remember_s)


def require_development(what: str) -> None:
    """Raise `IdentityNotConfiguredError` unless NEARHOME_ENV=development."""
    if not is_development():
        raise IdentityNotConfiguredError(
            f"{what} works only with NEARHOME_ENV=development: its tokens are trusted nowhere "
            "else (production tokens come from the identity provider)"
        )
