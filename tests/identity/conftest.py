"""The identity suite's Keycloak: a real server (infra/local/keycloak.py) with the realm operators
are given as the worked example (deploy/keycloak/nearhome-realm.json) and a second realm of the
tests' own (`elsewhere`, another issuer with keys of its own), started once for the package.

`keycloak` gives its issuer, tokens for the test users (password grant through the realm's
test-only clients), and its admin REST API (to rotate the realm's keys). A browser test signs in
through the realm's `nearhome-pages` client as one of `USERS`, with `PASSWORD`.
"""

import asyncio
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fresh import fresh_database, fresh_topics

from identity.served import ServedService, served
from infra.local.keycloak import KeycloakServer, launch_keycloak
from services.platform.migrations import upgrade_to_head_async

REPOSITORY = Path(__file__).resolve().parents[2]
REALM_FILE = REPOSITORY / "deploy" / "keycloak" / "nearhome-realm.json"
ELSEWHERE_REALM_FILE = Path(__file__).resolve().parent / "elsewhere-realm.json"

REALM = "nearhome"
ELSEWHERE = "elsewhere"
AUDIENCE = "nearhome-api"
ROLE_CLAIM = "realm_access.roles"

# The realm's clients: the pages' (authorization code with PKCE), and the test-only ones.
PAGES_CLIENT = "nearhome-pages"
TEST_CLIENT = "nearhome-tests"  # password grant, tokens for nearhome-api
SHORT_LIVED_CLIENT = "nearhome-tests-short-lived"  # as TEST_CLIENT, tokens that live 5 s
OTHER_AUDIENCE_CLIENT = "another-application"  # as TEST_CLIENT, its tokens for another-api
SHORT_LIFESPAN_S = 5

# Every test user's password (the realm file's; test-only users, on a local server).
PASSWORD = "nearhome-test-only"


@dataclass(frozen=True)
class TestUser:
    username: str
    role: str
    provider_id: str | None = None
    authority_code: str | None = None
    footprints: tuple[str, ...] = ()


SEFTON = "E08000014"
LANCASHIRE = "E10000017"
PROVIDER_ID = "6f1c2a9e-3b7d-4e58-9a0c-2d4b8e7f1a35"
NORTH_WEST = "placements-north-west"

USERS = {
    "sefton": TestUser("sefton-home-finder", "authority", authority_code=SEFTON),
    "lancashire": TestUser("lancashire-home-finder", "authority", authority_code=LANCASHIRE),
    "provider": TestUser("provider-manager", "provider", provider_id=PROVIDER_ID),
    "analyst": TestUser("north-west-analyst", "collaborative", footprints=(NORTH_WEST, SEFTON)),
    "admin": TestUser("nearhome-admin", "admin"),
}
"""The realm's users (deploy/keycloak/nearhome-realm.json), by who they are."""


@dataclass
class Keycloak:
    """The running server, and what the tests ask of it."""

    server: KeycloakServer

    @property
    def url(self) -> str:
        return self.server.url

    def issuer(self, realm: str = REALM) -> str:
        return self.server.issuer(realm)

    def jwks_url(self, realm: str = REALM) -> str:
        return f"{self.issuer(realm)}/protocol/openid-connect/certs"

    def token_response(
        self,
        username: str,
        *,
        client: str = TEST_CLIENT,
        realm: str = REALM,
        password: str = PASSWORD,
    ) -> dict[str, Any]:
        """The token endpoint's answer to a password grant (tokens without a browser)."""
        answer = httpx.post(
            f"{self.issuer(realm)}/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": client,
                "username": username,
                "password": password,
                "scope": "openid",
            },
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def token(self, user: TestUser | str, **options: str) -> str:
        """An access token for `user` (one of `USERS`, or a username)."""
        username = user.username if isinstance(user, TestUser) else user
        token: str = self.token_response(username, **options)["access_token"]
        return token

    def admin(self) -> httpx.Client:
        """A client of the admin REST API (`/admin/realms/...`), as the server's administrator."""
        answer = httpx.post(
            f"{self.issuer('master')}/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": self.server.admin_username,
                "password": self.server.admin_password,
            },
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        return httpx.Client(
            base_url=f"{self.url}/admin/realms",
            headers={"Authorization": f"Bearer {answer.json()['access_token']}"},
            timeout=30,
        )

    def service_environment(self, **overrides: str) -> dict[str, str]:
        """A NearHome service's identity settings trusting the `nearhome` realm, as README's
        Keycloak example sets them."""
        return {
            "NEARHOME_OIDC_ISSUER": self.issuer(),
            "NEARHOME_OIDC_AUDIENCE": AUDIENCE,
            "NEARHOME_OIDC_ROLE_CLAIM": ROLE_CLAIM,
            "NEARHOME_OIDC_PAGES_CLIENT_ID": PAGES_CLIENT,
            **overrides,
        }


