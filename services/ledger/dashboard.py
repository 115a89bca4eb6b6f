"""The regional dashboard: the ledger's page at `/`, served by the platform's `add_page`.

The page (`static/index.html`, `dashboard.js`, `dashboard.css`) is plain HTML, CSS and JavaScript
in the GOV.UK Design System's look, with no build step and no external resource (the platform's
Content-Security-Policy allows this origin only, and fetches to the two services the page reads).
It asks for a token once (kept in the tab's sessionStorage) and calls the ledger's `/v1/...` with
it, so it sees exactly what the token may read. For an authority's token it also shows the
council's open referrals and their alerts, read with the same token from the authority and
alerting services (named in `/page/links.json`).
"""

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import AnyHttpUrl

from services.platform.pages import Page, PageSettings, add_page, policy

STATIC = Path(__file__).with_name("static")
READS = ("authority", "alerting")


@dataclass(frozen=True, slots=True)
class DashboardLinks:
    """Where the page finds the other services it reads (as the browser reaches them)."""

    authority_url: str
    alerting_url: str


def add_dashboard(app: FastAPI, links: DashboardLinks) -> None:
    """Serve the page at `/` with the platform's pages (its files under `/static/`, GOV.UK
    Frontend, `/page/links.json`), and the links also at `/dashboard/links.json` in their
    earlier form (none of them in the OpenAPI document)."""
    settings = PageSettings(
        authority_url=AnyHttpUrl(links.authority_url), alerting_url=AnyHttpUrl(links.alerting_url)
    )
    add_page(app, Page(STATIC, reads=READS), settings)
    known = settings.links()
    headers = {
        "content-security-policy": policy(_origin(known[name]) for name in READS),
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "cache-control": "no-cache",
    }

    @app.get("/dashboard/links.json", include_in_schema=False)
    async def dashboard_links() -> JSONResponse:
        return JSONResponse(
            {"authority_url": known["authority"], "alerting_url": known["alerting"]},
            headers=headers,
        )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
