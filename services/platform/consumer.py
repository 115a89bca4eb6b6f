"""Exactly-once effect for consumers: inbox, per-aggregate ordering, stored positions, dead letters.

Every batch of Kafka records becomes one PostgreSQL transaction that records the event ids (inbox),
applies the new events in per-aggregate order through a projection, parks events that arrive ahead
of their aggregate, and stores the next offset of every partition it read. Kafka may deliver twice,
late or out of order: the effect happens once (a record below its partition's stored position is a
duplicate by position, an event id in the inbox by id: `services.platform.retention` relies on both
when it prunes old inbox ids). A record that cannot be parsed or applied goes to the
topic's `.dlq` twin with the reason, and the partition keeps moving.
"""

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from datetime import UTC, datetime
from typing import Any, Generic, NamedTuple, Protocol, TypeVar
from uuid import UUID

import asyncpg
from aiokafka import ConsumerRebalanceListener
from aiokafka.structs import TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    Uuid,
    func,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.serialization import ContractError, from_bytes
from contracts.topics import DLQ_SUFFIX
from services.platform import logs
from services.platform.failpoints import failpoint
from services.platform.sequencing import Event, Outcome, Sequencer

logger = logging.getLogger(__name__)

StateT = TypeVar("StateT")

# Errors that say the database is unreachable for now, not that the message is bad: among them
# every connection exception (class 08, such as a connection closed under a statement as the
# server shuts down or its backend is terminated) and the server shutting down or restarting.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
)


def consumer_tables(metadata: MetaData, *, sharded: bool = False) -> tuple[Table, ...]:
    """The inbox, stored positions, aggregate versions and parked events, in a service's schema.

    `sharded`: each table's key starts with a `shard` column, for a service whose state is split
    into shards that each read (some of) the same records on their own (alerting, see
    services/alerting/shards.py): every shard keeps its own inbox, positions and versions.
    """

    def keyed_by(*key: str) -> list[Column[Any] | PrimaryKeyConstraint]:
        if not sharded:
            return [PrimaryKeyConstraint(*key)]
        return [Column("shard", SmallInteger, nullable=False), PrimaryKeyConstraint("shard", *key)]

    return (
        Table(
            "inbox",
            metadata,
            Column("event_id", Uuid, nullable=False),
            Column("topic", Text, nullable=False),
            Column("partition", Integer, nullable=False),
            Column("offset", BigInteger, nullable=False),
            Column("received_at", DateTime(timezone=True), server_default=func.now()),
            Index("inbox_received_at", "received_at"),  # retention's horizon
            *keyed_by("event_id"),
        ),
        Table(
            "consumer_positions",
            metadata,
            Column("topic", Text, nullable=False),
            Column("partition", Integer, nullable=False),
            Column("next_offset", BigInteger, nullable=False),
            *keyed_by("topic", "partition"),
        ),
        Table(
            "aggregate_versions",
            metadata,
            Column("aggregate_id", Uuid, nullable=False),
            Column("version", Integer, nullable=False),
            *keyed_by("aggregate_id"),
        ),
        Table(
            "parked_events",
            metadata,
            Column("event_id", Uuid, nullable=False),
            Column("aggregate_id", Uuid, nullable=False),
            Column("sequence", Integer, nullable=False),
            Column("body", LargeBinary, nullable=False),
            Column("parked_at", DateTime(timezone=True), server_default=func.now()),
            Index("parked_events_by_aggregate", "aggregate_id", "sequence"),
            *keyed_by("event_id"),
        ),
    )


