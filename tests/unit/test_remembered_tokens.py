"""A token once verified is taken again without verifying it: never past its expiry, never for
longer than the time it may be remembered, never when it was refused, and only so many at once."""

import time
from datetime import timedelta

import pytest

from services.platform.auth import (
    LocalTokens,
    Principal,
    RememberedTokens,
    Role,
    issue_token,
    principal_for,
    verify_token,
)
from services.platform.errors import UnauthenticatedError
from services.platform.identity import IdentitySettings, trusted_tokens

SECRET = "a-test-secret-of-at-least-thirty-two-bytes"


class CountedTokens:
    """The real local verifier, counting the tokens it is asked to verify."""

    blocking = False

    def __init__(self) -> None:
        self._local = LocalTokens(SECRET)
        self.verified: list[str] = []

    def verify(self, token: str) -> Principal:
        self.verified.append(token)
        return self._local.verify(token)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _token(council: str = "E08000014", ttl: timedelta = timedelta(hours=1)) -> str:
    return issue_token(principal_for(Role.AUTHORITY, authority_code=council), SECRET, ttl)


def _remembering(**options: float) -> tuple[RememberedTokens, CountedTokens, Clock]:
    counted, clock = CountedTokens(), Clock()
    return RememberedTokens(counted, clock=clock, **options), counted, clock  # type: ignore[arg-type]


async def test_a_token_verified_once_is_answered_again_without_verifying_it() -> None:
    tokens, counted, _ = _remembering()
    token = _token()
    first = await verify_token(tokens, token)
    again = await verify_token(tokens, token)
    assert first == again == principal_for(Role.AUTHORITY, authority_code="E08000014")
    assert counted.verified == [token]


async def test_a_token_is_verified_again_once_it_has_been_remembered_long_enough() -> None:
    tokens, counted, clock = _remembering(remember_s=60.0)
    token = _token()
    await verify_token(tokens, token)
    clock.now += 59.0
    await verify_token(tokens, token)
    assert counted.verified == [token]
    clock.now += 1.0
    await verify_token(tokens, token)
    assert counted.verified == [token, token]


async def test_an_expired_token_is_never_answered_from_memory() -> None:
    tokens, counted, clock = _remembering(remember_s=3600.0)
    token = _token(ttl=timedelta(seconds=30))
    await verify_token(tokens, token)
    clock.now += 31.0  # its exp has passed; the verifier (on the real clock) still accepts it
    await verify_token(tokens, token)
    assert counted.verified == [token, token]


async def test_a_refused_token_is_refused_every_time() -> None:
    tokens, counted, _ = _remembering()
    forged = issue_token(principal_for(Role.ADMIN), "another-secret-of-at-least-thirty-two-bytes")
    for _ in range(2):
        with pytest.raises(UnauthenticatedError):
            await verify_token(tokens, forged)
    assert counted.verified == [forged, forged]


async def test_only_so_many_tokens_are_remembered_the_least_used_lately_dropped_first() -> None:
    tokens, counted, _ = _remembering(size=2)
    first, second, third = (_token(council) for council in ("E08000014", "E06000064", "E10000017"))
    for token in (first, second, first, third):  # `second` is now the least used lately
        await verify_token(tokens, token)
    await verify_token(tokens, first)
    await verify_token(tokens, second)
    assert counted.verified == [first, second, third, second]


def test_a_providers_tokens_are_remembered_no_longer_than_its_key_set_is_kept() -> None:
    issuer, audience = "https://id.example/realms/nearhome", "nearhome"
    kept_briefly = IdentitySettings(
        oidc_issuer=issuer, oidc_audience=audience, oidc_jwks_cache_seconds=2
    )
    assert trusted_tokens(kept_briefly).remember_s == 2.0
    kept_long = IdentitySettings(oidc_issuer=issuer, oidc_audience=audience)
    assert trusted_tokens(kept_long).remember_s == 60.0
