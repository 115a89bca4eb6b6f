"""The provider service's composition root: settings, the app and its lifespan.

Nothing is built at import: `create_app(settings)` builds the app and everything it uses (nothing
connects yet); its lifespan runs the migrations, then the outbox relay and the vacancy-freshness
scheduler.
"""

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from contracts.topics import PROVIDER_EVENTS
from services.platform.asyncapi import add_asyncapi_route
from services.platform.background import every, running
from services.platform.clock import Clock, utc_now
from services.platform.database import create_engine, session_factory
from services.platform.http import add_operational_routes
from services.platform.kafka import OutboxPublisher, event_broker
from services.platform.migrations import upgrade_to_head_async
from services.platform.outbox import OutboxMetrics, OutboxRelay
from services.platform.writes import Writer
from services.provider import tables
from services.provider.handlers import router
from services.provider.settings import Settings
from services.provider.use_cases import ProviderService

__all__ = ["Settings", "create_app"]

SERVICE = "provider"
CLIENT_ID = "nearhome-provider"
# Unique per service: one relay at a time publishes this schema's outbox.
RELAY_LOCK_ID = 8001


def create_app(settings: Settings, *, clock: Clock = utc_now) -> FastAPI:
    registry = CollectorRegistry()
    outbox_metrics = OutboxMetrics(registry)
    # An engine connects lazily; the probes need it before the lifespan starts.
    engine = create_engine(settings.database_url)

    sessions = session_factory(engine)
    broker = event_broker(
        settings.kafka_bootstrap_servers,
        CLIENT_ID,
        request_timeout_ms=settings.kafka_request_timeout_ms,
    )
    publisher = OutboxPublisher(broker, (PROVIDER_EVENTS,), topic_prefix=settings.topic_prefix)
    relay = OutboxRelay(
        sessions,
        tables.OUTBOX,
        publisher.send,
        outbox_metrics,
        lock_id=RELAY_LOCK_ID,
        idle_interval=settings.relay_idle_interval,
        retry_interval=settings.relay_retry_interval,
        backlog_interval=settings.relay_backlog_interval,
    )
    writer = Writer(
        sessions,
        producer=SERVICE,
        outbox=tables.OUTBOX,
        idempotency_keys=tables.IDEMPOTENCY_KEYS,
        on_commit=relay.wake,
    )
    service = ProviderService(
        sessions, writer, clock=clock, vacancy_expire_after=settings.vacancy_expire_after
    )

    async def expire_stale_vacancies() -> None:
        await service.expire_stale_vacancies(settings.expiry_batch_size)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await upgrade_to_head_async(SERVICE, settings.database_url)
        try:
            async with running(
                relay.run(),
                every(settings.expiry_check_interval, expire_stale_vacancies, "vacancy expiry"),
            ):
                yield
        finally:
            await publisher.close()
            await engine.dispose()

    app = FastAPI(
        title="NearHome provider service",
        version="1",
        summary="Providers' settings, vacancies and placements; every change is one event.",
        lifespan=lifespan,
        openapi_tags=[
            {"name": "settings", "description": "Homes and their registered places"},
            {"name": "vacancies", "description": "Beds offered on the exchange"},
            {"name": "placements", "description": "Children living at a setting"},
        ],
    )
    app.state.jwt_secret = settings.jwt_secret
    app.state.provider_service = service
    add_operational_routes(app, registry, engine, settings.kafka_bootstrap_servers)
    add_asyncapi_route(app, broker)
    app.include_router(router)
    return app