class Delivery(NamedTuple):
    """One Kafka record as the consumer received it (a named tuple: one is made for every record,
    and a tuple is made in a fraction of the time a frozen dataclass takes)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes

    @classmethod
    def of(cls, record: Any) -> "Delivery":  # noqa: ANN401 - an aiokafka ConsumerRecord
        # A record without a value (a tombstone) is no event: as empty bytes it is dead-lettered.
        value = record.value if record.value is not None else b""
        return cls(record.topic, record.partition, record.offset, record.key, value)


class Projection(Protocol[StateT]):
    """What a consumer does with events: load the state they touch, apply them, save it back."""

    async def load(self, connection: asyncpg.Connection, events: Sequence[Event]) -> StateT: ...

    def apply(self, state: StateT, event: Event) -> None: ...

    async def save(self, connection: asyncpg.Connection, state: StateT) -> None: ...


class DeadLetterSink(Protocol):
    async def send(self, delivery: Delivery, reason: str) -> None: ...


class PoisonError(Exception):
    """An event the projection could not apply; the batch is retried one record at a time."""

    def __init__(self, event: Event, cause: BaseException) -> None:
        self.event = event
        # Described without any input values a validation error would quote (a child's details).
        reason = logs.describe(cause)
        super().__init__(f"{event.event_type} {event.event_id} could not be applied: {reason}")


class ConsumerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        outcome = "Events received by the consumer, by what became of them"
        self.events = Counter("nearhome_consumer_events", outcome, ["outcome"], registry=registry)
        self.lag = Gauge(
            "nearhome_consumer_lag",
            "Records of a partition not yet read by this consumer (high watermark - position),"
            " as of its last batch",
            ["topic", "partition"],
            registry=registry,
        )
        self.lag_series: set[tuple[str, int]] = set()  # the partitions `lag` has a series of
        self.event_age = Histogram(
            "nearhome_event_age_when_applied_seconds",
            "Time from an event's occurred_at to its effect being committed",
            registry=registry,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, float("inf")),
        )


@dataclass
class _BatchResult:
    counts: dict[str, int]
    applied: list[Event]


@dataclass(eq=False)
class ExactlyOnceProcessor(Generic[StateT]):
    """Turns batches of deliveries into exactly-once effects in one service's schema."""

    engine: AsyncEngine
    schema: str
    projection: Projection[StateT]
    dead_letters: DeadLetterSink
    metrics: ConsumerMetrics
    _: KW_ONLY
    max_attempts: int = 3
    retry_backoff_s: float = 0.5
    # In a sharded schema (`consumer_tables(sharded=True)`), the shard whose inbox, positions
    # and versions this processor keeps.
    shard: int | None = None
    # Apply the records of each partition in a batch in a transaction of their own, all at once:
    # the database works on one partition's statements while this process parses and applies
    # another's. Only for a projection whose every row is changed by the events of one partition
    # alone (no two transactions then touch the same row): the ledger's, whose records each have
    # one aggregate, keyed to one partition. Otherwise one transaction holds the whole batch.
    partitions_apart: bool = False

    def _of_shard(self, parameter: int) -> str:
        """The condition limiting a statement to this processor's shard (parameter `$n`)."""
        return "" if self.shard is None else f" AND shard = ${parameter}"

    def _shard_argument(self) -> list[int]:
        return [] if self.shard is None else [self.shard]

    def _shard_column(self, parameter: int) -> tuple[str, str]:
        """The shard's column and the value inserted into it (parameter `$n`), to insert with."""
        return ("", "") if self.shard is None else (", shard", f", ${parameter}::smallint")

    async def handle(self, deliveries: Sequence[Delivery]) -> None:
        """Process one batch: afterwards its effect is committed and its positions stored."""
        if self.partitions_apart:
            by_partition: dict[tuple[str, int], list[Delivery]] = {}
            for delivery in deliveries:
                by_partition.setdefault((delivery.topic, delivery.partition), []).append(delivery)
            if len(by_partition) > 1:
                # Each ends (committed, or failed and rolled back) before the batch is answered.
                outcomes = await asyncio.gather(
                    *(self._handle_together(records) for records in by_partition.values()),
                    return_exceptions=True,
                )
                for outcome in outcomes:
                    if isinstance(outcome, BaseException):
                        raise outcome
                return
        await self._handle_together(deliveries)

    async def _handle_together(self, deliveries: Sequence[Delivery]) -> None:
        """Process `deliveries` in one transaction (one at a time if one of them is poison)."""
        parsed: list[tuple[Delivery, Event]] = []
        for delivery in deliveries:
            try:
                parsed.append((delivery, from_bytes(delivery.value)))
            except ContractError as error:
                await self._dead_letter(delivery, str(error))
        try:
            result = await self._until_reachable(lambda: self._process(parsed, deliveries))
        except PoisonError:
            await self._one_at_a_time(parsed, deliveries)
            return
        self._observe(result)

    async def _one_at_a_time(
        self, parsed: list[tuple[Delivery, Event]], deliveries: Sequence[Delivery]
    ) -> None:
        by_delivery = {id(delivery): event for delivery, event in parsed}
        for delivery in deliveries:
            event = by_delivery.get(id(delivery))
            batch = [(delivery, event)] if event is not None else []
            for attempt in range(1, self.max_attempts + 1):
                try:
                    result = await self._until_reachable(
                        lambda b=batch, d=delivery: self._process(b, [d])  # type: ignore[misc]
                    )
                except PoisonError as error:
                    if attempt < self.max_attempts:
                        await asyncio.sleep(self.retry_backoff_s * attempt)
                        continue
                    await self._dead_letter(delivery, str(error))
                    # Record it as received, so a redelivery is a duplicate, and move on.
                    await self._until_reachable(lambda d=delivery: self._process([], [d], (d,)))  # type: ignore[misc]
                else:
                    self._observe(result)
                break

    async def _until_reachable(self, work: Callable[[], Awaitable[_BatchResult]]) -> _BatchResult:
        """Retry while the database is unreachable: that is an outage, not a bad message."""
        return await until_reachable(work, "consumer", first_delay=self.retry_backoff_s)

    async def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        about = logs.event_id.set(_event_id_in(delivery))
        try:
            logger.error(
                "dead-lettering %s[%s]@%s: %s",
                delivery.topic,
                delivery.partition,
                delivery.offset,
                reason,
            )
            await self.dead_letters.send(delivery, reason)
        finally:
            logs.event_id.reset(about)
        self.metrics.events.labels("dead_lettered").inc()

    def _observe(self, result: _BatchResult) -> None:
        for outcome, count in result.counts.items():
            if count:
                self.metrics.events.labels(outcome).inc(count)
        now = datetime.now(UTC)
        for event in result.applied:
            self.metrics.event_age.observe(max((now - event.occurred_at).total_seconds(), 0.0))

    async def _process(
        self,
        parsed: Sequence[tuple[Delivery, Event]],
        deliveries: Sequence[Delivery],
        dead: Sequence[Delivery] = (),
    ) -> _BatchResult:
        async with self.engine.connect() as sa_connection:
            raw = await sa_connection.get_raw_connection()
            connection: asyncpg.Connection = raw.driver_connection
            async with connection.transaction():
                result = await self._in_transaction(connection, parsed, deliveries, dead)
                failpoint("consumer.before_commit")
            failpoint("consumer.after_commit")
            await sa_connection.rollback()  # the transaction above is the unit; end SA's view
        return result

    async def _in_transaction(
        self,
        connection: asyncpg.Connection,
        parsed: Sequence[tuple[Delivery, Event]],
        deliveries: Sequence[Delivery],
        dead: Sequence[Delivery],
    ) -> _BatchResult:
        s = self.schema
        # A record below its partition's stored position was applied (or refused) already: it is
        # a duplicate by position, whether or not retention has pruned its id from the inbox.
        stored = await self._positions(connection, parsed)
        received = [
            (d, e.event_id) for d, e in parsed if d.offset >= stored.get((d.topic, d.partition), 0)
        ]
        fresh_ids = await self._record_in_inbox(connection, received)
        await self._record_dead_in_inbox(connection, dead)
        fresh: list[tuple[Delivery, Event]] = []
        for delivery, event in parsed:
            if event.event_id in fresh_ids:
                fresh.append((delivery, event))
                fresh_ids.discard(event.event_id)  # a second copy in the same batch is a duplicate
        counts = {outcome.value: 0 for outcome in Outcome}
        counts[Outcome.DUPLICATE.value] = len(parsed) - len(fresh)

        aggregates = list({event.aggregate_id for _, event in fresh})
        sequencer = Sequencer(
            versions=dict(
                await connection.fetch(
                    f"SELECT aggregate_id, version FROM {s}.aggregate_versions"  # noqa: S608
                    " WHERE aggregate_id = any($1::uuid[])" + self._of_shard(2),
                    aggregates,
                    *self._shard_argument(),
                )
            ),
            parked=await self._parked(connection, aggregates),
        )
        due: list[Event] = []
        where: dict[UUID, Delivery] = {}
        for delivery, event in fresh:
            outcome, now_due = sequencer.admit(event)
            counts[outcome.value] += 1
            due.extend(now_due)
            where[event.event_id] = delivery

        state = await self.projection.load(connection, due)
        for event in due:
            applying = logs.event_id.set(str(event.event_id))
            try:
                logger.debug("applying %s to %s", event.event_type, event.aggregate_id)
                self.projection.apply(state, event)
            except Exception as error:
                raise PoisonError(event, error) from error
            finally:
                logs.event_id.reset(applying)
        try:
            await self.projection.save(connection, state)
        except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as error:
            raise PoisonError(due[0], error) from error

        await self._write_sequencing(connection, sequencer, where)
        await self._store_positions(connection, deliveries)
        return _BatchResult(counts, due)

    async def _positions(
        self, connection: asyncpg.Connection, parsed: Sequence[tuple[Delivery, Event]]
    ) -> dict[tuple[str, int], int]:
        """The stored next offset of each partition `parsed` came from."""
        if not parsed:
            return {}
        rows = await connection.fetch(
            f"SELECT topic, partition, next_offset FROM {self.schema}.consumer_positions"  # noqa: S608
            " WHERE topic = any($1::text[])" + self._of_shard(2),
            list({delivery.topic for delivery, _ in parsed}),
            *self._shard_argument(),
        )
        return {(row["topic"], row["partition"]): row["next_offset"] for row in rows}

    async def _record_in_inbox(
        self, connection: asyncpg.Connection, received: Sequence[tuple[Delivery, UUID]]
    ) -> set[UUID]:
        if not received:
            return set()
        column, value = self._shard_column(5)
        rows = await connection.fetch(
            f'INSERT INTO {self.schema}.inbox (event_id, topic, partition, "offset"{column})'  # noqa: S608
            f" SELECT *{value}"
            " FROM unnest($1::uuid[], $2::text[], $3::int[], $4::bigint[])"
            " ON CONFLICT DO NOTHING RETURNING event_id",
            [event_id for _, event_id in received],
            [d.topic for d, _ in received],
            [d.partition for d, _ in received],
            [d.offset for d, _ in received],
            *self._shard_argument(),
        )
        return {row["event_id"] for row in rows}

    async def _record_dead_in_inbox(
        self, connection: asyncpg.Connection, dead: Sequence[Delivery]
    ) -> None:
        for delivery in dead:
            try:
                event_id = from_bytes(delivery.value).event_id
            except ContractError:
                continue  # unparseable: nothing to key it by, and its position is stored anyway
            await self._record_in_inbox(connection, [(delivery, event_id)])

    async def _parked(
        self, connection: asyncpg.Connection, aggregates: list[UUID]
    ) -> dict[UUID, dict[int, Event]]:
        rows = await connection.fetch(
            f"SELECT body FROM {self.schema}.parked_events"  # noqa: S608
            " WHERE aggregate_id = any($1::uuid[])" + self._of_shard(2),
            aggregates,
            *self._shard_argument(),
        )
        parked: dict[UUID, dict[int, Event]] = {}
        for row in rows:
            event = from_bytes(row["body"])
            parked.setdefault(event.aggregate_id, {})[event.sequence] = event
        return parked

    async def _write_sequencing(
        self, connection: asyncpg.Connection, sequencer: Sequencer, where: dict[UUID, Delivery]
    ) -> None:
        s = self.schema
        column, value = self._shard_column(3)
        conflict = "shard, aggregate_id" if self.shard is not None else "aggregate_id"
        if sequencer.changed_versions:
            changed = list(sequencer.changed_versions)
            await connection.execute(
                f"INSERT INTO {s}.aggregate_versions (aggregate_id, version{column})"  # noqa: S608
                f" SELECT *{value} FROM unnest($1::uuid[], $2::int[])"
                f" ON CONFLICT ({conflict}) DO UPDATE SET version = excluded.version",
                changed,
                [sequencer.versions[aggregate] for aggregate in changed],
                *self._shard_argument(),
            )
        if sequencer.newly_parked:
            parked = list(sequencer.newly_parked.values())
            await connection.execute(
                f"INSERT INTO {s}.parked_events (event_id, aggregate_id, sequence, body{column})"  # noqa: S608
                f" SELECT *{self._shard_column(5)[1]}"
                " FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::bytea[])",
                [e.event_id for e in parked],
                [e.aggregate_id for e in parked],
                [e.sequence for e in parked],
                [where[e.event_id].value for e in parked],
                *self._shard_argument(),
            )
        if sequencer.unparked:
            await connection.execute(
                f"DELETE FROM {s}.parked_events WHERE event_id = any($1::uuid[])"  # noqa: S608
                + self._of_shard(2),
                [e.event_id for e in sequencer.unparked],
                *self._shard_argument(),
            )

    async def _store_positions(
        self, connection: asyncpg.Connection, deliveries: Sequence[Delivery]
    ) -> None:
        if not deliveries:
            return
        next_offsets: dict[tuple[str, int], int] = {}
        for d in deliveries:
            key = (d.topic, d.partition)
            next_offsets[key] = max(next_offsets.get(key, 0), d.offset + 1)
        column, value = self._shard_column(4)
        conflict = "shard, topic, partition" if self.shard is not None else "topic, partition"
        await connection.execute(
            f"INSERT INTO {self.schema}.consumer_positions (topic, partition, next_offset{column})"  # noqa: S608
            f" SELECT *{value}"
            " FROM unnest($1::text[], $2::int[], $3::bigint[])"
            f" ON CONFLICT ({conflict}) DO UPDATE"
            " SET next_offset = GREATEST(consumer_positions.next_offset, excluded.next_offset)",
            [topic for topic, _ in next_offsets],
            [partition for _, partition in next_offsets],
            list(next_offsets.values()),
            *self._shard_argument(),
        )


