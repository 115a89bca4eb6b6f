"""The loop from alert to placement in the browser: a home finder and a provider at once.

All four services run under `nearhome run` on the test's own topics and a fresh database, each
serving its page from its own origin. Five people, each in a Chromium context of their own, with
their own token typed into the page's token box:

- Westmorland and Furness's home finder (the authority's page), Lakeland Care (the provider's
  page) and Placements North West's analyst (the ledger's dashboard) do the loop;
- Sefton's home finder and Bay Homes look on and must never see any of it.

Lakeland registers Ashdale House in Windermere (LA23) with the page's form. W&F opens two
referrals for children from Kendal (LA9, 7.5 miles away) with its form. Lakeland posts a one-bed
vacancy; it appears live under both referrals; W&F requests it for both. Both requests appear in
Lakeland's inbox; Lakeland declines one (staffing) and offers the bed on the other; W&F sees the
decline and the offer appear and accepts; Lakeland starts the placement. The placed referral
leaves W&F's open list, and the dashboard's held and occupied beds change, with no page reloaded.

At each step every page on screen is photographed into `test-output/` and checked by axe-core;
at the end, no page has asked anything of an origin outside the exchange's.
"""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from common import free_port
from dashboard_browser import chromium
from pages_browser import Person, expect, person
from playwright.async_api import Browser, Locator
from supervised import SERVICES, Supervised, nearhome_run

from services.platform.auth import Role, issue_token, principal_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.browser]

SECRET = "pages-loop-secret-of-32-bytes-or-more!"
WESTMORLAND_AND_FURNESS = "E06000064"
SEFTON = "E08000014"
LAKELAND, BAY_HOMES = "lakeland-care", "bay-homes"
PLACEMENTS_NORTH_WEST = "placements-north-west"
LIVE_MS = 30_000  # how long a live change may take to show (the pages' deadline in this test)


def token_for(role: Role, **scope: Any) -> str:
    return issue_token(principal_for(role, **scope), SECRET, timedelta(hours=1))


@pytest.fixture
async def starting_exchange(
    fresh_database_url: str, topic_prefix: str
) -> AsyncIterator[Supervised]:
    """The four services on free ports, each page told where the others are: `nearhome run`
    started, not yet waited for (`exchange` waits)."""
    ports = {name: free_port() for name in SERVICES}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    env = {
        "DATABASE_URL": fresh_database_url,
        "NEARHOME_TOPIC_PREFIX": topic_prefix,
        "NEARHOME_JWT_SECRET": SECRET,
        "NEARHOME_BROWSER_ORIGINS": ",".join(
            urls[name] for name in ("provider", "authority", "ledger")
        ),
        **{f"{name.upper()}_PORT": str(port) for name, port in ports.items()},
        **{f"NEARHOME_{name.upper()}_URL": url for name, url in urls.items()},
    }
    async with nearhome_run("--no-infra", env=env, ports=ports) as supervised:
        yield supervised


@pytest.fixture
async def browser(starting_exchange: Supervised) -> AsyncIterator[Browser]:
    """Chromium, launched while the exchange starts."""
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def exchange(starting_exchange: Supervised, browser: Browser) -> Supervised:
    """The exchange, once `nearhome run` says it is running (the browser launched meanwhile)."""
    await starting_exchange.wait_for_line(r"^NearHome is running", within=60.0)
    return starting_exchange


def url_of(exchange: Supervised, service: str) -> str:
    return f"http://127.0.0.1:{exchange.ports[service]}"


def referral_card(home_finder: Person, reference: str) -> Locator:
    return home_finder.page.locator(f'section[data-reference="{reference}"]')


def request_row(home_finder: Person, reference: str) -> Locator:
    return referral_card(home_finder, reference).locator("tr[data-request-id]")


async def register_home(provider: Person) -> None:
    """Ashdale House, a two-bed children's home in Windermere, through the page's form."""
    form = provider.page.locator("#setting-form")
    await form.get_by_label("Placement type", exact=True).select_option("childrens_home")
    await form.get_by_label("Name of the home").fill("Ashdale House")
    await form.get_by_label("Ofsted URN").fill("SC123456")
    await form.get_by_label("Ofsted rating").select_option("good")
    await form.get_by_label("Registered places").fill("2")
    await form.get_by_label("Postcode district").fill("LA23")
    await form.get_by_label("Ages from").fill("8")
    await form.get_by_label("Ages to").fill("17")
    for value in ("female", "male"):
        await form.locator(f'input[name="sexes_accepted"][value="{value}"]').check()
    await form.locator('input[name="needs_met"][value="semh"]').check()
    await form.get_by_label("Referrals email").fill("referrals@lakeland-care.example")
    await form.get_by_label("Referrals phone").fill("01539 000 123")
    await form.get_by_label("Description").fill("A two-bed home by the lake, close to schools.")
    await form.get_by_role("button", name="Register home").click()


async def post_vacancy(provider: Person) -> None:
    """One bed at Ashdale House, through the page's form."""
    form = provider.page.locator("#vacancy-form")
    await form.get_by_label("Home", exact=True).select_option(label="Ashdale House")
    await form.get_by_label("Beds").fill("1")
    await form.get_by_role("button", name="Post vacancy").click()


