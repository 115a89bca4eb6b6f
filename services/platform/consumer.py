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
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
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


# The shard a batch's records are kept in: a number in a sharded schema, None in any other.
Shard = int | None


class ShardedProjection(Protocol[StateT]):
    """A projection split into shards (alerting's), whose shards' batches are applied together:
    `load` gets the events due to each shard, and `apply` says which shard an event is for."""

    async def load(
        self, connection: asyncpg.Connection, due: Mapping[int, Sequence[Event]]
    ) -> StateT: ...

    def apply(self, state: StateT, shard: int, event: Event) -> None: ...

    async def save(self, connection: asyncpg.Connection, state: StateT) -> None: ...


class _LaneProjection(Protocol[StateT]):
    """A projection as the lanes use it: `ShardedProjection`, or `_OneShard` around a
    `Projection` (with None for the shard)."""

    async def load(self, connection: asyncpg.Connection, due: Any) -> StateT: ...  # noqa: ANN401

    def apply(self, state: StateT, shard: Any, event: Event) -> None: ...  # noqa: ANN401

    async def save(self, connection: asyncpg.Connection, state: StateT) -> None: ...


@dataclass
class _BatchResult:
    counts: dict[str, int]
    applied: list[Event]


@dataclass(frozen=True, slots=True)
class _Lane:
    """A batch's records for one shard, parsed; `dead` are recorded as received only."""

    shard: Shard
    deliveries: Sequence[Delivery]
    parsed: Sequence[tuple[Delivery, Event]]
    dead: Sequence[Delivery] = ()


@dataclass(frozen=True, slots=True)
class _OneShard(Generic[StateT]):
    """A projection of a schema without shards, as the lanes see it: the one lane's."""

    projection: Projection[StateT]

    async def load(
        self, connection: asyncpg.Connection, due: Mapping[Shard, Sequence[Event]]
    ) -> StateT:
        return await self.projection.load(connection, due.get(None, ()))

    def apply(self, state: StateT, _shard: Shard, event: Event) -> None:
        self.projection.apply(state, event)

    async def save(self, connection: asyncpg.Connection, state: StateT) -> None:
        await self.projection.save(connection, state)