def _event_id_in(delivery: Delivery) -> str | None:
    """The event id a record says it carries, if it says one (even when it is no valid event)."""
    try:
        found = json.loads(delivery.value).get("event_id")
        return str(UUID(found)) if isinstance(found, str) else None
    except (ValueError, AttributeError):
        return None


async def stored_positions(engine: AsyncEngine, schema: str) -> dict[TopicPartition, int]:
    async with engine.connect() as sa_connection:
        raw = await sa_connection.get_raw_connection()
        connection: asyncpg.Connection = raw.driver_connection
        rows = await connection.fetch(
            f"SELECT topic, partition, next_offset FROM {schema}.consumer_positions"  # noqa: S608
        )
    return {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows}


ResultT = TypeVar("ResultT")


async def until_reachable(
    work: Callable[[], Awaitable[ResultT]], who: str, *, first_delay: float = 0.5
) -> ResultT:
    """`work()`, tried again (backing off to every 30 s) while the database is unreachable."""
    delay = first_delay
    while True:
        try:
            return await work()
        except TRANSIENT_ERRORS:
            logger.exception("%s cannot reach the database; retrying in %.1fs", who, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


@dataclass(eq=False)
class ResumeFromStoredPositions(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, seek each partition to the position stored with the effect.

    Kafka's own committed offsets are only a hint: the position committed in the same transaction
    as the effect is the truth, so a crash between the two can neither skip nor repeat an effect.
    """

    engine: AsyncEngine
    schema: str
    consumer: Callable[[], Any]

    async def on_partitions_revoked(self, revoked: Any) -> None:  # noqa: ANN401
        pass

    async def on_partitions_assigned(self, assigned: Any) -> None:  # noqa: ANN401
        consumer = self.consumer()
        # Hold the partitions while the positions are read: otherwise records fetched from the
        # group's committed offsets meanwhile are handed out before the seek takes effect.
        consumer.pause(*assigned)
        try:
            # Waited for through an outage: resumed without its positions, a partition would
            # start from the group's committed offset instead.
            positions = await until_reachable(
                lambda: stored_positions(self.engine, self.schema), "resuming from positions"
            )
            for partition in assigned:
                # No effect stored yet: start at the beginning whatever the group committed, so a
                # new or rebuilt schema under an old group id cannot skip history (offset 0 out of
                # range, after retention, falls back to the earliest through auto_offset_reset).
                consumer.seek(partition, positions.get(partition, 0))
        finally:
            consumer.resume(*assigned)


class KafkaDeadLetters:
    """Publishes a poison record's original bytes to `<topic>.dlq`, saying why and whence."""

    def __init__(self, publish: Callable[..., Awaitable[object]]) -> None:
        self._publish = publish

    async def send(self, delivery: Delivery, reason: str) -> None:
        await self._publish(
            delivery.value,
            topic=delivery.topic + DLQ_SUFFIX,
            key=delivery.key,
            headers={
                "dlq-error": reason[:4000],
                "dlq-source-topic": delivery.topic,
                "dlq-source-partition": str(delivery.partition),
                "dlq-source-offset": str(delivery.offset),
            },
        )
