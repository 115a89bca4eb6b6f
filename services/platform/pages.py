"""The browser pages: each service with a page serves it from its own origin.

A page is plain HTML, CSS and JavaScript with no build step. It is styled with the GOV.UK Design
System's precompiled `govuk-frontend` package, installed from the npm registry by `make install`
(`package.json` pins it) and served here under `/govuk/` and `/assets/`, never from a CDN. Every
answer carries a Content-Security-Policy that allows scripts, styles, fonts and images from this
origin only, and fetches to this origin and to the other services the page reads (`links.json`
tells the page where they are), so a page can make no request anywhere else.

Every page has the same GOV.UK layout (`static/layout.html`) around its own content, and the same
ways to say who is using it: with an identity provider configured (`NEARHOME_OIDC_ISSUER` and
`NEARHOME_OIDC_PAGES_CLIENT_ID`), a "Sign in" button (`static/sign-in.html`: authorization code
with PKCE, by the npm package `oidc-client-ts`, served under `/oidc-client-ts/`), and with
`NEARHOME_ENV=development` only, the token box (`static/token-box.html`) where a token made by
`nearhome token issue` is pasted. `/page/sign-in.json` tells the page's script how to sign in, and
`/page/me` answers who the bearer token is as this service maps it (role and organisation), so
that no page reads a token's claims itself. The pages' shared script and styles
(`static/nearhome.js`, `static/nearhome.css`) are served under `/static/common/`, each page's own
files under `/static/`.
"""

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from html import escape
from pathlib import Path
from string import Template
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import AliasChoices, AnyHttpUrl, Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.platform.auth import Principal, authenticated
from services.platform.environment import is_development

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

    # Signing in to the pages: the identity provider (the same NEARHOME_OIDC_ISSUER the services
    # trust), the id of the public client registered there for the pages (authorization code
    # with PKCE, each page's origin a redirect URI), and the scopes the pages ask for (with Entra
    # ID, the API's own scope as well, so that the access token is for the API).
    oidc_issuer: str | None = Field(
        default=None, validation_alias=AliasChoices("NEARHOME_OIDC_ISSUER", "oidc_issuer")
    )
    oidc_pages_client_id: str | None = Field(
        default=None,
        validation_alias=AliasChoices("NEARHOME_OIDC_PAGES_CLIENT_ID", "oidc_pages_client_id"),
    )
    oidc_pages_scope: str = Field(
        default="openid",
        min_length=1,
        validation_alias=AliasChoices("NEARHOME_OIDC_PAGES_SCOPE", "oidc_pages_scope"),
    )

    def sign_in(self) -> dict[str, str] | None:
        """How a page signs in (`/page/sign-in.json`), or None if it cannot."""
        if not self.oidc_issuer or not self.oidc_pages_client_id:
            return None
        return {
            "issuer": self.oidc_issuer,
            "client_id": self.oidc_pages_client_id,
            "scope": self.oidc_pages_scope,
        }

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

    @property
    def oidc_client(self) -> Path:
        """oidc-client-ts's browser build (one classic script, its dependency bundled in)."""
        return self.web_packages / "oidc-client-ts" / "dist" / "browser"


@dataclass(frozen=True, slots=True)
class Page:
    """One service's page: in `folder`, `<name>.html` (what the page's `<main>` holds, with
    `$identity` where the sign-in and the token box go), `<name>.js` and `<name>.css`; the other
    services it reads; its title; and whose token it takes ("A provider": the token box's
    hint)."""

    folder: Path
    name: str
    title: str
    audience: str
    reads: tuple[str, ...] = ()

    def html(self, *, token_box: bool = True, sign_in: bool = False) -> str:
        """The whole page: the shared GOV.UK layout around the page's own content, with a "Sign in"
        button if `sign_in`, the token box if `token_box`, and if neither a warning that nobody
        can use the page."""
        parts = []
        if sign_in:
            parts.append(_template("sign-in.html").substitute())
        if token_box:
            parts.append(_template("token-box.html").substitute(audience=escape(self.audience)))
        if not parts:
            parts.append(_template("no-sign-in.html").substitute())
        content = Template((self.folder / f"{self.name}.html").read_text(encoding="utf-8"))
        return _template("layout.html").substitute(
            title=escape(self.title),
            name=self.name,
            sign_in_script=SIGN_IN_SCRIPT if sign_in else "",
            content=content.substitute(identity="\n".join(parts)),
        )