@dataclass(eq=False)
class _Lanes(Generic[StateT]):
    """Turns a batch's records, each shard's apart, into one transaction: the inbox, positions,
    versions and parked events of every shard are read and written by one statement each."""

    engine: AsyncEngine
    schema: str
    projection: _LaneProjection[StateT]
    sink_of: Callable[[Shard], DeadLetterSink]
    metrics: ConsumerMetrics
    sharded: bool
    max_attempts: int
    retry_backoff_s: float

    # --- statements, with a shard column only in a sharded schema --------------------------------

    def _shard(self) -> str:
        """The shard of a row as selected: NULL in a schema without shards."""
        return "shard" if self.sharded else "NULL::smallint"

    def _of_shards(self, parameter: int) -> str:
        """The condition limiting a statement to the batch's shards (parameter `$n`)."""
        return f" AND shard = any(${parameter}::smallint[])" if self.sharded else ""

    def _shards_argument(self, lanes: Sequence[_Lane]) -> list[list[int]]:
        return [[lane.shard for lane in lanes if lane.shard is not None]] if self.sharded else []

    def _shard_column(self, parameter: int) -> tuple[str, str]:
        """The shard column and its array (parameter `$n`) to insert rows with, one per row."""
        return (", shard", f", ${parameter}::smallint[]") if self.sharded else ("", "")

    def _shards_of(self, shards: list[Shard]) -> list[list[Shard]]:
        """The shard of each row inserted, as the array `_shard_column` names."""
        return [shards] if self.sharded else []

    # --- a batch ---------------------------------------------------------------------------------

    async def handle(self, batch: Iterable[tuple[Shard, Sequence[Delivery]]]) -> None:
        """Process the records of each shard given, all in one transaction (one shard at a time,
        and within it one record at a time, if one of them is poison)."""
        lanes: list[_Lane] = []
        for shard, deliveries in batch:
            parsed: list[tuple[Delivery, Event]] = []
            for delivery in deliveries:
                try:
                    parsed.append((delivery, from_bytes(delivery.value)))
                except ContractError as error:
                    await self._dead_letter(shard, delivery, str(error))
            lanes.append(_Lane(shard, deliveries, parsed))
        await self._handle_parsed(lanes)

    async def _handle_parsed(self, lanes: Sequence[_Lane]) -> None:
        try:
            result = await self._until_reachable(lambda: self._process(lanes))
        except PoisonError:
            if len(lanes) == 1:
                await self._one_at_a_time(lanes[0])
            else:
                for lane in lanes:
                    await self._handle_parsed([lane])
            return
        self._observe(result)

    async def _one_at_a_time(self, lane: _Lane) -> None:
        by_delivery = {id(delivery): event for delivery, event in lane.parsed}
        for delivery in lane.deliveries:
            event = by_delivery.get(id(delivery))
            one = _Lane(lane.shard, [delivery], [(delivery, event)] if event is not None else [])
            for attempt in range(1, self.max_attempts + 1):
                try:
                    result = await self._until_reachable(lambda o=one: self._process([o]))  # type: ignore[misc]
                except PoisonError as error:
                    if attempt < self.max_attempts:
                        await asyncio.sleep(self.retry_backoff_s * attempt)
                        continue
                    await self._dead_letter(lane.shard, delivery, str(error))
                    # Record it as received, so a redelivery is a duplicate, and move on.
                    dead = _Lane(lane.shard, [delivery], [], [delivery])
                    await self._until_reachable(lambda d=dead: self._process([d]))  # type: ignore[misc]
                else:
                    self._observe(result)
                break

    async def _until_reachable(self, work: Callable[[], Awaitable[_BatchResult]]) -> _BatchResult:
        """Retry while the database is unreachable: that is an outage, not a bad message."""
        return await until_reachable(work, "consumer", first_delay=self.retry_backoff_s)

    async def _dead_letter(self, shard: Shard, delivery: Delivery, reason: str) -> None:
        about = logs.event_id.set(_event_id_in(delivery))
        try:
            logger.error(
                "dead-lettering %s[%s]@%s: %s",
                delivery.topic,
                delivery.partition,
                delivery.offset,
                reason,
            )
            await self.sink_of(shard).send(delivery, reason)
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

    async def _process(self, lanes: Sequence[_Lane]) -> _BatchResult:
        async with self.engine.connect() as sa_connection:
            raw = await sa_connection.get_raw_connection()
            connection: asyncpg.Connection = raw.driver_connection
            async with connection.transaction():
                result = await self._in_transaction(connection, lanes)
                failpoint("consumer.before_commit")
            failpoint("consumer.after_commit")
            await sa_connection.rollback()  # the transaction above is the unit; end SA's view
        return result

    async def _in_transaction(
        self, connection: asyncpg.Connection, lanes: Sequence[_Lane]
    ) -> _BatchResult:
        # A record below its partition's stored position was applied (or refused) already: it is
        # a duplicate by position, whether or not retention has pruned its id from the inbox.
        stored = await self._positions(connection, lanes)
        received = [
            (lane.shard, d, e.event_id)
            for lane in lanes
            for d, e in lane.parsed
            if d.offset >= stored.get((lane.shard, d.topic, d.partition), 0)
        ]
        received.extend(_dead_received(lanes))
        fresh_ids = await self._record_in_inbox(connection, received)
        counts = {outcome.value: 0 for outcome in Outcome}
        fresh: list[tuple[Shard, Delivery, Event]] = []
        for lane in lanes:
            for delivery, event in lane.parsed:
                key = (lane.shard, event.event_id)
                if key in fresh_ids:
                    fresh.append((lane.shard, delivery, event))
                    fresh_ids.discard(key)  # a second copy in the same batch is a duplicate
                else:
                    counts[Outcome.DUPLICATE.value] += 1

        sequencers = await self._sequencers(connection, lanes, fresh)
        due: dict[Shard, list[Event]] = {lane.shard: [] for lane in lanes}
        where: dict[tuple[Shard, UUID], Delivery] = {}
        for shard, delivery, event in fresh:
            outcome, now_due = sequencers[shard].admit(event)
            counts[outcome.value] += 1
            due[shard].extend(now_due)
            where[shard, event.event_id] = delivery

        state = await self.projection.load(connection, due)
        for shard, events in due.items():
            for event in events:
                applying = logs.event_id.set(str(event.event_id))
                try:
                    logger.debug("applying %s to %s", event.event_type, event.aggregate_id)
                    self.projection.apply(state, shard, event)
                except Exception as error:
                    raise PoisonError(event, error) from error
                finally:
                    logs.event_id.reset(applying)
        try:
            await self.projection.save(connection, state)
        except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as error:
            first = next((events[0] for events in due.values() if events), None)
            if first is None:
                raise
            raise PoisonError(first, error) from error

        await self._write_sequencing(connection, sequencers, where)
        await self._store_positions(connection, lanes)
        return _BatchResult(counts, [event for events in due.values() for event in events])

    async def _positions(
        self, connection: asyncpg.Connection, lanes: Sequence[_Lane]
    ) -> dict[tuple[Shard, str, int], int]:
        """The stored next offset of each partition, in each shard, the lanes' records came from."""
        topics = list({delivery.topic for lane in lanes for delivery, _ in lane.parsed})
        if not topics:
            return {}
        rows = await connection.fetch(
            f"SELECT {self._shard()}, topic, partition, next_offset"  # noqa: S608
            f" FROM {self.schema}.consumer_positions WHERE topic = any($1::text[])"
            + self._of_shards(2),
            topics,
            *self._shards_argument(lanes),
        )
        return {(row[0], row[1], row[2]): row[3] for row in rows}

    async def _record_in_inbox(
        self, connection: asyncpg.Connection, received: Sequence[tuple[Shard, Delivery, UUID]]
    ) -> set[tuple[Shard, UUID]]:
        """Record the ids received in each shard's inbox; those not there before."""
        if not received:
            return set()
        column, array = self._shard_column(5)
        rows = await connection.fetch(
            f'INSERT INTO {self.schema}.inbox (event_id, topic, partition, "offset"{column})'  # noqa: S608
            f" SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::bigint[]{array})"
            f" ON CONFLICT DO NOTHING RETURNING {self._shard()}, event_id",
            [event_id for _, _, event_id in received],
            [d.topic for _, d, _ in received],
            [d.partition for _, d, _ in received],
            [d.offset for _, d, _ in received],
            *self._shards_of([shard for shard, _, _ in received]),
        )
        return {(row[0], row[1]) for row in rows}

    async def _sequencers(
        self,
        connection: asyncpg.Connection,
        lanes: Sequence[_Lane],
        fresh: Sequence[tuple[Shard, Delivery, Event]],
    ) -> dict[Shard, Sequencer]:
        """Each shard's sequencer, with the versions and parked events of the fresh events'
        aggregates in that shard."""
        s = self.schema
        aggregates = list({event.aggregate_id for _, _, event in fresh})
        sequencers = {lane.shard: Sequencer() for lane in lanes}
        if not aggregates:
            return sequencers
        for row in await connection.fetch(
            f"SELECT {self._shard()}, aggregate_id, version FROM {s}.aggregate_versions"  # noqa: S608
            " WHERE aggregate_id = any($1::uuid[])" + self._of_shards(2),
            aggregates,
            *self._shards_argument(lanes),
        ):
            sequencers[row[0]].versions[row[1]] = row[2]
        for row in await connection.fetch(
            f"SELECT {self._shard()}, body FROM {s}.parked_events"  # noqa: S608
            " WHERE aggregate_id = any($1::uuid[])" + self._of_shards(2),
            aggregates,
            *self._shards_argument(lanes),
        ):
            event = from_bytes(row[1])
            sequencers[row[0]].parked.setdefault(event.aggregate_id, {})[event.sequence] = event
        return sequencers

    async def _write_sequencing(
        self,
        connection: asyncpg.Connection,
        sequencers: Mapping[Shard, Sequencer],
        where: Mapping[tuple[Shard, UUID], Delivery],
    ) -> None:
        s = self.schema
        conflict = "shard, aggregate_id" if self.sharded else "aggregate_id"
        changed = [
            (shard, aggregate, sequencer.versions[aggregate])
            for shard, sequencer in sequencers.items()
            for aggregate in sequencer.changed_versions
        ]
        if changed:
            column, array = self._shard_column(3)
            await connection.execute(
                f"INSERT INTO {s}.aggregate_versions (aggregate_id, version{column})"  # noqa: S608
                f" SELECT * FROM unnest($1::uuid[], $2::int[]{array})"
                f" ON CONFLICT ({conflict}) DO UPDATE SET version = excluded.version",
                [aggregate for _, aggregate, _ in changed],
                [version for _, _, version in changed],
                *self._shards_of([shard for shard, _, _ in changed]),
            )
        parked = [
            (shard, event)
            for shard, sequencer in sequencers.items()
            for event in sequencer.newly_parked.values()
        ]
        if parked:
            column, array = self._shard_column(5)
            await connection.execute(
                f"INSERT INTO {s}.parked_events (event_id, aggregate_id, sequence, body{column})"  # noqa: S608
                f" SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::bytea[]{array})",
                [e.event_id for _, e in parked],
                [e.aggregate_id for _, e in parked],
                [e.sequence for _, e in parked],
                [where[shard, e.event_id].value for shard, e in parked],
                *self._shards_of([shard for shard, _ in parked]),
            )
        unparked = [
            (shard, event)
            for shard, sequencer in sequencers.items()
            for event in sequencer.unparked
        ]
        if unparked:
            column, array = self._shard_column(2)
            await connection.execute(
                f"DELETE FROM {s}.parked_events WHERE (event_id{column})"  # noqa: S608
                f" IN (SELECT * FROM unnest($1::uuid[]{array}))",
                [e.event_id for _, e in unparked],
                *self._shards_of([shard for shard, _ in unparked]),
            )

    async def _store_positions(
        self, connection: asyncpg.Connection, lanes: Sequence[_Lane]
    ) -> None:
        next_offsets: dict[tuple[Shard, str, int], int] = {}
        for lane in lanes:
            for d in lane.deliveries:
                key = (lane.shard, d.topic, d.partition)
                next_offsets[key] = max(next_offsets.get(key, 0), d.offset + 1)
        if not next_offsets:
            return
        column, array = self._shard_column(4)
        conflict = "shard, topic, partition" if self.sharded else "topic, partition"
        await connection.execute(
            f"INSERT INTO {self.schema}.consumer_positions (topic, partition, next_offset{column})"  # noqa: S608
            f" SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[]{array})"
            f" ON CONFLICT ({conflict}) DO UPDATE"
            " SET next_offset = GREATEST(consumer_positions.next_offset, excluded.next_offset)",
            [topic for _, topic, _ in next_offsets],
            [partition for _, _, partition in next_offsets],
            list(next_offsets.values()),
            *self._shards_of([shard for shard, _, _ in next_offsets]),
        )


