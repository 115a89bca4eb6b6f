"""The alerting service's composition root: settings, the broker, the app and its lifespan.

Nothing is built at import: `create_app(settings)` builds the app, its write path (the platform's
composition: a broker for the subscribers, one of the outbox's own for `alert.events`, the relay
and the writer) and its workers, and nothing connects yet, so the AsyncAPI document can be
generated from it. The lifespan checks that the schema is at head (in development, migrates it),
loads the alert book (the in-memory index of open referrals and vacancies) from the database,
then starts the consumers, the outbox relay, the webhook delivery worker and the listener that
feeds the server-sent streams.
"""

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from faststream.kafka import KafkaBroker, KafkaMessage

from contracts.topics import ALERT_EVENTS, PROVIDER_EVENTS, REFERRAL_EVENTS
from services.alerting.delivery import DeliveryWorker
from services.alerting.delivery_targets import WebhookTargets
from services.alerting.handlers import CONSUMED_TOPICS, router
from services.alerting.metrics import AlertingMetrics
from services.alerting.projection import AlertingProjection
from services.alerting.settings import Settings
from services.alerting.shards import FeedOptions, OwnShardsOfAssignedPartitions, Shards
from services.alerting.store import STREAM_CHANNEL
from services.alerting.stream import AlertStream
from services.alerting.tables import DELIVERIES, METADATA, SCHEMA, STREAM_EVENTS
from services.alerting.use_cases import Alerting
from services.platform.background import every, running
from services.platform.clock import Clock, utc_now
from services.platform.composition import compose_writing_service
from services.platform.consumer import ConsumerMetrics, KafkaDeadLetters
from services.platform.database import create_engine
from services.platform.http import allow_browser_origins
from services.platform.kafka import (
    ConsumerPlacement,
    bootstrap_hosts,
    deliveries_of,
    exactly_once_subscriber,
    observe_lag,
    start_consuming,
)
from services.platform.limits import add_input_limits
from services.platform.migrations import prepare_schema

__all__ = ["Settings", "create_app"]

# Unique per service: one relay at a time publishes this schema's outbox.
RELAY_LOCK_ID = 8004

DESCRIPTION = """\
Tells a council's home finders, within a second, about open vacancies that fit their open
referrals (docs/domain.md, rules 1-3), and takes the news back when it stops being true.

* **Who**: authority (council) tokens, and only for their own council: its subscriptions, its
  alerts, its stream; provider tokens, for their own provider: its subscriptions and its stream of
  placement-loop notices (never an alert, nor another provider's notice). Other roles get 403
  (and a provider token on `GET /v1/alerts`); a missing, bad or expired token 401.
* **Matching**: every vacancy posted and every referral opened, updated or widened is matched
  against the candidates nearby (an in-memory index), never by scanning every record. One alert
  per (referral, vacancy) pair; a new or widened referral is alerted at once about every open
  vacancy that already fits.
* **Retraction** (`AlertRetracted`, with the reason): the vacancy is withdrawn, expires or is
  taken (a placement leaves too few free beds, or a solo placement no longer possible), the setting
  closes or falls below the referral's minimum rating, either side changes so that it no longer
  fits, or the referral closes; `held` when an offer to another referral holds the beds it needed
  (alerted again, as a new alert, if the offer expires or is withdrawn).
* **Profile**: every alert carries its setting's public profile (`setting_profile`: name, Ofsted
  URN, referrals e-mail and phone, description) as it was when the alert was raised; null for a
  setting without one.
* **Delivery**: `AlertRaised`/`AlertRetracted` on `alert.events` (outbox); a signed webhook to
  every subscription of the council, signed as Standard Webhooks says (`webhook-id`,
  `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`), retried with backoff and
  dead-lettered after the last try; server-sent events on `GET /v1/alerts/stream`, each with its
  position as its `id`: a client that reconnects with `Last-Event-ID` first gets, in order, what
  it missed (kept for `NEARHOME_RETAIN_STREAM_EVENTS`, a day by default), then live events.
* **Placement-loop notices**: the placement loop's events, each told once (keyed by its event id)
  to the organisation it concerns, by the same signed, retried webhooks and on the same stream.
  The body is the event's payload with `notice_id` (the event's id), `type` and `occurred_at`;
  the `X-NearHome-Event` header and the stream's event name are the `type`:

  | type | from the event (and what it adds) | told to |
  |---|---|---|
  | `placement.requested` | `PlacementRequested` (the child's pseudonymous profile) | provider |
  | `request.withdrawn` | `RequestWithdrawn` (`reason`) | provider |
  | `offer.accepted` | `OfferAccepted` | provider |
  | `placement.offered` | `PlacementOffered` (`beds`, `expires_at`, `weekly_fee_gbp`) | council |
  | `placement.declined` | `PlacementDeclined` (`reason`) | council |
  | `offer.expired` | `OfferExpired` (`beds`) | council |
  | `offer.withdrawn` | `OfferWithdrawn` (`beds`, `reason`) | council |

  "provider" is the request's `provider_id` (the provider asked for a bed at one of its
  settings); "council" is the request's `authority_code` (the council that asked).

  Alert webhooks keep `type` `raised`/`retracted` and the header `alert.<type>`.
"""


def asyncpg_dsn(database_url: str) -> str:
    """The SQLAlchemy URL as plain asyncpg takes it (for the notification listener)."""
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _described_only(message: KafkaMessage) -> None:  # noqa: ARG001 - never called
    raise RuntimeError("this subscriber only describes the shards' reading; it never runs")


