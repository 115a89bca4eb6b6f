"""The regional dashboard: the ledger's page at `/`, served by the platform's `add_page`.

The page (`static/dashboard.html`, `dashboard.js`, `dashboard.css`, in the platform's GOV.UK
layout) is plain HTML, CSS and JavaScript with no build step and no external resource: the
platform's Content-Security-Policy allows this origin only, and fetches to the two services the
page reads (and the identity provider, where the page signs in). Its user signs in (or, in
development, enters a token; either kept in the tab's sessionStorage) and it calls the ledger's
`/v1/...` with that token, so it sees exactly what the token may read. For an authority's token
it also shows the council's open referrals and their alerts, read with the same token from the
authority and alerting services (named in `/page/links.json`).
"""

from pathlib import Path

from fastapi import FastAPI

from services.platform.pages import Page, PageSettings, add_page

DASHBOARD = Page(
    Path(__file__).with_name("static"),
    name="dashboard",
    title="Regional capacity",
    audience="A collaborative's or a council's",
    reads=("authority", "alerting"),
)


def add_dashboard(app: FastAPI, pages: PageSettings) -> None:
    """Serve the dashboard with the platform's pages (`/`, its files under `/static/`, GOV.UK
    Frontend, `/page/links.json`), none of them in the OpenAPI document. The page finds the
    authority and alerting services where `pages` says (`NEARHOME_AUTHORITY_URL`,
    `NEARHOME_ALERTING_URL`), as the browser reaches them."""
    add_page(app, DASHBOARD, pages)
