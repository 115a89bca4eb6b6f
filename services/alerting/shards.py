"""Alerting split into shards, so that every instance of the service does part of the matching.

A shard is one partition of `referral.events`: it holds the referrals whose events that partition
carries (Kafka keys them by `referral_id`), their alerts, and its own copy of every setting,
vacancy and hold, against which it matches them. Every alert pair belongs to exactly one shard
(its referral's), and `alert.events` is keyed by `referral_id` too, so no pair is ever decided in
two places.

Instances share the partitions of `referral.events` in one consumer group; each partition
assigned to an instance is a shard it owns. The instance also reads every partition of
`provider.events` (one consumer, its feed, assigned rather than grouped) and gives each record to
every shard it owns from that shard's stored position on. One worker applies what the feed has
given every shard in one transaction (`ShardedProcessor`, which keeps each shard's own inbox,
positions and versions: `consumer_tables(sharded=True)`), with one statement per table for all the
shards: a vacancy costs the same round trips to the database however many shards it is matched
in. One feed rather than one per shard: each record is fetched and decoded once per instance, and
an idle instance polls the broker once, not once per shard.

A shard's batches run one at a time: in this process under the shard's `asyncio.Lock` (a batch
takes the locks of its shards in their order), across processes under the lock of its epoch's row
(`store.lock_books_for_a_batch`), so a shard handed over in a rebalance, or owned for a moment by
a process the group has already given up on, is still changed by one batch at a time, and the
other process's book is reloaded (its epoch moved).

When an instance stops or dies, the group hands its partitions to the others within the
session timeout; they resume each shard from its stored positions.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2
from aiokafka.structs import TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerting.metrics import AlertingMetrics
from services.alerting.projection import AlertingProjection, Batch, ShardBooks
from services.platform.background import wait_for_event
from services.platform.clock import Clock
from services.platform.connections import PLAINTEXT, KafkaSecurity
from services.platform.consumer import (
    ConsumerMetrics,
    DeadLetterSink,
    Delivery,
    ShardedProcessor,
)
from services.platform.kafka import FETCH_MAX_WAIT_MS, observe_lag
from services.platform.outbox import PipelineStage
from services.platform.tables import connection_of

logger = logging.getLogger(__name__)

# How long a shard's feed may take to stop its consumer once told to.
FEED_STOP_TIMEOUT_S = 10.0


def shard_of(referral_id: UUID, shards: int) -> int:
    """The partition Kafka's default partitioner gives a referral's events: its shard."""
    partition: int = (murmur2(str(referral_id).encode()) & 0x7FFFFFFF) % shards
    return partition


@dataclass(eq=False)
class OneShardDeadLetters:
    """Dead-letters a provider record from one shard only (every shard reads every one of them):
    the shard numbered as the record's partition, modulo the number of shards."""

    sink: DeadLetterSink
    shard: int
    shards: int
    provider_topic: str

    async def send(self, delivery: Delivery, reason: str) -> None:
        if delivery.topic != self.provider_topic or delivery.partition % self.shards == self.shard:
            await self.sink.send(delivery, reason)


@dataclass(frozen=True, slots=True)
class FeedOptions:
    """How an instance's one consumer of `provider.events` (its shards' feed) reaches Kafka."""

    bootstrap_servers: str
    provider_topic: str
    client_id: str
    max_records: int = 500
    retry_interval: float = 1.0
    security: KafkaSecurity = PLAINTEXT


@dataclass(eq=False)
class Shard:
    number: int
    projection: AlertingProjection
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # The next offset of each partition of provider.events the feed is to give the shard. None
    # until the feed has loaded its book and read its stored positions (and again once one of
    # its batches failed, or the feed's consumer started again).
    reads_from: dict[int, int] | None = None
    # Records given to the shard that the worker has not taken yet, each fetch's with the time it
    # was consumed.
    queued: list[tuple[float, list[Delivery]]] = field(default_factory=list)
    # Set when the shard is given up: a batch of it not begun by then is never applied here.
    released: bool = False

    def backlog(self) -> int:
        return sum(len(records) for _, records in self.queued)

    def start_again(self) -> None:
        """Drop what is queued: the feed gives the shard its records again from its stored
        positions."""
        self.queued.clear()
        self.reads_from = None

    def give(self, records: Sequence[Delivery], consumed_at: float) -> bool:
        """Queue the records from the shard's position on for the worker; whether there were any."""
        reads_from = self.reads_from
        if reads_from is None or self.released:
            return False
        due = [r for r in records if r.offset >= reads_from.get(r.partition, 0)]
        if not due:
            return False
        for record in due:
            reads_from[record.partition] = record.offset + 1
        self.queued.append((consumed_at, due))
        return True


