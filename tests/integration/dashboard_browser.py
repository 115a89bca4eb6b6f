"""Debian's chromium, driven by Playwright, for the dashboard's browser tests."""

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"  # git-ignored: screenshots
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _prepare() -> None:
    assert CHROMIUM.exists(), (
        "the dashboard's browser tests need Debian's chromium at /usr/bin/chromium: "
        "run `apt-get install -y chromium` (the Makefile's install step does)"
    )
    OUTPUT.mkdir(exist_ok=True)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    _prepare()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def open_dashboard(page: Page, url: str, token: str) -> None:
    """Load the page, enter the token once, and wait for the first poll to render."""
    await page.goto(url + "/")
    await page.get_by_label("Access token").fill(token)
    await page.get_by_role("button", name="Use token").click()
    await page.locator("body[data-polls]").wait_for(state="attached")