def _dead_received(lanes: Sequence[_Lane]) -> list[tuple[Shard, Delivery, UUID]]:
    """The records given up as dead, each with the event id it carries, to be recorded as
    received (one that cannot be parsed has nothing to key it by; its position is stored)."""
    received = []
    for lane in lanes:
        for delivery in lane.dead:
            try:
                received.append((lane.shard, delivery, from_bytes(delivery.value).event_id))
            except ContractError:
                continue
    return received


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
    # Apply the records of each partition in a batch in a transaction of their own, all at once:
    # the database works on one partition's statements while this process parses and applies
    # another's. Only for a projection whose every row is changed by the events of one partition
    # alone (no two transactions then touch the same row): the ledger's, whose records each have
    # one aggregate, keyed to one partition. Otherwise one transaction holds the whole batch.
    partitions_apart: bool = False

    def __post_init__(self) -> None:
        self._lanes = _Lanes(
            self.engine,
            self.schema,
            _OneShard(self.projection),
            lambda _: self.dead_letters,
            self.metrics,
            sharded=False,
            max_attempts=self.max_attempts,
            retry_backoff_s=self.retry_backoff_s,
        )

    async def handle(self, deliveries: Sequence[Delivery]) -> None:
        """Process one batch: afterwards its effect is committed and its positions stored."""
        if self.partitions_apart:
            by_partition: dict[tuple[str, int], list[Delivery]] = {}
            for delivery in deliveries:
                by_partition.setdefault((delivery.topic, delivery.partition), []).append(delivery)
            if len(by_partition) > 1:
                # Each ends (committed, or failed and rolled back) before the batch is answered.
                outcomes = await asyncio.gather(
                    *(self._lanes.handle([(None, records)]) for records in by_partition.values()),
                    return_exceptions=True,
                )
                for outcome in outcomes:
                    if isinstance(outcome, BaseException):
                        raise outcome
                return
        await self._lanes.handle([(None, deliveries)])


