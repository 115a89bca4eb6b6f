"""How a page says who is using it: the "Sign in" button where an identity provider and the pages'
client are configured, the token box with NEARHOME_ENV=development only, `/page/sign-in.json`,
the Content-Security-Policy's one extra origin (the provider's), and `/page/me` answering the
verified identity as the service maps it (401 as the API does otherwise).

Each service's app is built as its `create_app` builds it and asked over ASGI (nothing connects:
the routes asked here need neither the database nor the broker); production ones trust a
stand-in identity provider serving its keys over real HTTP (tests/identity_provider.py).
"""

import logging
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from identity_provider import IdentityProvider, serving_identity_provider

from services.authority.app import Settings as AuthoritySettings
from services.authority.app import create_app as authority_app
from services.ledger.app import Settings as LedgerSettings
from services.ledger.app import create_app as ledger_app
from services.platform.auth import DEVELOPMENT_SECRET, Role, issue_token, principal_for
from services.platform.pages import PageSettings
from services.provider.app import Settings as ProviderSettings
from services.provider.app import create_app as provider_app

# Never reached: the routes asked here need no database.
DATABASE_URL = "postgresql+asyncpg://nobody@127.0.0.1:9/nowhere"
CLIENT_ID = "nearhome-pages"
SEFTON = "E08000014"

AppMaker = Callable[[dict[str, Any], PageSettings], FastAPI]

SERVICES: dict[str, AppMaker] = {
    "provider": lambda identity, pages: provider_app(
        ProviderSettings(database_url=DATABASE_URL, **identity), pages=pages
    ),
    "authority": lambda identity, pages: authority_app(
        AuthoritySettings(database_url=DATABASE_URL, **identity), pages=pages
    ),
    "ledger": lambda identity, pages: ledger_app(
        LedgerSettings(database_url=DATABASE_URL, **identity), pages=pages
    ),
}


@pytest.fixture
def provider() -> Iterator[IdentityProvider]:
    with serving_identity_provider() as serving:
        yield serving


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEARHOME_ENV", raising=False)


@pytest.fixture
def development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEARHOME_ENV", "development")


def signing_in(provider: IdentityProvider, **settings: Any) -> PageSettings:
    return PageSettings(oidc_issuer=provider.issuer, oidc_pages_client_id=CLIENT_ID, **settings)