SIGN_IN_SCRIPT = '<script src="/oidc-client-ts/oidc-client-ts.min.js" defer></script>\n  '


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


def me(principal: Principal) -> dict[str, object]:
    """Who a verified token is, as NearHome maps it: what `/page/me` answers."""
    return {
        "role": principal.role.value,
        "organisation_id": principal.organisation_id,
        "provider_id": principal.provider_id,
        "authority_code": principal.authority_code,
        "footprints": list(principal.footprints),
    }


def add_page(app: FastAPI, page: Page, settings: PageSettings) -> None:
    """Serve `page` at `/` (built once, here), its files under `/static/`, the shared ones under
    `/static/common/`, GOV.UK Frontend under `/govuk/` and `/assets/`, oidc-client-ts under
    `/oidc-client-ts/`, the links at `/page/links.json`, how to sign in at `/page/sign-in.json`
    and who the token is at `/page/me` (none of them in the OpenAPI document).

    The token box is on the page with `NEARHOME_ENV=development` only; the "Sign in" button
    wherever an identity provider and the pages' client are configured."""
    links = settings.links()
    reads = {name: links[name] for name in page.reads}
    sign_in = settings.sign_in()
    development = is_development()
    # The page fetches the provider's discovery document and its token endpoint.
    connect_to = [_origin(url) for url in reads.values()]
    if sign_in is not None:
        connect_to.append(_origin(sign_in["issuer"]))
    headers = _headers(connect_to)
    as_dict = {name.decode(): value.decode() for name, value in headers}
    if sign_in is None and settings.oidc_issuer:
        (logger.warning if development else logger.error)(
            "the page at / has no sign-in: NEARHOME_OIDC_ISSUER is set but not "
            "NEARHOME_OIDC_PAGES_CLIENT_ID (the pages' public client at the identity provider)"
        )

    html = page.html(token_box=development, sign_in=sign_in is not None)

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(html, headers=as_dict)

    @app.get("/page/links.json", include_in_schema=False)
    async def page_links() -> JSONResponse:
        return JSONResponse(reads, headers=as_dict)

    @app.get("/page/sign-in.json", include_in_schema=False)
    async def page_sign_in() -> JSONResponse:
        return JSONResponse(sign_in or {}, headers=as_dict)

    @app.get("/page/me", include_in_schema=False)
    def page_me(principal: Annotated[Principal, Depends(authenticated)]) -> JSONResponse:
        return JSONResponse(me(principal), headers=as_dict | {"cache-control": "no-store"})

    mount = _mounter(app, headers)
    mount("/static/common", COMMON_STATIC, "page-common")
    mount("/static", page.folder, "page-static")
    _mount_packages(mount, settings, signs_in=sign_in is not None)


def _mounter(
    app: FastAPI, headers: tuple[tuple[bytes, bytes], ...]
) -> Callable[[str, Path, str], None]:
    def mount(path: str, folder: Path, name: str) -> None:
        app.mount(path, _WithHeaders(StaticFiles(directory=folder), headers), name=name)

    return mount


def _mount_packages(
    mount: Callable[[str, Path, str], None], settings: PageSettings, *, signs_in: bool
) -> None:
    """GOV.UK Frontend and oidc-client-ts, from where npm installed them."""
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
    client = settings.oidc_client
    if (client / "oidc-client-ts.min.js").is_file():
        mount("/oidc-client-ts", client, "oidc-client-ts")
    elif signs_in:
        logger.error(
            "oidc-client-ts is not installed at %s: the pages cannot sign in "
            "(run `make install`, which runs `npm ci`, or set NEARHOME_WEB_PACKAGES)",
            client,
        )