def create_app(settings: Settings, *, clock: Clock = utc_now) -> FastAPI:
    # The engine, the consumers' broker, the outbox's own broker, its relay and the writer.
    service = compose_writing_service(
        settings, METADATA, publishes=ALERT_EVENTS, relay_lock_id=RELAY_LOCK_ID
    )
    engine, relay = service.engine, service.relay
    metrics = AlertingMetrics(service.registry, stages=relay.metrics.stages)
    # The delivery drains get a pool of their own: however many subscriptions have work, they
    # never keep the consumer, the relay or the API waiting for a connection.
    delivery_engine = create_engine(
        settings.database_url, pool_size=settings.delivery_pool_size, tls=settings.database_tls
    )
    deliveries = DeliveryWorker(delivery_engine, metrics, settings)
    stream = AlertStream(
        asyncpg_dsn(settings.database_url),
        STREAM_CHANNEL,
        metrics,
        engine=engine,
        connect_args=settings.database_tls.connect_args(),
        queue_size=settings.sse_queue_size,
        heartbeat_s=settings.sse_heartbeat_interval,
        max_duration_s=settings.sse_max_duration,
        backlog_page=settings.sse_backlog_page,
    )

    async def after_batch(projection: AlertingProjection) -> None:
        # Taken before anything is awaited: no other batch of the shard has begun meanwhile.
        handed, others = projection.take_committed_deliveries()
        deliveries.hand_over(handed, committed_at=time.time())
        if others:
            deliveries.wake()
        relay.wake()
        await projection.settle_metrics(engine)

    consumer_metrics = ConsumerMetrics(service.registry)
    purposes = {topic.name: purpose for topic, purpose in CONSUMED_TOPICS}
    shards = Shards(
        engine,
        SCHEMA,
        metrics,
        consumer_metrics,
        KafkaDeadLetters(service.broker.publish),
        FeedOptions(
            settings.kafka_bootstrap_servers,
            settings.topic_prefix + PROVIDER_EVENTS.name,
            client_id=service.service,
            max_records=settings.max_records,
            retry_interval=settings.broker_retry_interval,
            security=settings.kafka_security,
        ),
        clock,
        after_batch,
        freeze_gc=settings.freeze_gc_after_load,
        lease_s=deliveries.lease_s,
    )
    placement = ConsumerPlacement(
        engine,
        SCHEMA,
        settings.consumer_group,
        topic_prefix=settings.topic_prefix,
        max_records=settings.max_records,
    )
    subscriber = exactly_once_subscriber(
        service.broker,
        REFERRAL_EVENTS,
        placement,
        purposes[REFERRAL_EVENTS.name],
        wrap_listener=lambda resume, consumer: OwnShardsOfAssignedPartitions(
            shards, resume, consumer
        ),
    )

    @subscriber
    async def on_referral_events(message: KafkaMessage) -> None:
        consumed_at = shards.consumed(message.raw_message)
        batch = deliveries_of(message)
        await shards.on_referral_batch(batch, consumed_at)
        await observe_lag(subscriber.consumer, batch, consumer_metrics)

    # Each shard reads provider.events with a consumer of its own (shards.py), outside FastStream:
    # this broker, never started, only describes that reading in the AsyncAPI document.
    described = KafkaBroker(bootstrap_hosts(settings.kafka_bootstrap_servers))
    described.subscriber(
        settings.topic_prefix + PROVIDER_EVENTS.name,
        batch=True,
        title=f"{PROVIDER_EVENTS.name}:{settings.consumer_group}",
        description=f"{purposes[PROVIDER_EVENTS.name]} Every shard reads every partition"
        f" (the shards are the partitions of {REFERRAL_EVENTS.name}). Messages as"
        f" `{PROVIDER_EVENTS.name}:publish` describes them.",
    )(_described_only)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            await prepare_schema(service.service, settings.database_url, settings.database_tls)
            try:
                async with running(
                    stream.run(),
                    relay.run(),
                    deliveries.run(),
                    *(
                        every(*job)
                        for job in service.retention.jobs(
                            delivered_webhooks=DELIVERIES, stream_events=STREAM_EVENTS
                        )
                    ),
                    start_consuming(
                        service.broker,
                        settings.broker_retry_interval,
                        bootstrap_servers=settings.kafka_bootstrap_servers,
                        security=settings.kafka_security,
                    ),
                ):
                    yield
            finally:
                shards.stopping = True  # the group may still assign partitions as it is left
                await service.broker.stop()
                await shards.stop()
                await service.publisher.close()
        finally:
            await delivery_engine.dispose()
            await engine.dispose()

    app = FastAPI(
        title="NearHome alerting service",
        version="1.0.0",
        summary="Alerts to home finders about open vacancies that fit their referrals.",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "subscriptions", "description": "A council's or provider's signed webhooks"},
            {
                "name": "alerts",
                "description": "A council's alerts, listed or streamed; a provider's notices,"
                " streamed",
            },
        ],
    )
    service.add_token_check(app)
    app.state.alerting = Alerting(
        service.writer,
        service.sessions,
        clock=clock,
        targets=WebhookTargets.of(settings.webhook_allowed_hosts),
        secret_box=settings.secret_box(),
    )
    app.state.alert_stream = stream
    service.add_operational_routes(app)
    service.add_asyncapi_route(app, described)
    allow_browser_origins(app, settings.browser_origins)
    app.include_router(router)
    add_input_limits(app, settings)
    return app
