"""A council's home finders on the regional dashboard: their open referrals and their alerts, live.

All four services run under `nearhome run` (so its wiring of the dashboard to the authority and
alerting services is what is tested); the page, in Debian's chromium, reads the referrals and
alerts from those two services with the council's token, and never anything of another council.
"""

import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from alerting_fixtures import bearer
from authority_fixtures import referral_body
from dashboard_browser import OUTPUT, chromium, open_dashboard
from playwright.async_api import Browser, Page, expect
from provider_fixtures import setting_body, vacancy_body
from supervised import Supervised, services_run

from services.platform.auth import Role, issue_token, principal_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.browser]

SECRET = "dashboard-council-secret-of-32-bytes!"
SEFTON = "E08000014"
WIRRAL = "E08000015"
HOME = "L20"  # Sefton
NEAR = "L40"  # Lancashire, 12 miles from L20


def token_for(role: Role, **scope: Any) -> str:
    return issue_token(principal_for(role, **scope), SECRET, timedelta(hours=1))


@pytest.fixture
async def starting_exchange(
    fresh_database_url: str, topic_prefix: str
) -> AsyncIterator[Supervised]:
    """The four services under `nearhome run --no-infra`, started, not yet waited for."""
    async with services_run(
        "--no-infra", database_url=fresh_database_url, topic_prefix=topic_prefix, secret=SECRET
    ) as supervised:
        yield supervised


@pytest.fixture
async def browser(starting_exchange: Supervised) -> AsyncIterator[Browser]:
    """Chromium, launched while the exchange starts."""
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def exchange(starting_exchange: Supervised, browser: Browser) -> Supervised:
    """The exchange, once `nearhome run` says it is up (the browser launched meanwhile)."""
    await starting_exchange.wait_for_line(r"^NearHome is running", within=60.0)
    return starting_exchange


class Exchange:
    """The four services' APIs, as the people in the test call them."""

    def __init__(self, http: httpx.AsyncClient, ports: dict[str, int]) -> None:
        self.http = http
        self.url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}

    async def call(self, method: str, service: str, path: str, token: str, **kwargs: Any) -> Any:
        answer = await self.http.request(
            method, self.url[service] + path, headers=bearer(token), **kwargs
        )
        assert answer.status_code in {200, 201}, answer.text
        return answer.json()

    async def offer_a_bed(self, provider: str, district: str) -> dict[str, Any]:
        setting = await self.call(
            "POST",
            "provider",
            "/v1/settings",
            provider,
            json=setting_body(postcode_district=district),
        )
        return dict(
            await self.call(
                "POST",
                "provider",
                "/v1/vacancies",
                provider,
                json=vacancy_body(setting["setting_id"]),
            )
        )


def referral_row(page: Page, referral_id: str) -> Any:
    return page.locator(f'#referrals tr[data-referral="{referral_id}"]')


async def test_a_council_sees_its_open_referrals_and_their_alerts_change_live(
    exchange: Supervised, browser: Browser, tmp_path: Path
) -> None:
    sefton = token_for(Role.AUTHORITY, authority_code=SEFTON)
    wirral = token_for(Role.AUTHORITY, authority_code=WIRRAL)
    provider = token_for(Role.PROVIDER, provider_id="acme-care")
    async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
        api = Exchange(http, exchange.ports)
        referral = await api.call(
            "POST", "authority", "/v1/referrals", sefton, json=referral_body()
        )
        theirs = await api.call(
            "POST", "authority", "/v1/referrals", wirral, json=referral_body(reference="WIR-1")
        )
        first = await api.offer_a_bed(provider, HOME)

        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        elsewhere: list[str] = []
        page.on(
            "request",
            lambda request: (
                None
                if request.url.startswith(tuple(api.url.values()))
                else elsewhere.append(request.url)
            ),
        )
        await open_dashboard(page, api.url["ledger"], sefton)

        # Sefton's own referral, by its own reference, with the alert for the bed in Sefton.
        row = referral_row(page, referral["referral_id"])
        await expect(row.locator("th")).to_have_text(referral["reference"], timeout=20_000)
        await expect(row.locator('[data-figure="alerts"]')).to_have_text("1", timeout=20_000)
        await expect(row.locator(f'li[data-vacancy="{first["vacancy_id"]}"]')).to_contain_text(
            f"Children\u2019s home in {HOME} (0.0 miles, local)"
        )
        assert await referral_row(page, theirs["referral_id"]).count() == 0
        assert await page.get_by_label("Footprint").input_value() == "placements-north-west"

        # A second fitting bed, 12 miles away, shows up without reloading the page.
        await page.evaluate("window.__sameDocument = true")
        second = await api.offer_a_bed(provider, NEAR)
        posted = time.monotonic()
        await expect(row.locator('[data-figure="alerts"]')).to_have_text("2", timeout=20_000)
        assert time.monotonic() - posted < 20
        await expect(row.locator(f'li[data-vacancy="{second["vacancy_id"]}"]')).to_contain_text(
            f"in {NEAR} (12.0 miles, local)"
        )
        assert await page.evaluate("window.__sameDocument === true")
        await page.screenshot(path=str(OUTPUT / "dashboard-council.png"), full_page=True)
        await page.screenshot(path=str(tmp_path / "dashboard-council.png"), full_page=True)

        # Placed: the referral leaves the list.
        await api.call(
            "POST",
            "authority",
            f"/v1/referrals/{referral['referral_id']}/close",
            sefton,
            json={"outcome": "placed"},
        )
        await expect(row).to_have_count(0, timeout=20_000)
        await expect(page.locator("#referrals-status")).to_have_text(
            "0 open referrals, 0 open alerts."
        )
        assert elsewhere == []
        # Nothing of the browser's left open on the services as they stop (the page's context).
        await page.close()

    assert await exchange.stop() == 0, exchange.transcript()
