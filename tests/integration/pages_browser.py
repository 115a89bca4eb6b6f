"""The workspaces in Debian's Chromium: one browser context per person, each watched.

Each `Person` is a browser context of its own (its own sessionStorage, so its own token) on one
page. It records every request the page makes, so a test can assert that none left the project's
own origins; it takes a screenshot of each step into `test-output/`; and it runs axe-core (the
npm package `make install` puts in `node_modules/`) on the page as it stands, failing on any
serious or critical violation.
"""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.async_api import Browser, BrowserContext, Page, Request, expect

REPOSITORY = Path(__file__).resolve().parents[2]
OUTPUT = REPOSITORY / "test-output"
AXE = REPOSITORY / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.2 AA and axe's best practices; only serious and critical violations fail a test.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
FAILING_IMPACTS = {"serious", "critical"}


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass
class Person:
    """One person at one workspace: a browser context of their own and what it did."""

    name: str
    context: BrowserContext
    page: Page
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    audited: list[str] = field(default_factory=list)

    async def open(self, url: str, token: str) -> None:
        """Load the workspace and give it the token, as a person would, in the token box."""
        await self.page.goto(url + "/")
        await self.page.get_by_label("Access token").fill(token)
        await self.page.get_by_role("button", name="Use token").click()

    async def step(self, number: int, what: str) -> None:
        """A screenshot of the page as it stands, and axe-core's verdict on it."""
        slug = re.sub(r"[^a-z0-9]+", "-", what.lower()).strip("-")
        await self.page.screenshot(
            path=OUTPUT / f"loop-{number:02d}-{self.name}-{slug}.png", full_page=True
        )
        await self.audit(what)

    async def audit(self, state: str) -> None:
        if not await self.page.evaluate("typeof window.axe !== 'undefined'"):
            await self.page.evaluate(AXE.read_text())
        results = await self.page.evaluate(
            "tags => axe.run(document, {runOnly: {type: 'tag', values: tags},"
            " resultTypes: ['violations']})",
            AXE_TAGS,
        )
        failing = [
            {
                "id": violation["id"],
                "impact": violation["impact"],
                "help": violation["help"],
                "nodes": [node["target"] for node in violation["nodes"]][:5],
            }
            for violation in results["violations"]
            if violation["impact"] in FAILING_IMPACTS
        ]
        assert not failing, (
            f"axe-core: serious or critical violations on {self.name}'s page ({state}):\n"
            + json.dumps(failing, indent=2)
        )
        self.audited.append(state)

    def assert_only_origins(self, allowed: set[str]) -> None:
        outside = sorted({url for url in self.requests if origin_of(url) not in allowed})
        assert not outside, f"{self.name}'s page asked outside the project's origins: {outside}"
        assert not self.console_errors, f"{self.name}'s page logged errors: {self.console_errors}"


async def person(browser: Browser, name: str) -> Person:
    """A fresh browser context for `name`, recording its requests and console errors."""
    assert AXE.exists(), f"axe-core is not installed at {AXE}: run `make install` (npm ci)"
    OUTPUT.mkdir(exist_ok=True)
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    someone = Person(name, context, page)

    def on_request(request: Request) -> None:
        if not request.url.startswith(("data:", "blob:")):
            someone.requests.append(request.url)

    page.on("request", on_request)
    # A refused answer (a 422, say) is logged by Chromium as a failed load: not a fault of the
    # page. A script error or a Content-Security-Policy refusal is.
    page.on(
        "console",
        lambda message: (
            someone.console_errors.append(message.text)
            if message.type == "error" and "Failed to load resource" not in message.text
            else None
        ),
    )
    page.on("pageerror", lambda error: someone.console_errors.append(str(error)))
    return someone


__all__ = ["Person", "expect", "origin_of", "person"]
