"""The home finder's page signs in with PKCE in Debian's Chromium, against a stand-in provider.

`nearhome serve authority` runs in production (no token box), trusting the stand-in provider of
tests/identity_provider.py; the browser's requests to the provider are answered by the test
(Playwright routes): the discovery document, the authorization endpoint (which "signs in" Sefton's
home finder at once and sends the browser back with a code) and the token endpoint, which checks
the PKCE verifier against the challenge (S256) before it hands out the provider's signed tokens.
The page must then load the council's referrals with that token, say who is signed in and for
which council, and sign out through the provider's end-session endpoint.

tests/identity/test_pages_sign_in.py does the same against a real Keycloak.
"""

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from council_referrals import open_referral
from dashboard_browser import chromium
from identity_provider import IdentityProvider
from ledger_fixtures import ServedProcess
from pages_browser import Person, expect, origin_of, person
from playwright.async_api import Browser, Route
from production_services import production_process

from services.platform.auth import Role, principal_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.browser]

SEFTON = "E08000014"
CLIENT_ID = "nearhome-pages"
CODE = "the-authorization-code"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def authority(
    fresh_database_url: str, topic_prefix: str, identity_provider: IdentityProvider, tmp_path: Path
) -> AsyncIterator[ServedProcess]:
    served = production_process(
        "authority",
        fresh_database_url,
        topic_prefix,
        tmp_path / "authority.log",
        identity_provider,
        NEARHOME_OIDC_PAGES_CLIENT_ID=CLIENT_ID,
    )
    served.start()
    try:
        await served.until_answering("/ready")
        yield served
    finally:
        served.stop()


class StandInSignIn:
    """The provider's browser-facing endpoints, as the test answers them."""

    def __init__(
        self,
        provider: IdentityProvider,
        page_origin: str,
        *,
        expires_in: int = 300,
        refresh: bool = False,
    ) -> None:
        self.provider = provider
        self.page_origin = page_origin
        self.expires_in = expires_in
        self.refresh = refresh
        self.base = f"{provider.issuer}/protocol/openid-connect"
        self.authorizations: list[dict[str, str]] = []
        self.exchanges: list[dict[str, str]] = []
        self.sign_outs: list[dict[str, str]] = []
        self.access_token = provider.token_for(principal_for(Role.AUTHORITY, authority_code=SEFTON))

    def cors(self) -> dict[str, str]:
        return {"Access-Control-Allow-Origin": self.page_origin, "Vary": "Origin"}

    async def handle(self, route: Route) -> None:
        request = route.request
        url = urlsplit(request.url)
        query = {name: values[0] for name, values in parse_qs(url.query).items()}
        if url.path.endswith("/.well-known/openid-configuration"):
            await route.fulfill(json=self.discovery(), headers=self.cors())
        elif url.path == urlsplit(self.base).path + "/auth":
            self.authorizations.append(query)
            back = urlencode({"code": CODE, "state": query["state"], "session_state": "s"})
            await route.fulfill(status=302, headers={"Location": f"{query['redirect_uri']}?{back}"})
        elif url.path == urlsplit(self.base).path + "/token" and request.method == "POST":
            form = {name: values[0] for name, values in parse_qs(request.post_data or "").items()}
            self.exchanges.append(form)
            await route.fulfill(json=self.tokens(form), headers=self.cors())
        elif url.path == urlsplit(self.base).path + "/logout":
            self.sign_outs.append(query)
            back = query["post_logout_redirect_uri"] + "?" + urlencode({"state": query["state"]})
            await route.fulfill(status=302, headers={"Location": back})
        else:
            await route.fulfill(status=404)

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.provider.issuer,
            "authorization_endpoint": f"{self.base}/auth",
            "token_endpoint": f"{self.base}/token",
            "end_session_endpoint": f"{self.base}/logout",
            "jwks_uri": f"{self.provider.base_url}/jwks",
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
        }

    def tokens(self, form: dict[str, str]) -> dict[str, Any]:
        if form["grant_type"] == "refresh_token":
            assert form["refresh_token"] == "the-refresh-token"
            # A fresh access token (a new `jti`), good for longer.
            self.access_token = self.provider.token_for(
                principal_for(Role.AUTHORITY, authority_code=SEFTON), jti="renewed"
            )
            self.expires_in = 300
        else:
            challenge = self.authorizations[-1]["code_challenge"]
            verifier = form["code_verifier"]
            digest = hashlib.sha256(verifier.encode()).digest()
            assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == challenge
            assert form["code"] == CODE
        id_token = self.provider.token(
            {"aud": CLIENT_ID, "name": "Sefton Home Finder", "preferred_username": "sefton"},
            sub="sefton-home-finder",
        )
        answer = {
            "access_token": self.access_token,
            "id_token": id_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": "openid",
        }
        if self.refresh:
            answer["refresh_token"] = "the-refresh-token"
        return answer


