"""The provider service's composition root: settings, the app and its lifespan.

Nothing is built at import: `create_app(settings)` builds the app and everything it uses, its
broker with the inbox's subscriber to `referral.events` among them (nothing connects yet); its
lifespan runs the migrations, then the inbox consumer (retrying while the broker is away), the
outbox relay, and the schedulers of vacancy freshness and offer expiry.
"""

from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import Gauge

from contracts.topics import PROVIDER_EVENTS
from services.platform.clock import Clock, utc_now
from services.platform.composition import compose_writing_service
from services.platform.limits import add_input_limits
from services.platform.pages import Page, PageSettings, add_page
from services.provider import tables
from services.provider.handlers import CONSUMED_TOPICS, router
from services.provider.inbox import RequestInbox
from services.provider.settings import Settings
from services.provider.use_cases import ProviderService

__all__ = ["Settings", "create_app"]

# The workspace page this service serves at `/` (see services/platform/pages.py).
WORKSPACE = Page(
    Path(__file__).with_name("static"),
    name="provider",
    title="Provider workspace",
    audience="A provider",
    reads=("alerting",),
)
# Unique per service: one relay at a time publishes this schema's outbox.
RELAY_LOCK_ID = 8001


def create_app(
    settings: Settings, *, clock: Clock = utc_now, pages: PageSettings | None = None
) -> FastAPI:
    parts = compose_writing_service(
        settings, tables.METADATA, publishes=PROVIDER_EVENTS, relay_lock_id=RELAY_LOCK_ID
    )
    service = ProviderService(
        parts.sessions,
        parts.writer,
        clock=clock,
        vacancy_expire_after=settings.vacancy_expire_after,
        offer_hold=timedelta(hours=settings.offer_hold_hours),
    )
    # After a batch the relay wakes: a withdrawn request may have released an offer.
    parts.consume(RequestInbox(clock), CONSUMED_TOPICS, tables.SCHEMA)

    overdue = Gauge(
        "nearhome_provider_stale_vacancies",
        "Open vacancies past their confirmation deadline that the last expiry run left open"
        " (0 when expiry keeps up)",
        registry=parts.registry,
    )

    async def expire_stale_vacancies() -> None:
        await service.expire_stale_vacancies(settings.expiry_batch_size)
        overdue.set(await service.stale_vacancies())

    async def expire_offers() -> None:
        await service.expire_offers(settings.expiry_batch_size)

    lifespan = parts.lifespan(
        (settings.expiry_check_interval, expire_stale_vacancies, "vacancy expiry"),
        (settings.expiry_check_interval, expire_offers, "offer expiry"),
    )

    app = FastAPI(
        title="NearHome provider service",
        version="1",
        summary="Providers' settings, vacancies and placements; every change is one event.",
        lifespan=lifespan,
        openapi_tags=[
            {"name": "settings", "description": "Homes and their registered places"},
            {"name": "vacancies", "description": "Beds offered on the exchange"},
            {"name": "requests", "description": "Councils' placement requests and the answers"},
            {"name": "placements", "description": "Children living at a setting"},
        ],
    )
    parts.add_token_check(app)
    app.state.provider_service = service
    parts.add_operational_routes(app)
    parts.add_asyncapi_route(app)
    app.include_router(router)
    add_page(app, WORKSPACE, pages or PageSettings())
    add_input_limits(app, settings)
    return app
