"""The regional dashboard: the ledger's page at `/`, served by the platform's `add_page`.

The page (`static/dashboard.html`, `dashboard.js`, `dashboard.css`, in the platform's GOV.UK
layout) is plain HTML, CSS and JavaScript with no build step and no external resource: the
platform's Content-Security-Policy allows this origin only, and fetches to the two services the
page reads. It asks for a token once (kept in the tab's sessionStorage) and calls the ledger's
`/v1/...` with it, so it sees exactly what the token may read. For an authority's token it also
shows the council's open referrals and their alerts, read with the same token from the authority
and alerting services (named in `/page/links.json`).
"""

from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from pydantic import AnyHttpUrl

from services.platform.pages import Page, PageSettings, add_page

DASHBOARD = Page(
    Path(__file__).with_name("static"),
    name="dashboard",
    title="Regional capacity",
    audience="A collaborative's or a council's",
    reads=("authority", "alerting"),
)


@dataclass(frozen=True, slots=True)
class DashboardLinks:
    """Where the page finds the other services it reads (as the browser reaches them)."""

    authority_url: str
    alerting_url: str


def add_dashboard(app: FastAPI, links: DashboardLinks) -> None:
    """Serve the dashboard with the platform's pages (`/`, its files under `/static/`, GOV.UK
    Frontend, `/page/links.json`), none of them in the OpenAPI document."""
    settings = PageSettings(
        authority_url=AnyHttpUrl(links.authority_url), alerting_url=AnyHttpUrl(links.alerting_url)
    )
    add_page(app, DASHBOARD, settings)
