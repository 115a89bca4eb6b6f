"""The regional dashboard at the ledger's `/`: the page itself, and a real browser watching it.

The browser test runs the provider and the ledger as `nearhome serve` processes on free ports (one
database, one test's topics), drives Debian's chromium (/usr/bin/chromium) with Playwright, and
saves a screenshot under `test-output/` (git-ignored).
"""

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from dashboard_browser import OUTPUT, chromium, open_dashboard
from ledger_fixtures import (
    PLACEMENTS_NORTH_WEST,
    SUMMARY_FIGURES,
    WESTMORLAND_AND_FURNESS,
    ServedProcess,
    collaborative_headers,
    ledger_settings,
    provider_headers,
    served_process,
    until,
)
from playwright.async_api import Page, expect
from provider_fixtures import setting_body, vacancy_body
from pydantic import AnyHttpUrl

from services.authority.app import WORKSPACE as HOME_FINDER
from services.ledger.app import create_app
from services.ledger.dashboard import DASHBOARD
from services.platform.pages import COMMON_STATIC, PageSettings
from services.provider.app import WORKSPACE as PROVIDER_WORKSPACE

LedgerGet = Callable[[str], Awaitable[Any]]


# --- the page, served -----------------------------------------------------------------------------


async def test_the_dashboard_is_served_at_the_root_with_a_policy_that_allows_nothing_external(
    fresh_database_url: str, topic_prefix: str
) -> None:
    pages = PageSettings(
        authority_url=AnyHttpUrl("http://authority.test:8102/"),
        alerting_url=AnyHttpUrl("https://alerting.test"),
    )
    app = create_app(ledger_settings(fresh_database_url, topic_prefix), pages=pages)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ledger.test"
    ) as client:
        page = await client.get("/")
        script = await client.get("/static/dashboard.js")
        style = await client.get("/static/dashboard.css")
        links = await client.get("/page/links.json")
        frontend = await client.get("/govuk/govuk-frontend.min.css")
        openapi = (await client.get("/openapi.json")).json()

    # The other services the page reads for an authority's token: there, and nowhere else.
    assert links.status_code == 200
    assert links.json() == {
        "authority": "http://authority.test:8102",
        "alerting": "https://alerting.test",
    }

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<label class="govuk-label" for="token">' in page.text
    assert 'aria-live="polite"' in page.text
    assert '<html lang="en-GB" class="govuk-template">' in page.text
    assert '<link rel="stylesheet" href="/govuk/govuk-frontend.min.css">' in page.text
    for answer in (page, script, style, links, frontend):
        assert answer.status_code == 200
        policy = answer.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "script-src 'self';" in policy
        assert "connect-src 'self' http://authority.test:8102 https://alerting.test;" in policy
    assert script.headers["content-type"].startswith("text/javascript")
    assert "/" not in openapi["paths"]


@pytest.mark.parametrize(
    "folder",
    [DASHBOARD.folder, HOME_FINDER.folder, PROVIDER_WORKSPACE.folder, COMMON_STATIC],
    ids=["dashboard", "home-finder", "provider", "common"],
)
def test_the_pages_files_name_no_external_resource(folder: Path) -> None:
    for path in folder.iterdir():
        text = path.read_text()
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+", text)) - {"http://www.w3.org"}
        assert not {url for url in urls if not url.startswith("//")}, (path.name, urls)
        assert "cdn" not in text.lower(), path.name


# --- a real browser watching live capacity -------------------------------------------------------


@contextlib.contextmanager
def stopping(*services: ServedProcess) -> Iterator[None]:
    try:
        yield
    finally:
        for service in services:
            service.stop()


@contextlib.asynccontextmanager
async def services_running(
    database_url: str, topic_prefix: str, logs: Path
) -> AsyncIterator[tuple[ServedProcess, ServedProcess]]:
    provider = served_process("provider", database_url, topic_prefix, logs / "provider.log")
    ledger = served_process(
        "ledger", database_url, topic_prefix, logs / "ledger.log", LEDGER_HISTORY_INTERVAL="1"
    )
    with stopping(provider, ledger):
        # Both at once: their start-up migrations find the fresh database (a copy of the
        # session's migrated template, tests/fresh.py) at head, and change nothing.
        provider.start()
        ledger.start()
        await asyncio.gather(provider.until_answering("/health"), ledger.until_answering("/health"))
        yield provider, ledger


async def assert_councils_match_the_api(page: Page, ledger_get: LedgerGet) -> None:
    """Every member council of the collaborative has a row, with the ledger API's figures."""
    footprint = next(
        f for f in await ledger_get("/v1/footprints") if f["footprint_id"] == PLACEMENTS_NORTH_WEST
    )
    councils = [c["authority_code"] for c in footprint["member_councils"]]
    rows = page.locator("#councils tbody tr[data-council]")
    shown_councils = await rows.evaluate_all("rs => rs.map(r => r.dataset.council)")
    assert sorted(shown_councils) == sorted(councils)
    for council in councils:
        totals = (await ledger_get(f"/v1/capacity/{council}"))["totals"]
        shown = {figure: await cell_text(page, council, figure) for figure in SUMMARY_FIGURES}
        assert shown == {figure: str(totals[figure]) for figure in SUMMARY_FIGURES}, council


