"""Bearer tokens: who the caller is, in which role, for which organisation.

The organisation always comes from the token, never from a request body. Which tokens a service
trusts (its `TokenVerifier`) is decided by services/platform/identity.py: an OpenID Connect
provider's (services/platform/oidc.py) or, in development only, the HS256 tokens made here.
"""

import base64
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Protocol

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from services.platform.errors import ForbiddenError, UnauthenticatedError

ALGORITHM = "HS256"
ISSUER = "nearhome"
# For local runs and tests only (NEARHOME_ENV=development): trusted nowhere else.
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


class IdentityProviderUnavailableError(Exception):
    """The identity provider's configuration or keys could not be fetched: no token can be
    checked now (503, not 401: the token may well be good)."""


class TokenVerifier(Protocol):
    """Checks a bearer token: the caller's principal, or UnauthenticatedError saying why not."""

    # Whether `verify` may wait on the network (fetching a provider's keys): if so it is called
    # from a worker thread, never on the event loop.
    blocking: bool

    def verify(self, token: str) -> Principal: ...


class LocalTokens:
    """Tokens made by `issue_token` with `secret` (development only: see identity.py)."""

    blocking = False

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def verify(self, token: str) -> Principal:
        return decode_token(token, self._secret)


# How long a token once verified is taken again without verifying it (never past its `exp`), and
# how many such tokens a process remembers: see `RememberedTokens`.
REMEMBER_VERIFIED_S = 60.0
REMEMBERED_TOKENS = 10_000


class RememberedTokens:
    """A `TokenVerifier` that remembers what `verifier` found each token to be, for a while.

    A dashboard or a provider's system sends the same bearer token with every request. Verifying
    it again each time (PyJWT's decoding and the signature check, about 180 microseconds; for a
    provider's tokens, a worker thread as well) cost a capacity read a fifth of its time. A
    token is taken from memory only while it has not expired (its `exp`) and for at most
    `remember_s` after it was verified; then it is verified again, so a signing key the identity
    provider stops publishing is no longer trusted `remember_s` after its keys are fetched anew.
    A token refused is never remembered. At most `size` tokens are kept, the one used least
    lately dropped first. The memory is shared by the event loop and the worker threads a
    blocking verifier runs on, so it is locked."""

    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        remember_s: float = REMEMBER_VERIFIED_S,
        size: int = REMEMBERED_TOKENS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.verifier = verifier
        self.blocking = verifier.blocking
        self.remember_s = remember_s
        self._size = size
        self._clock = clock
        self._known: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._lock = threading.Lock()

    def recall(self, token: str) -> Principal | None:
        """What `token` was verified to be, if that is still to be trusted; else None."""
        with self._lock:
            known = self._known.get(token)
            if known is None:
                return None
            principal, until = known
            if self._clock() >= until:
                del self._known[token]
                return None
            self._known.move_to_end(token)
            return principal

    def verify(self, token: str) -> Principal:
        return self.recall(token) or self.verify_anew(token)

    def verify_anew(self, token: str) -> Principal:
        """`verifier`'s answer for `token`, remembered (a refusal is raised, not remembered)."""
        verified_at = self._clock()
        principal = self.verifier.verify(token)
        until = min(_expires_at(token), verified_at + self.remember_s)
        with self._lock:
            self._known[token] = (principal, until)
            self._known.move_to_end(token)
            while len(self._known) > self._size:
                self._known.popitem(last=False)
        return principal


def _expires_at(token: str) -> float:
    """The `exp` of a token just verified (so its payload is well formed and `exp` is there)."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return float(claims["exp"])


async def verify_token(verifier: TokenVerifier, token: str) -> Principal:
    """`verifier.verify(token)`, off the event loop if it may block (a token remembered by a
    `RememberedTokens` is answered at once, on the loop)."""
    verify = verifier.verify
    if isinstance(verifier, RememberedTokens):
        remembered = verifier.recall(token)
        if remembered is not None:
            return remembered
        verify = verifier.verify_anew
    if verifier.blocking:
        return await run_in_threadpool(verify, token)
    return verify(token)


# Where in a request's state the rate limit (services/platform/limits.py), which checks the bearer
# token before the route does, leaves what it found, so that the route's check (`authenticated`)
# does not check the same token again.
_CHECKED = "nearhome_checked_token"


def remember_checked(scope: MutableMapping[str, Any], token: str, principal: Principal) -> None:
    """Keep `principal` as what `token` was found to be, for this request only."""
    scope.setdefault("state", {})[_CHECKED] = (token, principal)


def _checked_before(request: Request, token: str) -> Principal | None:
    checked: tuple[str, Principal] | None = getattr(request.state, _CHECKED, None)
    if checked is None or checked[0] != token:
        return None
    return checked[1]


_bearer = HTTPBearer(
    auto_error=False,
    description="A token from the identity provider (in development, `nearhome token issue`)",
)


async def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """FastAPI dependency: the caller's principal, or 401. The rate limit's check of the same
    token in this request is taken if there was one; else the token is checked here, on the event
    loop unless the verifier may block (a worker thread for every request cost a busy service
    more than the check itself)."""
    if credentials is None:
        raise UnauthenticatedError("a bearer token is required", token_sent=False)
    verifier: TokenVerifier = request.app.state.token_verifier
    token = credentials.credentials
    try:
        return _checked_before(request, token) or await verify_token(verifier, token)
    except IdentityProviderUnavailableError as error:
        raise HTTPException(503, str(error), headers={"Retry-After": "5"}) from error


def require_role(principal: Principal, *roles: Role) -> Principal:
    if principal.role not in roles:
        allowed = " or ".join(role.value for role in roles)
        raise ForbiddenError(f"this resource is for {allowed} tokens, not {principal.role}")
    return principal
