"""The home finder signs in to the authority's page at a real Keycloak, in Debian's Chromium.

`nearhome serve authority` runs in production (so the page has no token box) on one of the local
pages' ports (the realm's `nearhome-pages` client takes those as redirect URIs), trusting the
`nearhome` realm and told the pages' client. Sefton's home finder clicks "Sign in", fills
Keycloak's own login form, and lands back on the page signed in (authorization code with PKCE,
S256, by oidc-client-ts): the page says who and which council, and shows the council's referral,
read with the access token Keycloak issued to the pages' client. "Sign out" ends the Keycloak
session too: signing in again asks for the password again.
"""

import base64
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from council_referrals import open_referral
from integration.dashboard_browser import chromium
from integration.pages_browser import expect, origin_of, person
from playwright.async_api import Browser, Page

from identity.conftest import PAGES_CLIENT, PASSWORD, SEFTON, USERS, Keycloak
from identity.served import ServedService, served

pytestmark = [pytest.mark.identity, pytest.mark.browser, pytest.mark.kafka, pytest.mark.postgres]

# The pages' local origins, which the realm's pages client accepts as redirect URIs.
PAGE_PORTS = (8002, 8001, 8003, 8004)
SIGN_IN_TIMEOUT_MS = 30_000


def free_page_port() -> int:
    for port in PAGE_PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.fail(f"none of the pages' ports {PAGE_PORTS} is free (is `make demo` running?)")


@pytest.fixture
async def authority(
    keycloak: Keycloak, fresh_database_url: str, topic_prefix: str, tmp_path: Path
) -> AsyncIterator[ServedService]:
    service = served(
        "authority",
        fresh_database_url,
        topic_prefix,
        tmp_path,
        **keycloak.service_environment(NEARHOME_OIDC_PAGES_CLIENT_ID=PAGES_CLIENT),
    )
    service.port = free_page_port()
    service.env["AUTHORITY_PORT"] = str(service.port)
    await service.start()
    try:
        await service.until_ready()
        yield service
    finally:
        await service.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


async def stored_user(page: Page) -> dict[str, Any] | None:
    stored = await page.evaluate(
        "Object.entries(sessionStorage).find(([key]) => key.startsWith('oidc.user:'))?.[1] ?? null"
    )
    return json.loads(stored) if stored else None


async def log_in_at_keycloak(page: Page, username: str) -> None:
    await page.locator("#username").wait_for(timeout=SIGN_IN_TIMEOUT_MS)
    await page.locator("#username").fill(username)
    await page.locator("#password").fill(PASSWORD)
    await page.locator("#kc-login").click()


async def test_the_home_finder_signs_in_at_keycloak_and_sees_the_councils_referrals(
    keycloak: Keycloak, authority: ServedService, browser: Browser
) -> None:
    sefton = USERS["sefton"]
    # The council's referral, opened beforehand (with a token of the realm's test client).
    reference = await open_referral(authority.url, keycloak.token(sefton))

    home_finder = await person(browser, "keycloak-sign-in")
    page = home_finder.page
    await page.goto(authority.url + "/")
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    await expect(page.get_by_label("Access token")).to_have_count(0)
    await home_finder.audit("signed out")

    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{keycloak.url}/**", timeout=SIGN_IN_TIMEOUT_MS)
    assert "code_challenge_method=S256" in page.url
    assert f"client_id={PAGES_CLIENT}" in page.url
    await log_in_at_keycloak(page, sefton.username)

    await expect(page.locator("#signed-in")).to_have_text(
        f"Signed in as Sefton Home Finder, council {SEFTON}.", timeout=SIGN_IN_TIMEOUT_MS
    )
    assert page.url == authority.url + "/"  # the code is gone from the address
    await expect(page.locator("#council-caption")).to_have_text(f"Council {SEFTON}")
    await expect(page.locator(f'section[data-reference="{reference}"]')).to_be_visible(
        timeout=SIGN_IN_TIMEOUT_MS
    )
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    await expect(page.get_by_role("button", name="Sign in")).to_be_hidden()
    user = await stored_user(page)
    assert user is not None
    access = claims_of(user["access_token"])
    assert access["iss"] == keycloak.issuer()
    assert access["azp"] == PAGES_CLIENT  # issued to the pages' client, through the browser
    assert access["authority_code"] == SEFTON
    await home_finder.step(1, "signed in at Keycloak")

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.locator("#signed-in")).to_have_text(
        "You have signed out.", timeout=SIGN_IN_TIMEOUT_MS
    )
    assert page.url == authority.url + "/"
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    await expect(page.locator(f'section[data-reference="{reference}"]')).to_have_count(0)
    assert await stored_user(page) is None
    await home_finder.audit("signed out again")

    # The Keycloak session ended too: signing in again asks for the password.
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{keycloak.url}/**", timeout=SIGN_IN_TIMEOUT_MS)
    await expect(page.locator("#password")).to_be_visible()

    # Nothing asked of anywhere but the page's origin, its links' and Keycloak's.
    allowed = {authority.url, origin_of(keycloak.url), "http://127.0.0.1:8004"}
    outside = sorted({url for url in home_finder.requests if origin_of(url) not in allowed})
    assert not outside, outside
    errors = [
        error
        for error in home_finder.console_errors
        if "ERR_CONNECTION_REFUSED" not in error and "127.0.0.1:8004" not in error
    ]
    assert not errors, errors
    await home_finder.context.close()
