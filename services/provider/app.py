"""The provider service's composition root: settings, the app and its lifespan.

Nothing is built at import: `create_app(settings)` builds the app and everything it uses, its
broker with the inbox's subscriber to `referral.events` among them (nothing connects yet); its
lifespan runs the migrations, then the inbox consumer (retrying while the broker is away), the
outbox relay, and the schedulers of vacancy freshness and offer expiry.
"""

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from contracts.topics import PROVIDER_EVENTS
from services.platform.asyncapi import add_asyncapi_route
from services.platform.background import every, running
from services.platform.clock import Clock, utc_now
from services.platform.consumer import ConsumerMetrics, ExactlyOnceProcessor, KafkaDeadLetters
from services.platform.database import create_engine, session_factory
from services.platform.http import add_operational_routes
from services.platform.kafka import (
    ConsumerPlacement,
    OutboxPublisher,
    consume,
    event_broker,
    start_consuming,
)
from services.platform.migrations import upgrade_to_head_async
from services.platform.outbox import OutboxMetrics, OutboxRelay
from services.platform.pages import Page, PageSettings, add_page
from services.platform.writes import Writer
from services.provider import tables
from services.provider.handlers import CONSUMED_TOPICS, router
from services.provider.inbox import RequestInbox
from services.provider.settings import Settings
from services.provider.use_cases import ProviderService

__all__ = ["Settings", "create_app"]

SERVICE = "provider"
# The workspace page this service serves at `/` (see services/platform/pages.py).
WORKSPACE = Path(__file__).with_name("static")
CLIENT_ID = "nearhome-provider"
# Unique per service: one relay at a time publishes this schema's outbox.
RELAY_LOCK_ID = 8001


def create_app(
    settings: Settings, *, clock: Clock = utc_now, pages: PageSettings | None = None
) -> FastAPI:
    registry = CollectorRegistry()
    outbox_metrics = OutboxMetrics(registry)
    consumer_metrics = ConsumerMetrics(registry)
    # An engine connects lazily; the probes need it before the lifespan starts.
    engine = create_engine(settings.database_url)

    sessions = session_factory(engine)
    broker = event_broker(
        settings.kafka_bootstrap_servers,
        CLIENT_ID,
        request_timeout_ms=settings.kafka_request_timeout_ms,
    )
    # The outbox publishes through a broker of its own: writes must reach Kafka even while the
    # inbox's consumer is still joining its group (after a broker restart, say), so publishing
    # never waits for the consumer to start.
    outbox_broker = event_broker(
        settings.kafka_bootstrap_servers,
        f"{CLIENT_ID}-outbox",
        request_timeout_ms=settings.kafka_request_timeout_ms,
    )
    publisher = OutboxPublisher(
        outbox_broker, (PROVIDER_EVENTS,), topic_prefix=settings.topic_prefix
    )
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
        sessions,
        writer,
        clock=clock,
        vacancy_expire_after=settings.vacancy_expire_after,
        offer_hold=timedelta(hours=settings.offer_hold_hours),
    )
    processor = ExactlyOnceProcessor(
        engine,
        tables.SCHEMA,
        RequestInbox(clock),
        KafkaDeadLetters(broker.publish),
        consumer_metrics,
    )

    async def after_batch() -> None:
        relay.wake()  # a withdrawn request may have released an offer

    consume(
        broker,
        processor,
        CONSUMED_TOPICS,
        ConsumerPlacement(
            engine=engine,
            schema=tables.SCHEMA,
            group_id=settings.consumer_group,
            topic_prefix=settings.topic_prefix,
            max_records=settings.max_records,
        ),
        after_batch=after_batch,
    )

    async def expire_stale_vacancies() -> None:
        await service.expire_stale_vacancies(settings.expiry_batch_size)

    async def expire_offers() -> None:
        await service.expire_offers(settings.expiry_batch_size)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await upgrade_to_head_async(SERVICE, settings.database_url)
        try:
            async with running(
                start_consuming(broker, settings.broker_retry_interval),
                relay.run(),
                every(settings.expiry_check_interval, expire_stale_vacancies, "vacancy expiry"),
                every(settings.expiry_check_interval, expire_offers, "offer expiry"),
            ):
                yield
        finally:
            await broker.stop()
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
            {"name": "requests", "description": "Councils' placement requests and the answers"},
            {"name": "placements", "description": "Children living at a setting"},
        ],
    )
    app.state.jwt_secret = settings.jwt_secret
    app.state.provider_service = service
    add_operational_routes(app, registry, engine, settings.kafka_bootstrap_servers)
    add_asyncapi_route(app, broker, outbox_broker)
    app.include_router(router)
    add_page(app, Page(WORKSPACE, reads=("alerting",)), pages or PageSettings())
    return app
