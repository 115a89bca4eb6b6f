"""The regional dashboard: one static page at `/` that reads the ledger's own API.

The page (`static/index.html`, `dashboard.css`, `dashboard.js`) is plain HTML, CSS and JavaScript
with no build step and no external resource: the Content-Security-Policy allows only this origin.
It asks for a token once (kept in the tab's sessionStorage) and calls `/v1/...` with it, so it
sees exactly what the token may read.
"""

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC = Path(__file__).with_name("static")

# Nothing from anywhere else: scripts, styles and fetches from this origin only; sparklines are
# inline SVG.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = (
    (b"content-security-policy", POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),
)


class _WithPolicy:
    """Adds the dashboard's security headers to every answer of the wrapped app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_policy)


def add_dashboard(app: FastAPI) -> None:
    """Serve the page at `/` and its files under `/static/` (neither in the OpenAPI document)."""

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=_headers())

    app.mount("/static", _WithPolicy(StaticFiles(directory=STATIC)), name="dashboard-static")


def _headers() -> dict[str, str]:
    return {name.decode(): value.decode() for name, value in HEADERS}
