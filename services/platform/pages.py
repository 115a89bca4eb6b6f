"""The browser pages: each service with a page serves it from its own origin.

A page is plain HTML, CSS and JavaScript with no build step. It is styled with the GOV.UK Design
System's precompiled `govuk-frontend` package, installed from the npm registry by `make install`
(`package.json` pins it) and served here under `/govuk/` and `/assets/`, never from a CDN. Every
answer carries a Content-Security-Policy that allows scripts, styles, fonts and images from this
origin only, and fetches to this origin and to the other services the page reads (`links.json`
tells the page where they are), so a page can make no request anywhere else.

Every page has the same GOV.UK layout (`static/layout.html`, with the token box of
`static/token-box.html`) around its own content; the pages' shared script and styles
(`static/nearhome.js`, `static/nearhome.css`) are served under `/static/common/`, each page's own
files under `/static/`.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from html import escape
from pathlib import Path
from string import Template
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import AliasChoices, AnyHttpUrl, Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COMMON_STATIC = Path(__file__).with_name("static")

logger = logging.getLogger(__name__)


class PageSettings(BaseSettings):
    """Where a browser reaches each service (the pages' links and their CSP), and where the
    installed `govuk-frontend` package is."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    provider_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("http://127.0.0.1:8001"),
        validation_alias=AliasChoices("NEARHOME_PROVIDER_URL", "provider_url"),
    )
    authority_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("http://127.0.0.1:8002"),
        validation_alias=AliasChoices("NEARHOME_AUTHORITY_URL", "authority_url"),
    )
    ledger_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("http://127.0.0.1:8003"),
        validation_alias=AliasChoices("NEARHOME_LEDGER_URL", "ledger_url"),
    )
    alerting_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("http://127.0.0.1:8004"),
        validation_alias=AliasChoices("NEARHOME_ALERTING_URL", "alerting_url"),
    )
    # The folder npm installed the packages into: `node_modules` where the command runs (the
    # repository's root for `make demo`), or wherever a deployment's image put it.
    web_packages: Path = Field(
        default_factory=lambda: Path.cwd() / "node_modules",
        validation_alias=AliasChoices("NEARHOME_WEB_PACKAGES", "web_packages"),
    )

    def links(self) -> dict[str, str]:
        """Each service's base URL, as the pages' script reads them."""
        return {
            "provider": _base(self.provider_url),
            "authority": _base(self.authority_url),
            "ledger": _base(self.ledger_url),
            "alerting": _base(self.alerting_url),
        }

    @property
    def govuk_frontend(self) -> Path:
        return self.web_packages / "govuk-frontend" / "dist" / "govuk"


@dataclass(frozen=True, slots=True)
class Page:
    """One service's page: in `folder`, `<name>.html` (what the page's `<main>` holds, with
    `$token_box` where the token box goes), `<name>.js` and `<name>.css`; the other services it
    reads; its title; and whose token it takes ("A provider": the token box's hint)."""

    folder: Path
    name: str
    title: str
    audience: str
    reads: tuple[str, ...] = ()

    def html(self) -> str:
        """The whole page: the shared GOV.UK layout around the page's own content."""
        token_box = _template("token-box.html").substitute(audience=escape(self.audience))
        content = Template((self.folder / f"{self.name}.html").read_text(encoding="utf-8"))
        return _template("layout.html").substitute(
            title=escape(self.title),
            name=self.name,
            content=content.substitute(token_box=token_box),
        )


def _template(name: str) -> Template:
    return Template((COMMON_STATIC / name).read_text(encoding="utf-8"))


def _base(url: AnyHttpUrl) -> str:
    return str(url).rstrip("/")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def policy(connect_to: Iterable[str]) -> str:
    """The Content-Security-Policy: nothing from anywhere but this origin, fetches to it and to
    `connect_to` (origins); charts are inline SVG."""
    connect = " ".join(["'self'", *dict.fromkeys(connect_to)])
    return (
        f"default-src 'none'; script-src 'self'; style-src 'self'; font-src 'self'; "
        f"connect-src {connect}; img-src 'self' data:; manifest-src 'self'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    )


def _headers(connect_to: Iterable[str]) -> tuple[tuple[bytes, bytes], ...]:
    return (
        (b"content-security-policy", policy(connect_to).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"cache-control", b"no-cache"),
    )


class _WithHeaders:
    """Adds the pages' security headers to every answer of the wrapped app."""

    def __init__(self, app: ASGIApp, headers: tuple[tuple[bytes, bytes], ...]) -> None:
        self.app = app
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def add_page(app: FastAPI, page: Page, settings: PageSettings) -> None:
    """Serve `page` at `/` (built once, here), its files under `/static/`, the shared ones under
    `/static/common/`, GOV.UK Frontend under `/govuk/` and `/assets/`, and the links at
    `/page/links.json` (none of them in the OpenAPI document)."""
    links = settings.links()
    reads = {name: links[name] for name in page.reads}
    headers = _headers(_origin(url) for url in reads.values())
    as_dict = {name.decode(): value.decode() for name, value in headers}

    html = page.html()

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(html, headers=as_dict)

    @app.get("/page/links.json", include_in_schema=False)
    async def page_links() -> JSONResponse:
        return JSONResponse(reads, headers=as_dict)

    def mount(path: str, folder: Path, name: str) -> None:
        app.mount(path, _WithHeaders(StaticFiles(directory=folder), headers), name=name)

    mount("/static/common", COMMON_STATIC, "page-common")
    mount("/static", page.folder, "page-static")
    frontend = settings.govuk_frontend
    if (frontend / "govuk-frontend.min.css").is_file():
        mount("/govuk", frontend, "govuk-frontend")
        mount("/assets", frontend / "assets", "govuk-assets")
    else:
        # The API works without the page's styles; say plainly how to get them.
        logger.error(
            "GOV.UK Frontend is not installed at %s: the pages will have no styles "
            "(run `make install`, which runs `npm ci`, or set NEARHOME_WEB_PACKAGES)",
            frontend,
        )