@dataclass(eq=False)
class ShardedProcessor(Generic[StateT]):
    """Exactly-once effects in a sharded schema (`consumer_tables(sharded=True)`), where each
    shard keeps its own inbox, positions and versions: a batch gives each shard the records it
    is to apply, and every shard's are applied in one transaction, with one statement for each
    table whatever the number of shards."""

    engine: AsyncEngine
    schema: str
    projection: ShardedProjection[StateT]
    # Where a record refused in a shard is dead-lettered (every shard reads some of the same
    # records, and one of them is to dead-letter such a record).
    dead_letters: Callable[[int], DeadLetterSink]
    metrics: ConsumerMetrics
    _: KW_ONLY
    max_attempts: int = 3
    retry_backoff_s: float = 0.5

    def __post_init__(self) -> None:
        self._lanes = _Lanes(
            self.engine,
            self.schema,
            self.projection,
            self._sink_of,
            self.metrics,
            sharded=True,
            max_attempts=self.max_attempts,
            retry_backoff_s=self.retry_backoff_s,
        )

    def _sink_of(self, shard: Shard) -> DeadLetterSink:
        if shard is None:
            raise ValueError("a sharded schema's records are each of a shard")
        return self.dead_letters(shard)

    async def handle(self, batch: Mapping[int, Sequence[Delivery]]) -> None:
        """Process each shard's records: afterwards their effects are committed, and each shard's
        positions stored."""
        await self._lanes.handle(batch.items())


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