async def open_referral(home_finder: Person, reference: str, *, age: str) -> None:
    """A child from Kendal who needs a children's home, through the page's form."""
    form = home_finder.page.locator("#referral-form")
    await form.get_by_label("Your reference").fill(reference)
    await form.get_by_label("Age", exact=True).fill(age)
    await form.locator('input[name="sex"][value="female"]').check()
    await form.locator('input[name="placement_types"][value="childrens_home"]').check()
    await form.locator('input[name="needs"][value="semh"]').check()
    await form.get_by_label("Home postcode district").fill("LA9")
    await form.locator('input[name="needed_by"]').fill("2026-12-14")
    await form.get_by_label("Urgency").select_option("planned")
    await form.get_by_role("button", name="Open referral").click()
    await expect(referral_card(home_finder, reference)).to_be_visible(timeout=LIVE_MS)


async def test_the_loop_in_two_browsers_at_once(  # noqa: PLR0915 (one story, told in order)
    exchange: Supervised, browser: Browser
) -> None:
    authority, provider_url, ledger = (
        url_of(exchange, name) for name in ("authority", "provider", "ledger")
    )
    home_finder = await person(browser, "home-finder")
    lakeland = await person(browser, "provider")
    analyst = await person(browser, "dashboard")
    sefton = await person(browser, "other-council")
    bay_homes = await person(browser, "other-provider")
    # Five people at five browsers open their workspaces at once.
    await asyncio.gather(
        home_finder.open(
            authority, token_for(Role.AUTHORITY, authority_code=WESTMORLAND_AND_FURNESS)
        ),
        lakeland.open(provider_url, token_for(Role.PROVIDER, provider_id=LAKELAND)),
        analyst.open(ledger, token_for(Role.COLLABORATIVE, footprints=[PLACEMENTS_NORTH_WEST])),
        sefton.open(authority, token_for(Role.AUTHORITY, authority_code=SEFTON)),
        bay_homes.open(provider_url, token_for(Role.PROVIDER, provider_id=BAY_HOMES)),
    )
    await expect(home_finder.page.get_by_role("heading", name="Open referrals")).to_be_visible()
    await home_finder.step(1, "empty workspace")
    await lakeland.step(2, "empty workspace")

    # A form sent with bad fields names each one next to it, from the API's 422.
    form = home_finder.page.locator("#referral-form")
    await form.get_by_label("Your reference").fill("WF 1001")  # a space is not allowed
    await form.get_by_label("Age", exact=True).fill("18")
    await form.get_by_role("button", name="Open referral").click()
    summary = form.locator(".govuk-error-summary")
    await expect(summary).to_contain_text("There is a problem", timeout=LIVE_MS)
    for field in ("reference", "age"):
        group = form.locator(f'.govuk-form-group:has([name="{field}"])')
        await expect(group.locator(".govuk-error-message")).to_be_visible()
    await home_finder.step(3, "referral form errors")

    await register_home(lakeland)
    homes = lakeland.page.locator("table:has(caption:text('Your homes and their beds')) tbody tr")
    await expect(homes).to_have_count(1, timeout=LIVE_MS)
    await expect(homes.first).to_contain_text("Ashdale House")
    await open_referral(home_finder, "WF-1001", age="13")
    await open_referral(home_finder, "WF-1002", age="14")
    await lakeland.step(4, "home registered")

    # The dashboard's figures before the bed is offered, held and taken.
    council = analyst.page.locator(f'#councils tr[data-council="{WESTMORLAND_AND_FURNESS}"]')
    await expect(council.locator('[data-figure="registered_places"]')).to_have_text(
        "2", timeout=LIVE_MS
    )
    await expect(council.locator('[data-figure="occupied"]')).to_have_text("0")
    await expect(analyst.page.locator('#summary [data-figure="held"]')).to_have_text("0")
    await analyst.step(5, "before the loop")

    # Lakeland posts a one-bed vacancy; it appears under both referrals without a reload.
    await post_vacancy(lakeland)
    for reference in ("WF-1001", "WF-1002"):
        alert = referral_card(home_finder, reference).locator("tr[data-vacancy-id]")
        await expect(alert).to_have_count(1, timeout=LIVE_MS)
        await expect(alert).to_contain_text("Ashdale House")
        await expect(alert).to_contain_text("SC123456")
        await expect(alert).to_contain_text("Local")
        await expect(alert).to_contain_text("referrals@lakeland-care.example")
    await home_finder.step(6, "alerts appeared live")

    for reference in ("WF-1001", "WF-1002"):
        card = referral_card(home_finder, reference)
        await card.get_by_role(
            "button", name=f"Request this bed at Ashdale House for {reference}"
        ).click()
        await expect(request_row(home_finder, reference)).to_have_attribute(
            "data-state", "requested", timeout=LIVE_MS
        )
        await expect(request_row(home_finder, reference)).to_contain_text("Waiting for an answer")
    await home_finder.step(7, "beds requested")
    offered_id = await request_row(home_finder, "WF-1001").get_attribute("data-request-id")
    declined_id = await request_row(home_finder, "WF-1002").get_attribute("data-request-id")

    # Both requests appear in Lakeland's inbox live; it declines one and offers on the other.
    inbox = lakeland.page.locator("section[data-request-id]")
    await expect(inbox).to_have_count(2, timeout=LIVE_MS)
    to_decline = lakeland.page.locator(f'section[data-request-id="{declined_id}"]')
    to_offer = lakeland.page.locator(f'section[data-request-id="{offered_id}"]')
    await expect(to_offer).to_contain_text("13")
    await lakeland.step(8, "requests appeared live")
    await to_decline.get_by_label("Reason for declining").select_option("staffing")
    await to_decline.get_by_role("button", name="Decline").click()
    await expect(to_decline).to_have_attribute("data-state", "declined", timeout=LIVE_MS)
    await to_offer.get_by_role("button", name="Offer", exact=True).click()
    await expect(to_offer).to_have_attribute("data-state", "offered", timeout=LIVE_MS)
    await lakeland.step(9, "declined and offered")

    # The home finder sees both answers appear, and accepts the offer.
    await expect(request_row(home_finder, "WF-1002")).to_contain_text(
        "Declined: staffing", ignore_case=True, timeout=LIVE_MS
    )
    offer = request_row(home_finder, "WF-1001")
    await expect(offer).to_have_attribute("data-state", "offered", timeout=LIVE_MS)
    await expect(offer).to_contain_text("Offered until")
    await expect(analyst.page.locator('#summary [data-figure="held"]')).to_have_text(
        "1", timeout=LIVE_MS
    )
    await home_finder.step(10, "offer and decline appeared live")
    await analyst.step(11, "bed held")
    await offer.get_by_role("button", name="Accept offer").click()
    await expect(offer).to_have_attribute("data-state", "accepted", timeout=LIVE_MS)

    # Lakeland sees the acceptance live and starts the placement from it.
    await expect(to_offer).to_have_attribute("data-state", "accepted", timeout=LIVE_MS)
    await lakeland.step(12, "offer accepted live")
    await to_offer.get_by_role("button", name="Start placement").click()
    placements = lakeland.page.locator(
        "table:has(caption:text('Children living in your homes')) tbody tr"
    )
    await expect(placements).to_have_count(1, timeout=LIVE_MS)
    await lakeland.step(13, "placement started")

    # The placed referral leaves the open list; the dashboard shows the bed taken, not held.
    await expect(referral_card(home_finder, "WF-1001")).to_have_count(0, timeout=LIVE_MS)
    await expect(referral_card(home_finder, "WF-1002")).to_have_count(1)
    await home_finder.step(14, "placed referral left the list")
    await expect(council.locator('[data-figure="occupied"]')).to_have_text("1", timeout=LIVE_MS)
    await expect(analyst.page.locator('#summary [data-figure="held"]')).to_have_text("0")
    await analyst.step(15, "bed occupied")

    # Nobody else saw any of it.
    await expect(sefton.page.get_by_role("heading", name="Open referrals")).to_be_visible()
    sefton_text = await sefton.page.locator("main").inner_text()
    assert "WF-100" not in sefton_text
    assert "Ashdale House" not in sefton_text
    assert await sefton.page.locator("section[data-referral-id], tr[data-request-id]").count() == 0
    await sefton.step(16, "sees nothing of another council")
    bay_text = await bay_homes.page.locator("main").inner_text()
    assert "Ashdale House" not in bay_text
    assert "Westmorland" not in bay_text
    assert await bay_homes.page.locator("section[data-request-id]").count() == 0
    await bay_homes.step(17, "sees nothing of another provider")

    # Three days on, a vacancy nobody confirmed stands out, with a one-click "Still available".
    await post_vacancy(lakeland)
    await expect(lakeland.page.locator('tr[data-vacancy-id][data-stale="false"]')).to_have_count(
        1, timeout=LIVE_MS
    )
    await lakeland.page.clock.install(time=datetime.now(UTC) + timedelta(days=3, hours=1))
    await lakeland.page.reload()
    stale = lakeland.page.locator('tr[data-vacancy-id][data-stale="true"]')
    await expect(stale).to_have_count(1, timeout=LIVE_MS)
    await expect(stale).to_contain_text("Not confirmed for 3 days")
    await lakeland.step(18, "a stale vacancy stands out")
    async with lakeland.page.expect_response(
        lambda answer: answer.url.endswith("/confirm") and answer.request.method == "POST"
    ) as confirmed:
        await stale.get_by_role("button", name="Still available").click()
    assert (await confirmed.value).status == 200
    await expect(lakeland.page.get_by_role("status").first).to_contain_text(
        "Confirmed the vacancy at Ashdale House as still available"
    )

    # Every page asked only the exchange's own origins, and logged no error.
    origins = {url_of(exchange, name) for name in SERVICES}
    for someone in (home_finder, lakeland, analyst, sefton, bay_homes):
        someone.assert_only_origins(origins)