def client_of(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://page.test")


def connect_src(policy: str) -> list[str]:
    directive = next(part.strip() for part in policy.split(";") if "connect-src" in part)
    return directive.split()[1:]


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def has_token_box(html: str) -> bool:
    return 'id="token-form"' in html or 'for="token"' in html


def has_sign_in(html: str) -> bool:
    return 'data-action="sign-in"' in html and ">Sign in</button>" in html


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.usefixtures("production")
async def test_in_production_a_page_signs_in_with_the_provider_and_has_no_token_box(
    service: str, provider: IdentityProvider
) -> None:
    app = SERVICES[service](provider.settings(), signing_in(provider))
    async with client_of(app) as client:
        page = await client.get("/")
        config = await client.get("/page/sign-in.json")
        library = await client.get("/oidc-client-ts/oidc-client-ts.min.js")
        links = await client.get("/page/links.json")
        openapi = (await client.get("/openapi.json")).json()

    assert page.status_code == 200
    assert not has_token_box(page.text)
    assert has_sign_in(page.text)
    assert 'data-action="sign-out"' in page.text
    # The library's own browser build, from this origin, before the page's module.
    assert '<script src="/oidc-client-ts/oidc-client-ts.min.js" defer></script>' in page.text
    assert page.text.index("oidc-client-ts.min.js") < page.text.index('type="module"')
    assert library.status_code == 200
    assert "UserManager" in library.text

    assert config.status_code == 200
    assert config.json() == {"issuer": provider.issuer, "client_id": CLIENT_ID, "scope": "openid"}

    # The provider's origin (discovery and token endpoint) is the one origin added, to connect-src
    # only; everything else as strict as ever.
    for answer in (page, config, library, links):
        policy = answer.headers["content-security-policy"]
        assert connect_src(policy) == [
            "'self'",
            *(origin(url) for url in links.json().values()),
            origin(provider.issuer),
        ]
        assert "default-src 'none'" in policy
        assert "script-src 'self';" in policy
        assert "form-action 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert policy.count(origin(provider.issuer)) == 1
    assert not [path for path in openapi["paths"] if path.startswith("/page")]


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.usefixtures("production")
async def test_page_me_answers_the_verified_identity_as_the_service_maps_it(
    service: str, provider: IdentityProvider
) -> None:
    app = SERVICES[service](provider.settings(), signing_in(provider))
    council = provider.token_for(principal_for(Role.AUTHORITY, authority_code=SEFTON))
    home = provider.token_for(principal_for(Role.PROVIDER, provider_id="lakeland-care"))
    collaborative = provider.token_for(
        principal_for(Role.COLLABORATIVE, footprints=("placements-north-west",))
    )
    development_token = issue_token(
        principal_for(Role.AUTHORITY, authority_code=SEFTON), DEVELOPMENT_SECRET
    )
    async with client_of(app) as client:
        as_council = await client.get("/page/me", headers=bearer(council))
        as_provider = await client.get("/page/me", headers=bearer(home))
        as_collaborative = await client.get("/page/me", headers=bearer(collaborative))
        without = await client.get("/page/me")
        forged = await client.get("/page/me", headers=bearer(council[:-4] + "AAAA"))
        local = await client.get("/page/me", headers=bearer(development_token))

    assert as_council.status_code == 200, as_council.text
    assert as_council.json() == {
        "role": "authority",
        "organisation_id": SEFTON,
        "provider_id": None,
        "authority_code": SEFTON,
        "footprints": [],
    }
    assert as_council.headers["cache-control"] == "no-store"
    assert as_provider.json()["role"] == "provider"
    assert as_provider.json()["provider_id"] == "lakeland-care"
    assert as_collaborative.json()["footprints"] == ["placements-north-west"]
    # Refused as the API refuses: plain Bearer without a token, invalid_token with one.
    assert without.status_code == 401
    assert without.headers["www-authenticate"] == "Bearer"
    for refused in (forged, local):
        assert refused.status_code == 401
        assert 'error="invalid_token"' in refused.headers["www-authenticate"]


async def test_page_me_maps_the_providers_own_claim_names(
    provider: IdentityProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entra ID's way: the role among `roles` under the provider's own value, the scope in an
    extension claim. The page is told only what NearHome makes of it."""
    monkeypatch.delenv("NEARHOME_ENV", raising=False)
    identity = provider.settings(
        oidc_role_claim="roles",
        oidc_role_values=("authority=NearHome.Authority",),
        oidc_authority_code_claim="extension_abc_authorityCode",
    )
    app = SERVICES["authority"](identity, signing_in(provider))
    token = provider.token({"roles": ["NearHome.Authority"], "extension_abc_authorityCode": SEFTON})
    async with client_of(app) as client:
        answer = await client.get("/page/me", headers=bearer(token))
    assert answer.status_code == 200, answer.text
    assert answer.json()["role"] == "authority"
    assert answer.json()["authority_code"] == SEFTON


@pytest.mark.usefixtures("development")
async def test_in_development_without_a_provider_the_page_has_the_token_box_only() -> None:
    app = SERVICES["authority"]({"jwt_secret": DEVELOPMENT_SECRET}, PageSettings())
    token = issue_token(principal_for(Role.AUTHORITY, authority_code=SEFTON), DEVELOPMENT_SECRET)
    async with client_of(app) as client:
        page = await client.get("/")
        config = await client.get("/page/sign-in.json")
        me = await client.get("/page/me", headers=bearer(token))

    assert has_token_box(page.text)
    assert not has_sign_in(page.text)
    assert "oidc-client-ts" not in page.text
    assert config.json() == {}
    assert connect_src(page.headers["content-security-policy"]) == [
        "'self'",
        "http://127.0.0.1:8004",
    ]
    # One path in development too: the page asks the service who the pasted token is.
    assert me.status_code == 200
    assert me.json()["authority_code"] == SEFTON


@pytest.mark.usefixtures("development")
async def test_in_development_with_a_provider_the_page_offers_both(
    provider: IdentityProvider,
) -> None:
    app = SERVICES["ledger"](
        provider.settings(jwt_secret=DEVELOPMENT_SECRET),
        signing_in(provider, oidc_pages_scope="openid profile"),
    )
    local = issue_token(principal_for(Role.AUTHORITY, authority_code=SEFTON), DEVELOPMENT_SECRET)
    remote = provider.token_for(principal_for(Role.AUTHORITY, authority_code=SEFTON))
    async with client_of(app) as client:
        page = await client.get("/")
        config = await client.get("/page/sign-in.json")
        mine = [await client.get("/page/me", headers=bearer(token)) for token in (local, remote)]

    assert has_token_box(page.text)
    assert has_sign_in(page.text)
    assert config.json()["scope"] == "openid profile"
    assert [answer.json()["authority_code"] for answer in mine] == [SEFTON, SEFTON]


@pytest.mark.usefixtures("production")
async def test_in_production_without_the_pages_client_the_page_says_sign_in_is_not_set_up(
    provider: IdentityProvider, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="services.platform.pages"):
        app = SERVICES["provider"](provider.settings(), PageSettings(oidc_issuer=provider.issuer))
    async with client_of(app) as client:
        page = await client.get("/")
        config = await client.get("/page/sign-in.json")

    assert not has_token_box(page.text)
    assert not has_sign_in(page.text)
    assert "Signing in to this page is not set up" in page.text
    assert config.json() == {}
    assert origin(provider.issuer) not in page.headers["content-security-policy"]
    assert any("NEARHOME_OIDC_PAGES_CLIENT_ID" in record.message for record in caplog.records)


def test_the_pages_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEARHOME_OIDC_ISSUER", "https://id.example.org/realms/nearhome")
    monkeypatch.setenv("NEARHOME_OIDC_PAGES_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("NEARHOME_OIDC_PAGES_SCOPE", "openid api://nearhome/access")
    assert PageSettings().sign_in() == {
        "issuer": "https://id.example.org/realms/nearhome",
        "client_id": CLIENT_ID,
        "scope": "openid api://nearhome/access",
    }
    monkeypatch.delenv("NEARHOME_OIDC_PAGES_CLIENT_ID")
    assert PageSettings().sign_in() is None