@dataclass(eq=False)
class Shards:
    """The shards this instance owns, their books, the instance's feed of provider.events and the
    worker that applies what it gives them."""

    engine: AsyncEngine
    schema: str
    metrics: AlertingMetrics
    consumer_metrics: ConsumerMetrics
    dead_letters: DeadLetterSink
    feed: FeedOptions
    clock: Clock
    after_batch: Callable[[AlertingProjection], Awaitable[None]]
    freeze_gc: bool = False
    # How long a batch's raised alerts' webhooks are leased to this process's delivery worker,
    # which `after_batch` hands them to (None: the worker claims every one from the table).
    lease_s: float | None = None
    shard_count: int = 0  # the partitions of referral.events: set at the first assignment
    owned: dict[int, Shard] = field(default_factory=dict)
    # Reads provider.events for every shard owned, from the first assignment until the stop.
    feed_task: "asyncio.Task[None] | None" = None
    # Applies what the feed gives the shards, from the first assignment until the stop.
    worker_task: "asyncio.Task[None] | None" = None
    # Set by each assignment: a feed that owns no shard waits for it.
    _acquired: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    # Set when the feed gives a shard records (waking the worker), and when the worker takes them
    # (waking a feed waiting for room).
    _arrived: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _taken: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    # The books of the shards owned, by number, as the processor applies them: a shard given up
    # leaves `owned` at once, but its book stays here until its batch in hand has committed.
    _books: dict[int, AlertingProjection] = field(default_factory=dict, init=False)
    _processor: "ShardedProcessor[dict[int, Batch]] | None" = field(default=None, init=False)
    # Once the service stops, an assignment arriving late is ignored, and the feed ends at its
    # next turn even if its cancellation was lost (as one arriving while aiokafka starts or
    # stops a consumer can be).
    stopping: bool = False

    # --- ownership, as the group assigns the partitions of referral.events ---------------------

    def acquire(self, partitions: Sequence[int], shard_count: int) -> None:
        """Own the shards of `partitions` (of `shard_count`): the feed gives each the records of
        provider.events from its stored positions on."""
        if self.stopping:
            return
        self.shard_count = shard_count
        for number in partitions:
            if number in self.owned:
                continue
            projection = AlertingProjection(
                self.metrics,
                self.clock,
                shard=number,
                freeze_gc=self.freeze_gc,
            )
            self.owned[number] = Shard(number, projection)
            self._books[number] = projection
        self._acquired.set()
        if self.feed_task is None:
            self.feed_task = asyncio.create_task(self._run_feed(), name="alerting feed")
        if self.worker_task is None:
            self.worker_task = asyncio.create_task(self._work(), name="alerting shards")
        logger.info("alerting owns shards %s of %s", sorted(self.owned), shard_count)

    async def release(self, partitions: Sequence[int]) -> None:
        """Give up the shards of `partitions`, once their batch in hand is done."""
        for number in partitions:
            shard = self.owned.pop(number, None)
            if shard is None:
                continue
            shard.released = True
            async with shard.lock:  # let a batch in hand commit
                self._books.pop(number, None)
        self._set_gauges()

    async def stop(self) -> None:
        """Give up every shard, own none from now on, and stop the feed and the worker."""
        self.stopping = True
        await self.release(list(self.owned))
        tasks = {task for task in (self.feed_task, self.worker_task) if task is not None}
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        # The feed's consumer is stopped as it ends: bounded, so that a consumer cancelled while
        # it was starting can never hold up the service's stop.
        _, pending = await asyncio.wait(tasks, timeout=FEED_STOP_TIMEOUT_S)
        if pending:
            logger.warning("the alerting feed did not stop within %.0fs", FEED_STOP_TIMEOUT_S)

    def _processor_of_shards(self) -> "ShardedProcessor[dict[int, Batch]]":
        if self._processor is None:
            self._processor = ShardedProcessor(
                self.engine,
                self.schema,
                ShardBooks(self._books, self.lease_s),
                lambda shard: OneShardDeadLetters(
                    self.dead_letters, shard, self.shard_count, self.feed.provider_topic
                ),
                self.consumer_metrics,
            )
        return self._processor

    # --- the two streams -------------------------------------------------------------------------

    def consumed(self, records: Sequence[Any]) -> float:
        """Time the `consumed` stage of the records a consumer was just handed (aiokafka's, whose
        timestamps are the relay's sending times); returns now, when the `committed` stage of
        each record starts."""
        now = time.time()
        stage = self.metrics.stages.labels(PipelineStage.CONSUMED)
        for record in records:
            stage.observe(max(now - record.timestamp / 1000, 0.0))
        return now

    async def on_referral_batch(
        self, deliveries: Sequence[Delivery], consumed_at: float | None = None
    ) -> None:
        """Apply a batch of referral records, each partition's to its shard, in one transaction
        (consumed at `consumed_at`, for the `committed` stage)."""
        by_partition: dict[int, list[Delivery]] = {}
        for delivery in deliveries:
            by_partition.setdefault(delivery.partition, []).append(delivery)
        batch: dict[Shard, list[Delivery]] = {}
        for partition, records in by_partition.items():
            shard = self.owned.get(partition)
            if shard is None:
                # Revoked meanwhile: its new owner reads these from the shard's stored positions.
                logger.info(
                    "shard %s is no longer ours: its records are left to its owner", partition
                )
                continue
            batch[shard] = records
        if batch:
            await self._handle(
                batch, [] if consumed_at is None else [consumed_at] * len(deliveries)
            )

    async def _work(self) -> None:
        """Apply what the feed gives the shards, everything queued at once, until the stop."""
        while not self.stopping:
            await wait_for_event(self._arrived, 1.0)
            self._arrived.clear()
            batch: dict[Shard, list[Delivery]] = {}
            # When each record was consumed, once each (every shard is given the same records).
            consumed: dict[tuple[int, int], float] = {}
            for shard in list(self.owned.values()):
                queued, shard.queued = shard.queued, []
                if not queued:
                    continue
                batch[shard] = [record for _, fetched in queued for record in fetched]
                for at, fetched in queued:
                    for record in fetched:
                        consumed.setdefault((record.partition, record.offset), at)
            self._taken.set()
            if not batch:
                continue
            try:
                await self._handle(batch, list(consumed.values()))
            except Exception:
                # Not a bad record (the processor dead-letters those): start again from the
                # stored positions, as a subscriber nacking the batch would.
                logger.exception(
                    "shards %s failed a batch; resuming from their positions",
                    sorted(shard.number for shard in batch),
                )
                for shard in batch:
                    shard.start_again()
                await asyncio.sleep(self.feed.retry_interval)

    async def _handle(self, batch: dict[Shard, list[Delivery]], consumed: Sequence[float]) -> None:
        """Apply each shard's records, all in one transaction; `consumed` says when each record
        was consumed (for the `committed` stage; empty: not timed)."""
        shards = sorted(batch, key=lambda shard: shard.number)
        async with contextlib.AsyncExitStack() as locks:
            for shard in shards:
                await locks.enter_async_context(shard.lock)
            # A shard given up meanwhile is left to its new owner, from its stored positions.
            applied = [shard for shard in shards if not shard.released]
            if not applied:
                return
            await self._processor_of_shards().handle(
                {shard.number: batch[shard] for shard in applied}
            )
        stage = self.metrics.stages.labels(PipelineStage.COMMITTED)
        now = time.time()
        for at in consumed:
            stage.observe(max(now - at, 0.0))
        self._set_gauges()
        for shard in applied:
            await self.after_batch(shard.projection)

    async def _run_feed(self) -> None:
        """Read every partition of provider.events for the shards owned, until the service stops."""
        options = self.feed
        while not self.stopping:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=options.bootstrap_servers,
                client_id=f"{options.client_id}-feed",
                group_id=None,
                fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                **options.security.client_options(),
            )
            try:
                await consumer.start()
                await self._follow(consumer)
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError):
                logger.exception(
                    "alerting cannot read %s; retrying in %.1fs",
                    options.provider_topic,
                    options.retry_interval,
                )
            except Exception:
                logger.exception(
                    "the alerting feed failed; resuming every shard from its positions"
                )
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(consumer.stop(), FEED_STOP_TIMEOUT_S)
            for shard in self.owned.values():
                shard.start_again()  # a new consumer starts each from its stored positions
            await asyncio.sleep(options.retry_interval)

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        topic = self.feed.provider_topic
        partitions = {
            number: TopicPartition(topic, number) for number in await self._partitions(topic)
        }
        consumer.assign(list(partitions.values()))
        # The next offset the consumer hands out, by partition, as far as it has been sought.
        reading: dict[int, int] = {}
        while not self.stopping:
            shards = list(self.owned.values())
            if not shards:
                self._acquired.clear()
                await wait_for_event(self._acquired, 1.0)
                continue
            await self._start_new(shards, consumer, partitions, reading)
            await self._room_in(shards)
            fetched = await consumer.getmany(timeout_ms=1000, max_records=self.feed.max_records)
            raw = [record for batch in fetched.values() for record in batch]
            if not raw:
                continue
            consumed_at = self.consumed(raw)
            records = [Delivery.of(record) for record in raw]
            for record in records:
                reading[record.partition] = record.offset + 1
            given = [shard.give(records, consumed_at) for shard in shards]  # to every shard
            if any(given):
                self._arrived.set()
            await observe_lag(consumer, records, self.consumer_metrics)

    async def _start_new(
        self,
        shards: Sequence[Shard],
        consumer: AIOKafkaConsumer,
        partitions: dict[int, TopicPartition],
        reading: dict[int, int],
    ) -> None:
        """Load the book and read the stored positions of each shard the feed has not started
        yet, and seek the consumer back to the earliest of them where it is ahead (the other
        shards skip what they have applied)."""
        if all(shard.reads_from is not None for shard in shards):
            return
        starts: list[dict[int, int]] = []
        for shard in shards:
            if shard.reads_from is None:
                async with shard.lock:
                    await shard.projection.warm_up(self.engine)
                shard.reads_from = await self._positions(shard.number, self.feed.provider_topic)
            starts.append(shard.reads_from)
        self._set_gauges()
        for number, partition in partitions.items():
            earliest = min(start.get(number, 0) for start in starts)
            if number not in reading or earliest < reading[number]:
                consumer.seek(partition, earliest)
                reading[number] = earliest

    async def _room_in(self, shards: Sequence[Shard]) -> None:
        """Wait until no shard has a fetch's worth of records waiting: shards that fall behind
        hold up the feed rather than filling memory."""
        for shard in shards:
            while shard.backlog() >= self.feed.max_records and not shard.released:
                self._taken.clear()
                await wait_for_event(self._taken, 1.0)

    async def _partitions(self, topic: str) -> list[int]:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.feed.bootstrap_servers,
            client_id=f"{self.feed.client_id}-shards",
            **self.feed.security.client_options(),
        )
        await admin.start()
        try:
            (described,) = await admin.describe_topics([topic])
        finally:
            await admin.close()
        numbers = sorted(p["partition"] for p in described["partitions"])
        if described["error_code"] or not numbers:
            raise KafkaError(f"no partitions known for {topic} ({described['error_code']})")
        return numbers

    async def _positions(self, shard: int, topic: str) -> dict[int, int]:
        async with connection_of(self.engine) as connection:
            rows = await connection.fetch(
                f"SELECT partition, next_offset FROM {self.schema}.consumer_positions"  # noqa: S608
                " WHERE shard = $1 AND topic = $2",
                shard,
                topic,
            )
        return {row["partition"]: row["next_offset"] for row in rows}

    def _set_gauges(self) -> None:
        books = [s.projection.loaded_book for s in self.owned.values()]
        present = [book for book in books if book is not None]
        self.metrics.open_referrals.set(sum(len(book.referrals) for book in present))
        self.metrics.open_vacancies.set(max((len(b.index.vacancies) for b in present), default=0))
        self.metrics.open_alerts.set(sum(len(book.alerts) for book in present))


@dataclass(eq=False)
class OwnShardsOfAssignedPartitions(ConsumerRebalanceListener):  # type: ignore[misc]
    """The referral subscriber's listener: after `resume` has sought each assigned partition to
    its stored position, the instance owns the shards of exactly the partitions assigned."""

    shards: Shards
    resume: ConsumerRebalanceListener
    consumer: Callable[[], Any]

    async def on_partitions_revoked(self, revoked: Any) -> None:  # noqa: ANN401
        await self.shards.release([partition.partition for partition in revoked])

    async def on_partitions_assigned(self, assigned: Any) -> None:  # noqa: ANN401
        await self.resume.on_partitions_assigned(assigned)
        if not assigned:
            return
        topic = next(iter(assigned)).topic
        count = len(self.consumer().partitions_for_topic(topic) or ())
        self.shards.acquire([partition.partition for partition in assigned], count)
