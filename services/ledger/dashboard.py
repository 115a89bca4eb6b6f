"""The regional dashboard: one static page at `/` that reads the ledger's own API.

The page (`static/index.html`, `dashboard.css`, `dashboard.js`) is plain HTML, CSS and JavaScript
with no build step and no external resource: the Content-Security-Policy allows only this origin.
It asks for a token once (kept in the tab's sessionStorage) and calls `/v1/...` with it, so it
sees exactly what the token may read. For an authority's token it also shows the council's open
referrals and their alerts, read with the same token from the authority and alerting services
(named in `dashboard/links.json`; the policy allows fetches to those two origins as well).
"""

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC = Path(__file__).with_name("static")


@dataclass(frozen=True, slots=True)
class DashboardLinks:
    """Where the page finds the other services it reads (as the browser reaches them)."""

    authority_url: str
    alerting_url: str

    def origins(self) -> list[str]:
        return list(dict.fromkeys(_origin(url) for url in (self.authority_url, self.alerting_url)))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _policy(links: DashboardLinks) -> str:
    # Nothing from anywhere else: scripts and styles from this origin only, fetches to it and to
    # the two services the page reads; sparklines are inline SVG.
    connect = " ".join(["'self'", *links.origins()])
    return (
        f"default-src 'none'; script-src 'self'; style-src 'self'; connect-src {connect}; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def _headers(links: DashboardLinks) -> tuple[tuple[bytes, bytes], ...]:
    return (
        (b"content-security-policy", _policy(links).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"cache-control", b"no-cache"),
    )


class _WithPolicy:
    """Adds the dashboard's security headers to every answer of the wrapped app."""

    def __init__(self, app: ASGIApp, headers: tuple[tuple[bytes, bytes], ...]) -> None:
        self.app = app
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, send_with_policy)


def add_dashboard(app: FastAPI, links: DashboardLinks) -> None:
    """Serve the page at `/`, its files under `/static/` and where it finds the other services at
    `/dashboard/links.json` (none of them in the OpenAPI document)."""
    headers = _headers(links)
    as_dict = {name.decode(): value.decode() for name, value in headers}

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=as_dict)

    @app.get("/dashboard/links.json", include_in_schema=False)
    async def dashboard_links() -> JSONResponse:
        return JSONResponse(
            {"authority_url": links.authority_url, "alerting_url": links.alerting_url},
            headers=as_dict,
        )

    app.mount(
        "/static", _WithPolicy(StaticFiles(directory=STATIC), headers), name="dashboard-static"
    )
