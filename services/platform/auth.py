"""Bearer tokens (JWT, HS256): who the caller is, in which role, for which organisation.

The organisation always comes from the token, never from a request body.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.platform.errors import ForbiddenError, UnauthenticatedError

ALGORITHM = "HS256"
ISSUER = "nearhome"
# For local runs and tests only: any real deployment sets NEARHOME_JWT_SECRET.
DEVELOPMENT_SECRET = "nearhome-development-only-secret-do-not-deploy"  # noqa: S105


class Role(StrEnum):
    PROVIDER = "provider"
    AUTHORITY = "authority"
    COLLABORATIVE = "collaborative"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: `organisation_id` is the token's `sub`."""

    organisation_id: str
    role: Role
    provider_id: str | None = None
    authority_code: str | None = None
    footprints: tuple[str, ...] = ()


def issue_token(principal: Principal, secret: str, ttl: timedelta = timedelta(hours=12)) -> str:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": principal.organisation_id,
        "role": principal.role.value,
        "iat": now,
        "exp": now + ttl,
    }
    if principal.provider_id is not None:
        claims["provider_id"] = principal.provider_id
    if principal.authority_code is not None:
        claims["authority_code"] = principal.authority_code
    if principal.footprints:
        claims["footprints"] = list(principal.footprints)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def principal_for(
    role: Role,
    *,
    provider_id: str | None = None,
    authority_code: str | None = None,
    footprints: tuple[str, ...] = (),
    organisation_id: str | None = None,
) -> Principal:
    """A principal with the scope claim its role requires (ValueError names what is missing)."""
    scope = {
        Role.PROVIDER: provider_id,
        Role.AUTHORITY: authority_code,
        Role.COLLABORATIVE: ",".join(footprints) or None,
        Role.ADMIN: organisation_id or "admin",
    }[role]
    if scope is None:
        needed = {Role.PROVIDER: "provider_id", Role.AUTHORITY: "authority_code"}
        raise ValueError(f"a {role} token needs {needed.get(role, 'footprints')}")
    return Principal(
        organisation_id=organisation_id or provider_id or authority_code or "collaborative",
        role=role,
        provider_id=provider_id,
        authority_code=authority_code,
        footprints=footprints,
    )


def decode_token(token: str, secret: str) -> Principal:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "sub", "iss"]},
        )
        role = Role(claims["role"])
    except jwt.ExpiredSignatureError as error:
        raise UnauthenticatedError("the token has expired") from error
    except (jwt.InvalidTokenError, KeyError, ValueError) as error:
        raise UnauthenticatedError(f"the token is not valid: {error}") from error
    principal = Principal(
        organisation_id=str(claims["sub"]),
        role=role,
        provider_id=claims.get("provider_id"),
        authority_code=claims.get("authority_code"),
        footprints=tuple(claims.get("footprints", ())),
    )
    if role is Role.PROVIDER and not principal.provider_id:
        raise UnauthenticatedError("a provider token must carry provider_id")
    if role is Role.AUTHORITY and not principal.authority_code:
        raise UnauthenticatedError("an authority token must carry authority_code")
    return principal


_bearer = HTTPBearer(auto_error=False, description="A NearHome JWT (`nearhome token issue`)")


def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """FastAPI dependency: the caller's principal, or 401."""
    if credentials is None:
        raise UnauthenticatedError("a bearer token is required")
    secret: str = request.app.state.jwt_secret
    return decode_token(credentials.credentials, secret)


def require_role(principal: Principal, *roles: Role) -> Principal:
    if principal.role not in roles:
        allowed = " or ".join(role.value for role in roles)
        raise ForbiddenError(f"this resource is for {allowed} tokens, not {principal.role}")
    return principal