async def test_the_home_finder_signs_in_with_pkce_and_works_with_the_providers_token(
    authority: ServedProcess, identity_provider: IdentityProvider, browser: Browser
) -> None:
    stand_in = StandInSignIn(identity_provider, authority.url)
    reference = await open_referral(authority.url, stand_in.access_token)

    home_finder = await person(browser, "sign-in-stand-in")
    await home_finder.page.route(f"{identity_provider.base_url}/**", stand_in.handle)
    page = home_finder.page
    await page.goto(authority.url + "/")
    sign_in = page.get_by_role("button", name="Sign in")
    await expect(sign_in).to_be_visible()
    await expect(page.get_by_label("Access token")).to_have_count(0)
    await expect(page.locator("#status")).to_have_text(
        "Sign in as a council\N{RIGHT SINGLE QUOTATION MARK}s home finder to start."
    )
    await home_finder.audit("signed out")

    await sign_in.click()
    await expect(page.locator("#signed-in")).to_have_text(
        f"Signed in as Sefton Home Finder, council {SEFTON}.", timeout=15_000
    )
    (authorization,) = stand_in.authorizations
    assert authorization["response_type"] == "code"
    assert authorization["client_id"] == CLIENT_ID
    assert authorization["redirect_uri"] == authority.url + "/"
    assert authorization["code_challenge_method"] == "S256"
    (exchange,) = stand_in.exchanges
    assert exchange["grant_type"] == "authorization_code"
    assert exchange["redirect_uri"] == authority.url + "/"
    # The code is gone from the address; the council's referral is on the page.
    assert page.url == authority.url + "/"
    await expect(page.locator("#council-caption")).to_have_text(f"Council {SEFTON}")
    await expect(page.locator(f'section[data-reference="{reference}"]')).to_be_visible()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    await expect(page.get_by_role("button", name="Sign in")).to_be_hidden()
    stored = await page.evaluate("JSON.stringify(Object.keys(sessionStorage))")
    assert any(key.startswith("oidc.user:") for key in json.loads(stored))
    await home_finder.audit("signed in")

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.locator("#signed-in")).to_have_text("You have signed out.", timeout=15_000)
    (sign_out,) = stand_in.sign_outs
    assert sign_out["post_logout_redirect_uri"] == authority.url + "/"
    assert "id_token_hint" in sign_out
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    await expect(page.locator(f'section[data-reference="{reference}"]')).to_have_count(0)
    stored = await page.evaluate("JSON.stringify(Object.keys(sessionStorage))")
    assert not any(key.startswith("oidc.user:") for key in json.loads(stored))

    alerting = "http://127.0.0.1:8004"  # the page's link (not running here)
    allowed = {authority.url, origin_of(identity_provider.issuer), alerting}
    outside = sorted({url for url in home_finder.requests if origin_of(url) not in allowed})
    assert not outside, outside
    scripts = [
        error
        for error in home_finder.console_errors
        if "ERR_CONNECTION_REFUSED" not in error and alerting not in error
    ]
    assert not scripts, scripts
    await home_finder.context.close()


async def signed_in(
    authority: ServedProcess, stand_in: StandInSignIn, browser: Browser, name: str
) -> Person:
    home_finder = await person(browser, name)
    await home_finder.page.route(f"{stand_in.provider.base_url}/**", stand_in.handle)
    await home_finder.page.goto(authority.url + "/")
    await home_finder.page.get_by_role("button", name="Sign in").click()
    await expect(home_finder.page.locator("#signed-in")).to_have_text(
        f"Signed in as Sefton Home Finder, council {SEFTON}.", timeout=15_000
    )
    return home_finder


async def stored_access_token(home_finder: Person) -> str:
    user = await home_finder.page.evaluate(
        "Object.entries(sessionStorage).find(([key]) => key.startsWith('oidc.user:'))?.[1]"
    )
    assert user, "no signed-in user in sessionStorage"
    token: str = json.loads(user)["access_token"]
    return token


async def test_an_expiring_sign_in_is_renewed_with_the_refresh_token(
    authority: ServedProcess, identity_provider: IdentityProvider, browser: Browser
) -> None:
    # oidc-client-ts renews 60 s before expiry: at once for a token good for 62 s.
    stand_in = StandInSignIn(identity_provider, authority.url, expires_in=62, refresh=True)
    home_finder = await signed_in(authority, stand_in, browser, "sign-in-renewed")
    first = await stored_access_token(home_finder)
    for _ in range(100):
        if any(form["grant_type"] == "refresh_token" for form in stand_in.exchanges):
            break
        await home_finder.page.wait_for_timeout(100)
    assert [form["grant_type"] for form in stand_in.exchanges] == [
        "authorization_code",
        "refresh_token",
    ]
    await expect(home_finder.page.get_by_role("button", name="Sign out")).to_be_visible()
    for _ in range(50):
        if await stored_access_token(home_finder) != first:
            break
        await home_finder.page.wait_for_timeout(100)
    assert await stored_access_token(home_finder) == stand_in.access_token != first
    await expect(home_finder.page.locator("#signed-in")).to_have_text(
        f"Signed in as Sefton Home Finder, council {SEFTON}."
    )
    await home_finder.context.close()


async def test_a_sign_in_that_cannot_be_renewed_ends_and_asks_to_sign_in_again(
    authority: ServedProcess, identity_provider: IdentityProvider, browser: Browser
) -> None:
    stand_in = StandInSignIn(identity_provider, authority.url, expires_in=4, refresh=False)
    home_finder = await signed_in(authority, stand_in, browser, "sign-in-ended")
    page = home_finder.page
    await expect(page.locator("#signed-in")).to_have_text(
        "Your sign-in has ended. Sign in again.", timeout=15_000
    )
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    await expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
    await expect(page.locator("#workspace")).to_be_hidden()
    await home_finder.audit("sign-in ended")
    await home_finder.context.close()