async def assert_details_and_save_a_screenshot(page: Page, tmp_path: Path) -> None:
    """The council's by-type table and trend, the flows table; then the screenshot."""
    # The by-type table and the trend for the council; the flows table has its caption.
    await page.locator(f'details[data-council="{WESTMORLAND_AND_FURNESS}"] summary').click()
    by_type = page.locator(
        f'#by-type table[data-council="{WESTMORLAND_AND_FURNESS}"]'
        ' tr[data-type="childrens_home"] td[data-figure="offered"]'
    )
    assert (await by_type.inner_text()).strip() == "2"
    trend = page.locator(
        f'#councils tr[data-council="{WESTMORLAND_AND_FURNESS}"] [data-trend="offered"] svg'
    )
    assert await trend.count() == 1
    assert await page.locator("#flows caption").count() == 1

    screenshot = OUTPUT / "ledger-dashboard.png"
    await page.screenshot(path=str(screenshot), full_page=True)
    await page.screenshot(path=str(tmp_path / "ledger-dashboard.png"), full_page=True)
    assert screenshot.stat().st_size > 0


async def cell_text(page: Page, council: str, figure: str) -> str:
    cell = page.locator(f'#councils tr[data-council="{council}"] td[data-figure="{figure}"]')
    return (await cell.inner_text()).strip()


@pytest.mark.browser
@pytest.mark.kafka
@pytest.mark.postgres
async def test_a_collaborative_watches_its_councils_capacity_change_live_in_a_browser(
    fresh_database_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    provider_id = f"acme-{uuid4().hex[:10]}"
    collaborative = collaborative_headers(PLACEMENTS_NORTH_WEST)
    token = collaborative["Authorization"].removeprefix("Bearer ")

    async with (
        services_running(fresh_database_url, topic_prefix, tmp_path) as (provider, ledger),
        httpx.AsyncClient(timeout=10) as http,
        chromium() as browser,
    ):

        async def ledger_get(path: str) -> Any:
            answer = await http.get(ledger.url + path, headers=collaborative)
            assert answer.status_code == 200, answer.text
            return answer.json()

        registered = await http.post(
            f"{provider.url}/v1/settings",
            json=setting_body(registered_places=4, postcode_district="LA9"),
            headers=provider_headers(provider_id),
        )
        assert registered.status_code == 201, registered.text
        setting_id = registered.json()["setting_id"]

        async def counted() -> bool:
            figures = await ledger_get(f"/v1/capacity/{WESTMORLAND_AND_FURNESS}")
            return bool(figures["totals"]["registered_places"] == 4)

        await until(counted, "the ledger to count the new setting", timeout_s=60)

        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        external: list[str] = []
        page.on(
            "request",
            lambda request: (
                None if request.url.startswith(ledger.url) else external.append(request.url)
            ),
        )
        await open_dashboard(page, ledger.url, token)

        # The picker starts on the token's collaborative; the figures are the ledger API's.
        assert await page.get_by_label("Footprint").input_value() == PLACEMENTS_NORTH_WEST
        await assert_councils_match_the_api(page, ledger_get)
        assert await cell_text(page, WESTMORLAND_AND_FURNESS, "registered_places") == "4"
        assert await cell_text(page, WESTMORLAND_AND_FURNESS, "offered") == "0"

        # A vacancy posted through the provider API shows up without reloading the page.
        await page.evaluate("window.__sameDocument = true")
        offered = await http.post(
            f"{provider.url}/v1/vacancies",
            json=vacancy_body(setting_id, beds=2),
            headers=provider_headers(provider_id),
        )
        assert offered.status_code == 201, offered.text
        started = time.monotonic()
        offered_cell = page.locator(
            f'#councils tr[data-council="{WESTMORLAND_AND_FURNESS}"] td[data-figure="offered"]'
        )
        await expect(offered_cell).to_have_text("2", timeout=30_000)
        assert time.monotonic() - started < 30
        assert await page.evaluate("window.__sameDocument === true")
        summary_offered = page.locator('#summary [data-figure="offered"]')
        assert (await summary_offered.inner_text()).strip() == "2"
        api_offered = (await ledger_get(f"/v1/capacity/{WESTMORLAND_AND_FURNESS}"))["totals"]
        assert api_offered["offered"] == 2
        await page.get_by_role("status").filter(has_text="Updated at").wait_for()

        await assert_details_and_save_a_screenshot(page, tmp_path)
        assert external == []
