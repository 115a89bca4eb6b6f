"""Transactional outbox: an event row commits with the state change; a relay publishes it later.

The relay publishes unsent rows in id order (so in order per aggregate), waits for the broker's
acknowledgement (acks=all, idempotent producer) and only then marks them sent. If it dies between
the two it publishes the same `event_id` again, and consumers deduplicate by it. If the broker is
down, rows wait and the relay retries, still in order, until it is back. (Once connected, the
idempotent producer itself retries a send until the broker acknowledges it, so the relay waits
for those acknowledgements rather than failing; if the producer cannot connect at all, the send
fails and the relay tries again after `retry_interval`.)
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    Uuid,
    func,
    select,
    text,
    update,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts.envelope import Envelope
from contracts.serialization import to_bytes
from contracts.topics import topic_for_event
from services.platform.background import wait_for_event
from services.platform.failpoints import failpoint
from services.platform.tables import qualified, unnest

logger = logging.getLogger(__name__)


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("event_id", Uuid, nullable=False, unique=True),
        Column("event_type", Text, nullable=False),
        Column("topic", Text, nullable=False),
        Column("message_key", LargeBinary, nullable=False),
        Column("aggregate_id", Uuid, nullable=False),
        Column("sequence", Integer, nullable=False),
        Column("body", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True)),
        Index("outbox_unsent", "id", postgresql_where=text("published_at IS NULL")),
        # Retention finds the rows sent before its horizon by this.
        Index("outbox_sent_at", "published_at", postgresql_where=text("published_at IS NOT NULL")),
    )


def _outbox_row(envelope: Envelope[Any]) -> dict[str, Any]:
    """The outbox columns an event is staged with (`id` and `published_at` are the table's)."""
    return {
        "event_id": envelope.event_id,
        "event_type": envelope.event_type,
        "topic": topic_for_event(envelope.event_type).name,
        "message_key": envelope.key,
        "aggregate_id": envelope.aggregate_id,
        "sequence": envelope.sequence,
        "body": to_bytes(envelope),
        "created_at": envelope.occurred_at,
    }


_STAGED_COLUMNS = (
    "event_id",
    "event_type",
    "topic",
    "message_key",
    "aggregate_id",
    "sequence",
    "body",
    "created_at",
)


async def add_to_outbox(session: AsyncSession, outbox: Table, envelope: Envelope[Any]) -> None:
    """Stage `envelope` for publishing; it is sent only if the caller's transaction commits."""
    await session.execute(outbox.insert().values(**_outbox_row(envelope)))


@cache
def _insert_in_order(outbox: Table) -> str:
    columns = [outbox.c[name] for name in _STAGED_COLUMNS]
    names = ", ".join(f'"{column.name}"' for column in columns)
    return f"""
INSERT INTO {qualified(outbox)} ({names})
SELECT {names} FROM {unnest(*columns, ordinality=True)}
ORDER BY n
"""  # noqa: S608 - names from the table's own metadata


async def stage_in_outbox(
    connection: asyncpg.Connection, outbox: Table, envelopes: Sequence[Envelope[Any]]
) -> None:
    """Stage `envelopes` on an asyncpg connection, in the caller's transaction (sent only if it
    commits); the outbox's ids, and so the relay's publishing order, follow the order given."""
    rows = [_outbox_row(envelope) for envelope in envelopes]
    await connection.execute(
        _insert_in_order(outbox), *([row[name] for row in rows] for name in _STAGED_COLUMNS)
    )


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    topic: str
    key: bytes
    body: bytes
    headers: dict[str, str]
    # The record's timestamp (milliseconds since the epoch): the moment the relay sent it, so
    # that a consumer times its own stage from the relay's (`PipelineStage.CONSUMED`).
    timestamp_ms: int | None = None


# Sends one message and returns an awaitable that resolves once the broker has acknowledged it,
# so that a batch can be in flight at once and still be confirmed in order.
Send = Callable[[OutgoingMessage], Awaitable[Awaitable[object]]]


class PipelineStage:
    """The stages of an event's way from a write to a webhook, each timed from the one before it
    for the same event, on clocks every process of one machine shares (the wall clock):

    - `relayed`: the outbox row's `created_at` (the event's `occurred_at`, set in the writing
      transaction just before it commits) to the relay sending it (the Kafka record's timestamp);
    - `consumed`: the record's timestamp to a consumer having it in hand (broker, acknowledgement
      and fetch);
    - `committed`: in hand to the batch's transaction committing (alerting: per shard, the wait
      for the shard, matching and the alerts, webhooks and outbox rows written);
    - `answered`: the alert's commit to its webhook's receiver answering a first try (the wait
      for the delivery worker, signing and the request).
    """

    RELAYED = "relayed"
    CONSUMED = "consumed"
    COMMITTED = "committed"
    ANSWERED = "answered"


# Fine at the low end: the floor of a stage is milliseconds, and the benchmark reads quantiles
# from these buckets.
_STAGE_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.35, 0.5, 0.75,
    1.0, 1.5, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, float("inf"),
)  # fmt: skip


def pipeline_stage_histogram(registry: CollectorRegistry) -> Histogram:
    """`nearhome_pipeline_stage_seconds{stage}`: one per registry (the outbox's metrics make it,
    and a service's consumers and workers observe their stages on that one)."""
    return Histogram(
        "nearhome_pipeline_stage_seconds",
        "Time an event spent in one stage of its way from a write to a webhook, from the end of"
        " the stage before it (relayed, consumed, committed, answered)",
        ["stage"],
        registry=registry,
        buckets=_STAGE_BUCKETS,
    )


class OutboxMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.stages = pipeline_stage_histogram(registry)
        self.backlog = Gauge(
            "nearhome_outbox_backlog", "Events in the outbox not yet published", registry=registry
        )
        self.oldest_unsent_age = Gauge(
            "nearhome_outbox_oldest_unsent_age_seconds",
            "Age of the oldest event not yet published (0 when none)",
            registry=registry,
        )
        self.published = Counter(
            "nearhome_events_published",
            "Events published to Kafka by the outbox relay",
            ["topic", "event_type"],
            registry=registry,
        )
        self.publish_failures = Counter(
            "nearhome_outbox_publish_failures",
            "Relay cycles that stopped because the broker did not acknowledge",
            registry=registry,
        )


@dataclass(eq=False)
class OutboxRelay:
    """Publishes a service's outbox to Kafka, one batch at a time, in id order."""

    sessions: async_sessionmaker[AsyncSession]
    outbox: Table
    send: Send
    metrics: OutboxMetrics
    _: KW_ONLY
    lock_id: int
    batch_size: int = 500
    idle_interval: float = 1.0
    retry_interval: float = 1.0
    backlog_interval: float = 1.0
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def wake(self) -> None:
        """Publish now rather than at the next poll: called after a write commits."""
        self._wake.set()

    async def publish_pending(self) -> int:
        """Publish one batch of unsent events; returns how many were acknowledged and marked."""
        async with self.sessions() as session, session.begin():
            # One relay per schema at a time, or two could interleave an aggregate's events.
            locked = await session.scalar(select(func.pg_try_advisory_xact_lock(self.lock_id)))
            if not locked:
                return 0
            rows = (
                await session.execute(
                    select(self.outbox)
                    .where(self.outbox.c.published_at.is_(None))
                    .order_by(self.outbox.c.id)
                    .limit(self.batch_size)
                )
            ).all()
            if not rows:
                return 0
            acknowledged = await self._send_in_order(rows)
            if acknowledged:
                failpoint("relay.after_publish")
                ids = [row.id for row in rows[:acknowledged]]
                await session.execute(
                    update(self.outbox)
                    .where(self.outbox.c.id.in_(ids))
                    .values(published_at=datetime.now(UTC))
                )
        for row in rows[:acknowledged]:
            self.metrics.published.labels(row.topic, row.event_type).inc()
        if acknowledged < len(rows):
            self.metrics.publish_failures.inc()
            raise BrokerUnavailableError(f"{len(rows) - acknowledged} events await the broker")
        return acknowledged

    async def _send_in_order(self, rows: Sequence[Any]) -> int:
        """How many rows, from the first, the broker acknowledged (a failure ends the prefix)."""
        pending: list[Awaitable[object]] = []
        relayed = self.metrics.stages.labels(PipelineStage.RELAYED)
        try:
            for row in rows:
                sent_at = time.time()
                message = OutgoingMessage(
                    topic=row.topic,
                    key=row.message_key,
                    body=row.body,
                    headers={"event_type": row.event_type, "event_id": str(row.event_id)},
                    timestamp_ms=int(sent_at * 1000),
                )
                pending.append(await self.send(message))
                relayed.observe(max(sent_at - row.created_at.timestamp(), 0.0))
        except Exception:
            failed = {"event_id": str(rows[len(pending)].event_id)}  # the one being sent
            logger.exception("the broker refused an event from the outbox", extra=failed)
        acknowledged = 0
        for confirmation in pending:
            try:
                await confirmation
            except Exception:
                failed = {"event_id": str(rows[acknowledged].event_id)}
                logger.exception(
                    "the broker did not acknowledge an event from the outbox", extra=failed
                )
                break
            acknowledged += 1
        return acknowledged

    async def measure_backlog(self) -> None:
        async with self.sessions() as session:
            count, oldest = (
                await session.execute(
                    select(func.count(), func.min(self.outbox.c.created_at)).where(
                        self.outbox.c.published_at.is_(None)
                    )
                )
            ).one()
        self.metrics.backlog.set(count)
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        self.metrics.oldest_unsent_age.set(max(age, 0.0))

    async def run(self) -> None:
        """Publish until cancelled: at once when woken, otherwise every `idle_interval`.

        The backlog gauges are measured every `backlog_interval` on their own, not after each
        batch (two more round trips before the next batch could start): while the broker is away
        an idempotent producer retries rather than failing, so the publishing loop waits with it,
        and the backlog is what an operator needs to see then.
        """
        measuring = asyncio.create_task(self._measure_backlog_every(self.backlog_interval))
        try:
            await self._publish_forever()
        finally:
            measuring.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await measuring

    async def _measure_backlog_every(self, seconds: float) -> None:
        while True:
            try:
                await self.measure_backlog()
            except (SQLAlchemyError, OSError):
                logger.warning("cannot measure the outbox backlog: the database is unreachable")
            await asyncio.sleep(seconds)

    async def _publish_forever(self) -> None:
        while True:
            # Cleared before the rows are read, never after: a write committing while a batch is
            # in flight leaves it set, and its row goes in the next batch rather than a poll later.
            self._wake.clear()
            try:
                published = await self.publish_pending()
            except BrokerUnavailableError as error:
                logger.warning("outbox relay waiting for the broker: %s", error)
                await asyncio.sleep(self.retry_interval)
                continue
            except (SQLAlchemyError, OSError):
                logger.exception("outbox relay cannot reach the database; trying again")
                await asyncio.sleep(self.retry_interval)
                continue
            if published == self.batch_size:
                continue
            await wait_for_event(self._wake, self.idle_interval)


class BrokerUnavailableError(Exception):
    """The broker did not acknowledge every event of a batch; the rest wait for the next try."""
