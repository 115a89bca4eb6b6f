"""The composition shared by the services that write through an outbox and consume another's
events (the provider, the authority and alerting): their settings, their write path and their
lifespan.

`compose_writing_service` builds the parts (nothing connects): the engine, a broker for the
consumers and their dead letters, a broker of the outbox's own, the relay and the `Writer`. The
outbox publishes through its own broker so that writes reach Kafka even while the consumers are
still joining their group (after a broker restart, say): publishing never waits for them.
"""

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry
from pydantic import Field
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from contracts.topics import TopicSpec
from services.platform.asyncapi import add_asyncapi_route
from services.platform.background import every, running
from services.platform.consumer import ConsumerMetrics, Projection
from services.platform.database import create_engine, session_factory
from services.platform.http import add_operational_routes
from services.platform.identity import trusted_tokens
from services.platform.kafka import (
    ConsumerPlacement,
    OutboxPublisher,
    consume_exactly_once,
    event_broker,
    start_consuming,
)
from services.platform.migrations import prepare_schema
from services.platform.outbox import OutboxMetrics, OutboxRelay
from services.platform.retention import Retention, RetentionSettings, Scheduled
from services.platform.settings import ServiceSettings
from services.platform.writes import Writer

# The platform's tables in every writing service's schema (`outbox_table`, `idempotency_table`).
OUTBOX_TABLE = "outbox"
IDEMPOTENCY_KEYS_TABLE = "idempotency_keys"


class WritingServiceSettings(ServiceSettings, RetentionSettings):
    """What a service with an outbox and a consumer needs besides the broker and the database."""

    # The Kafka consumer group of the service's consumer (each service names its own default).
    consumer_group: str = Field(min_length=1)
    # Records per batch: each batch is one PostgreSQL transaction.
    max_records: int = Field(default=500, ge=1)
    # How long to wait before trying again to connect the consumer when the broker is down.
    broker_retry_interval: float = Field(default=2.0, gt=0)
    # The producers' request timeout (connecting, metadata, produce requests).
    kafka_request_timeout_ms: int = Field(default=10_000, ge=100)
    # The outbox relay: how long it waits after a failed send, how often it polls when idle, and
    # how often it measures the backlog gauges (also while it waits for the broker). The service's
    # own writes and consumed batches wake it at once; polling only finds rows another process
    # staged (another instance, or one that crashed), so it can be slow: at 50 ms each idle
    # service spent a tenth of a core on it.
    relay_retry_interval: float = Field(default=1.0, gt=0)
    relay_idle_interval: float = Field(default=1.0, gt=0)
    relay_backlog_interval: float = Field(default=1.0, gt=0)


@dataclass(frozen=True, slots=True)
class WritingService:
    """The parts of a service that writes through its outbox; `create_app` adds its own."""

    service: str
    settings: WritingServiceSettings
    registry: CollectorRegistry
    # An engine connects lazily; the probes need it before the lifespan starts.
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    # Carries the consumers (which start it) and their dead letters.
    broker: KafkaBroker
    outbox_broker: KafkaBroker
    publisher: OutboxPublisher
    relay: OutboxRelay
    writer: Writer
    # The retention jobs of its outbox, idempotency keys and inbox (`services.platform.retention`).
    retention: Retention

    def consume(
        self, projection: Projection[Any], topics: Sequence[tuple[TopicSpec, str]], schema: str
    ) -> None:
        """Apply each topic's records to `projection` exactly once, in `schema`; after a batch,
        wake the relay (what the batch did may have staged events in the outbox)."""

        async def after_batch() -> None:
            self.relay.wake()

        consume_exactly_once(
            self.broker,
            projection,
            topics,
            ConsumerPlacement(
                self.engine,
                schema,
                self.settings.consumer_group,
                topic_prefix=self.settings.topic_prefix,
                max_records=self.settings.max_records,
            ),
            ConsumerMetrics(self.registry),
            after_batch=after_batch,
        )

    def lifespan(
        self, *scheduled: Scheduled
    ) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
        """Check that the schema is at head (in development: migrate it), then run the consumers
        (retrying while the broker is away), the relay and the `scheduled` jobs; stop them all,
        and the brokers and the engine, at the end."""
        settings = self.settings

        @contextlib.asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            try:
                await prepare_schema(self.service, settings.database_url, settings.database_tls)
                try:
                    async with running(
                        start_consuming(
                            self.broker,
                            settings.broker_retry_interval,
                            bootstrap_servers=settings.kafka_bootstrap_servers,
                            security=settings.kafka_security,
                        ),
                        self.relay.run(),
                        *(
                            every(seconds, job, name)
                            for seconds, job, name in (*scheduled, *self.retention.jobs())
                        ),
                    ):
                        yield
                finally:
                    await self.broker.stop()
                    await self.publisher.close()
            finally:
                await self.engine.dispose()

        return lifespan

    def add_token_check(self, app: FastAPI) -> None:
        """What the app trusts its bearer tokens from (raises `IdentityNotConfiguredError` outside
        development without an identity provider)."""
        app.state.token_verifier = trusted_tokens(self.settings)

    def add_operational_routes(self, app: FastAPI) -> None:
        """The probes and metrics (with the platform's middleware) of the engine and broker."""
        add_operational_routes(
            app,
            self.registry,
            self.engine,
            self.settings.kafka_bootstrap_servers,
            kafka_security=self.settings.kafka_security,
        )

    def add_asyncapi_route(self, app: FastAPI, *described: KafkaBroker) -> None:
        """The service's part of the AsyncAPI document: both brokers' channels (and those of
        brokers that only `described` what the service reads outside FastStream)."""
        add_asyncapi_route(app, self.broker, self.outbox_broker, *described)


def compose_writing_service(
    settings: WritingServiceSettings,
    metadata: MetaData,
    *,
    publishes: TopicSpec,
    relay_lock_id: int,
) -> WritingService:
    """The write path of the service whose schema `metadata` declares (the schema is named after
    the service), built but not connected: the platform's outbox and idempotency keys in it, the
    outbox publishing to `publishes`. `relay_lock_id` is unique per service: one relay at a time
    publishes an outbox."""
    service = metadata.schema
    assert service is not None, "a service's tables live in its own schema"
    outbox, idempotency_keys = (
        metadata.tables[f"{service}.{name}"] for name in (OUTBOX_TABLE, IDEMPOTENCY_KEYS_TABLE)
    )
    registry = CollectorRegistry()
    engine = create_engine(settings.database_url, tls=settings.database_tls)
    sessions = session_factory(engine)
    client_id = f"nearhome-{service}"
    broker, outbox_broker = (
        event_broker(
            settings.kafka_bootstrap_servers,
            name,
            request_timeout_ms=settings.kafka_request_timeout_ms,
            security=settings.kafka_security,
        )
        for name in (client_id, f"{client_id}-outbox")
    )
    publisher = OutboxPublisher(outbox_broker, (publishes,), topic_prefix=settings.topic_prefix)
    relay = OutboxRelay(
        sessions,
        outbox,
        publisher.send,
        OutboxMetrics(registry),
        lock_id=relay_lock_id,
        idle_interval=settings.relay_idle_interval,
        retry_interval=settings.relay_retry_interval,
        backlog_interval=settings.relay_backlog_interval,
    )
    writer = Writer(
        sessions,
        producer=service,
        outbox=outbox,
        idempotency_keys=idempotency_keys,
        on_commit=relay.wake,
    )
    return WritingService(
        service,
        settings,
        registry,
        engine,
        sessions,
        broker,
        outbox_broker,
        publisher,
        relay,
        writer,
        Retention(engine, metadata, settings),
    )
