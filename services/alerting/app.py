"""The alerting service's composition root: settings, the broker, the app and its lifespan.

Nothing is built at import: `create_app(settings)` makes the app; its lifespan runs the
migrations, loads the alert book (the in-memory index of open referrals and vacancies) from the
database, then starts the consumers, the outbox relay for `alert.events`, the webhook delivery
worker and the listener that feeds the server-sent event streams. `build_broker` makes the broker
with its subscribers and publishers without connecting it, so the AsyncAPI document can be
generated from it.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.topics import ALERT_EVENTS
from services.alerting.delivery import DeliveryWorker
from services.alerting.domain import PRODUCER
from services.alerting.handlers import CONSUMED_TOPICS, router
from services.alerting.metrics import AlertingMetrics
from services.alerting.projection import AlertingProjection, Batch
from services.alerting.settings import Settings
from services.alerting.store import ALERT_CHANNEL
from services.alerting.stream import AlertStream
from services.alerting.tables import IDEMPOTENCY_KEYS, OUTBOX, SCHEMA
from services.alerting.use_cases import Alerting
from services.platform.background import running
from services.platform.clock import Clock, utc_now
from services.platform.consumer import ConsumerMetrics, ExactlyOnceProcessor, KafkaDeadLetters
from services.platform.database import create_engine, session_factory
from services.platform.http import add_operational_routes, allow_browser_origins
from services.platform.kafka import (
    ConsumerPlacement,
    OutboxPublisher,
    consume,
    event_broker,
    start_consuming,
)
from services.platform.migrations import upgrade_to_head_async
from services.platform.outbox import OutboxMetrics, OutboxRelay
from services.platform.writes import Writer

__all__ = ["Settings", "build_broker", "create_app"]

SERVICE = "alerting"
CLIENT_ID = "nearhome-alerting"
# Unique per service: one relay at a time publishes this schema's outbox.
RELAY_LOCK_ID = 8004

DESCRIPTION = """\
Tells a council's home finders, within a second, about open vacancies that fit their open
referrals (docs/domain.md, rules 1-3), and takes the news back when it stops being true.

* **Who**: authority (council) tokens only, and only for their own council: its subscriptions,
  its alerts, its stream. Other roles get 403; a missing, bad or expired token 401.
* **Matching**: every vacancy posted and every referral opened, updated or widened is matched
  against the candidates nearby (an in-memory index), never by scanning every record. One alert
  per (referral, vacancy) pair; a new or widened referral is alerted at once about every open
  vacancy that already fits.
* **Retraction** (`AlertRetracted`, with the reason): the vacancy is withdrawn, expires or is
  taken (a placement leaves too few free beds, or a solo placement no longer possible), the setting
  closes or falls below the referral's minimum rating, either side changes so that it no longer
  fits, or the referral closes.
* **Delivery**: `AlertRaised`/`AlertRetracted` on `alert.events` (outbox); a signed webhook to
  every subscription of the council (`X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
  "t.body">`), retried with backoff and dead-lettered after the last try; server-sent events on
  `GET /v1/alerts/stream`.