def _progress(message: str) -> None:
    print(f"keycloak: {message}", file=sys.stderr, flush=True)  # noqa: T201


@pytest.fixture(scope="package")
def keycloak_launched() -> Iterator[Keycloak]:
    """The package's Keycloak server, launched but perhaps not answering yet: enough for what needs
    only its address (services' settings), so that they can start while it does."""
    server = launch_keycloak([REALM_FILE, ELSEWHERE_REALM_FILE], progress=_progress)
    try:
        yield Keycloak(server)
    finally:
        server.stop()
        shutil.rmtree(server.home, ignore_errors=True)


@pytest.fixture(scope="package")
def keycloak(keycloak_launched: Keycloak) -> Keycloak:
    """One Keycloak server for the whole package, answering (about 30 s after its launch on this
    2-core machine, once a first run has fetched, built and imported it; stopped after the
    package's last test)."""
    keycloak_launched.server.wait_until_ready(_progress)
    return keycloak_launched


# What every service of the suite is told besides the issuer: no clock skew allowed (so that a
# token is refused the second it expires), the key set kept 2 s and fetched again at once for a
# key id it lacks (so that a rotation shows within seconds).
TEST_IDENTITY_SETTINGS = {
    "NEARHOME_OIDC_LEEWAY_SECONDS": "0",
    "NEARHOME_OIDC_JWKS_CACHE_SECONDS": "2",
    "NEARHOME_OIDC_JWKS_REFRESH_COOLDOWN_SECONDS": "0",
}


@dataclass
class Services:
    """The services trusting the `nearhome` realm, and an authority service told another issuer
    (the `elsewhere` realm's) while taking its keys from the `nearhome` realm."""

    authority: ServedService
    provider: ServedService
    ledger: ServedService
    other_issuer: ServedService


@pytest.fixture(scope="package")
async def services(
    keycloak_launched: Keycloak,
    _real_infrastructure: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Services]:
    """`nearhome serve` for the authority, the provider and the ledger in production, on one
    database and one set of topics of their own, for the whole package (started while Keycloak
    starts: a service fetches the provider's keys only when the first token arrives)."""
    keycloak = keycloak_launched
    logs = tmp_path_factory.mktemp("identity-services")
    trusting = keycloak.service_environment(**TEST_IDENTITY_SETTINGS)
    async with fresh_database() as url, fresh_topics() as prefix:
        # In production the migrations are a step of their own (`nearhome migrate`); one after
        # another, as tests/fresh.py says.
        for name in ("authority", "provider", "ledger"):
            await upgrade_to_head_async(name, url)
        running = Services(
            authority=served("authority", url, prefix, logs, **trusting),
            provider=served("provider", url, prefix, logs, **trusting),
            ledger=served("ledger", url, prefix, logs, LEDGER_HISTORY_INTERVAL="3600", **trusting),
            other_issuer=served(
                "authority",
                url,
                prefix,
                logs,
                **keycloak.service_environment(
                    NEARHOME_OIDC_ISSUER=keycloak.issuer(ELSEWHERE),
                    NEARHOME_OIDC_JWKS_URL=keycloak.jwks_url(REALM),
                ),
            ),
        )
        every = (running.authority, running.provider, running.ledger, running.other_issuer)

        async def second_authority() -> None:
            # Once the first has migrated the authority's schema: not two migrations at once.
            await running.authority.until_ready()
            await running.other_issuer.start()
            await running.other_issuer.until_ready()

        try:
            for service in every[:3]:
                await service.start()
            await asyncio.gather(
                second_authority(), running.provider.until_ready(), running.ledger.until_ready()
            )
            yield running
        finally:
            await asyncio.gather(*(service.stop() for service in every))