"""


class BrokerNotStartedError(Exception):
    """The broker the outbox publishes through has not been started (by the consumers) yet."""


class ConsumersBrokerPublisher(OutboxPublisher):
    """The `alert.events` publisher, on the broker the consumers run on.

    The platform's publisher starts its broker at the first send; starting this one would start
    its subscribers a second time, so only `start_consuming` starts it. A send before then is
    refused, and the relay tries again after its retry interval, as it does while Kafka is away.
    """

    async def _ensure_connected(self) -> None:
        if not self._broker.running:
            raise BrokerNotStartedError("the alerting broker has not started yet")


def _broker_and_publisher(
    settings: Settings,
    engine: AsyncEngine,
    processor: ExactlyOnceProcessor[Batch],
    after_batch: Callable[[], Awaitable[None]],
) -> tuple[KafkaBroker, OutboxPublisher]:
    broker = event_broker(
        settings.kafka_bootstrap_servers,
        CLIENT_ID,
        request_timeout_ms=settings.kafka_request_timeout_ms,
    )
    placement = ConsumerPlacement(
        engine,
        SCHEMA,
        settings.consumer_group,
        topic_prefix=settings.topic_prefix,
        max_records=settings.max_records,
    )
    consume(broker, processor, CONSUMED_TOPICS, placement, after_batch=after_batch)
    publisher = ConsumersBrokerPublisher(
        broker, (ALERT_EVENTS,), topic_prefix=settings.topic_prefix
    )
    return broker, publisher


def build_broker(
    settings: Settings,
    engine: AsyncEngine,
    processor: ExactlyOnceProcessor[Batch],
    after_batch: Callable[[], Awaitable[None]],
) -> KafkaBroker:
    """Alerting's broker: a subscriber per topic it reads and the `alert.events` publisher.

    Nothing connects until the broker is started, so the AsyncAPI document can be made from it.
    """
    broker, _ = _broker_and_publisher(settings, engine, processor, after_batch)
    return broker


def asyncpg_dsn(database_url: str) -> str:
    """The SQLAlchemy URL as plain asyncpg takes it (for the notification listener)."""
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


def create_app(settings: Settings, *, clock: Clock = utc_now) -> FastAPI:
    registry = CollectorRegistry()
    consumer_metrics = ConsumerMetrics(registry)
    outbox_metrics = OutboxMetrics(registry)
    metrics = AlertingMetrics(registry)
    # An engine connects lazily; the probes need it before the lifespan starts.
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await upgrade_to_head_async(SERVICE, settings.database_url)
            projection = AlertingProjection(metrics, clock, freeze_gc=settings.freeze_gc_after_load)
            await projection.warm_up(engine)

            # The delivery drains get a pool of their own: however many subscriptions have work,
            # they never keep the consumer, the relay or the API waiting for a connection.
            delivery_engine = create_engine(
                settings.database_url, pool_size=settings.delivery_pool_size
            )
            deliveries = DeliveryWorker(
                delivery_engine,
                metrics,
                backoff=settings.webhook_backoff,
                per_subscription=settings.webhook_concurrency,
                batch_size=settings.delivery_batch_size,
                poll_interval=settings.delivery_poll_interval,
                request_timeout=settings.webhook_timeout,
            )
            stream = AlertStream(
                asyncpg_dsn(settings.database_url),
                ALERT_CHANNEL,
                metrics,
                queue_size=settings.sse_queue_size,
                heartbeat_s=settings.sse_heartbeat_interval,
                max_duration_s=settings.sse_max_duration,
            )

            # The processor dead-letters through the broker it is subscribed on, which is built
            # with it: the name is looked up when a record is dead-lettered, long after both.
            async def dead_letter(*args: Any, **kwargs: Any) -> object:  # noqa: ANN401
                return await broker.publish(*args, **kwargs)

            async def after_batch() -> None:
                relay.wake()
                deliveries.wake()
                await projection.settle_metrics(engine)

            processor = ExactlyOnceProcessor(
                engine, SCHEMA, projection, KafkaDeadLetters(dead_letter), consumer_metrics
            )
            broker, publisher = _broker_and_publisher(settings, engine, processor, after_batch)
            relay = OutboxRelay(
                sessions,
                OUTBOX,
                publisher.send,
                outbox_metrics,
                lock_id=RELAY_LOCK_ID,
                idle_interval=settings.relay_idle_interval,
                retry_interval=settings.relay_retry_interval,
                backlog_interval=settings.relay_backlog_interval,
            )
            writer = Writer(
                sessions,
                producer=PRODUCER,
                outbox=OUTBOX,
                idempotency_keys=IDEMPOTENCY_KEYS,
                on_commit=relay.wake,
            )
            app.state.alerting = Alerting(writer, sessions, clock=clock)
            app.state.alert_stream = stream
            try:
                async with running(
                    stream.run(),
                    relay.run(),
                    deliveries.run(),
                    start_consuming(broker, settings.broker_retry_interval),
                ):
                    yield
            finally:
                await broker.stop()
                await delivery_engine.dispose()
        finally:
            await engine.dispose()

    app = FastAPI(
        title="NearHome alerting service",
        version="1.0.0",
        summary="Alerts to home finders about open vacancies that fit their referrals.",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "subscriptions", "description": "A council's signed webhooks"},
            {"name": "alerts", "description": "A council's alerts, listed or streamed"},
        ],
    )
    app.state.jwt_secret = settings.jwt_secret
    add_operational_routes(app, registry, engine, settings.kafka_bootstrap_servers)
    allow_browser_origins(app, settings.browser_origins)
    app.include_router(router)
    return app
