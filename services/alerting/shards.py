"""Alerting split into shards, so that every instance of the service does part of the matching.

A shard is one partition of `referral.events`: it holds the referrals whose events that partition
carries (Kafka keys them by `referral_id`), their alerts, and its own copy of every setting,
vacancy and hold, against which it matches them. Every alert pair belongs to exactly one shard
(its referral's), and `alert.events` is keyed by `referral_id` too, so no pair is ever decided in
two places.

Instances share the partitions of `referral.events` in one consumer group; each partition
assigned to an instance is a shard it owns. For each shard it owns, the instance also reads every
partition of `provider.events` from the positions that shard stored (a consumer of its own,
assigned rather than grouped), and applies both streams to the shard's book through one
exactly-once processor keeping the shard's inbox, positions and versions
(`consumer_tables(sharded=True)`). A shard's batches run one at a time: in this process under the
shard's `asyncio.Lock`, across processes under the lock of its epoch's row (`store.lock_book`), so
a shard handed over in a rebalance, or owned for a moment by a process the group has already
given up on, is still changed by one batch at a time, and the other process's book is reloaded
(its epoch moved).

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
from services.alerting.projection import AlertingProjection, Batch
from services.platform.clock import Clock
from services.platform.connections import PLAINTEXT, KafkaSecurity
from services.platform.consumer import (
    ConsumerMetrics,
    DeadLetterSink,
    Delivery,
    ExactlyOnceProcessor,
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
    """How a shard's own consumer of `provider.events` reaches Kafka."""

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
    processor: ExactlyOnceProcessor[Batch]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    feed: "asyncio.Task[None] | None" = None
    # Set when the shard is given up: its feed ends at its next turn even if the cancellation
    # was lost (as one arriving while aiokafka starts or stops a consumer can be).
    released: bool = False


@dataclass(eq=False)
class Shards:
    """The shards this instance owns, their books, processors and provider feeds."""

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
    # Shard batches applied at once in this process: the others wait their turn, first come
    # first served. Every shard applies every vacancy; six at once on one event loop share it
    # and all commit late, where two at a time commit the first (and its webhooks) soonest while
    # one's database round trips still overlap another's matching.
    batches_at_once: int = 2
    shard_count: int = 0  # the partitions of referral.events: set at the first assignment
    owned: dict[int, Shard] = field(default_factory=dict)
    _turns: asyncio.Semaphore | None = field(default=None, init=False)
    stopping: bool = False  # once the service stops, an assignment arriving late is ignored

    # --- ownership, as the group assigns the partitions of referral.events ---------------------

    def acquire(self, partitions: Sequence[int], shard_count: int) -> None:
        """Own the shards of `partitions` (of `shard_count`): each starts its provider feed."""
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
                lease_s=self.lease_s,
            )
            processor = ExactlyOnceProcessor(
                self.engine,
                self.schema,
                projection,
                OneShardDeadLetters(
                    self.dead_letters, number, shard_count, self.feed.provider_topic
                ),
                self.consumer_metrics,
                shard=number,
            )
            shard = Shard(number, projection, processor)
            shard.feed = asyncio.create_task(self._run_feed(shard), name=f"alerting shard {number}")
            self.owned[number] = shard
        logger.info("alerting owns shards %s of %s", sorted(self.owned), shard_count)

    async def release(self, partitions: Sequence[int]) -> None:
        """Give up the shards of `partitions`: stop their feeds once their batch in hand is done."""
        for number in partitions:
            shard = self.owned.pop(number, None)
            if shard is None:
                continue
            shard.released = True
            async with shard.lock:  # let a batch in hand commit
                if shard.feed is not None:
                    shard.feed.cancel()
            if shard.feed is not None:
                # Its consumer is stopped as it ends: bounded, so that a consumer cancelled while
                # it was starting can never hold up a rebalance or the service's stop.
                done, _ = await asyncio.wait({shard.feed}, timeout=FEED_STOP_TIMEOUT_S)
                if not done:
                    logger.warning(
                        "shard %s's feed did not stop within %.0fs", number, FEED_STOP_TIMEOUT_S
                    )
        self._set_gauges()

    async def stop(self) -> None:
        """Give up every shard, and own none from now on."""
        self.stopping = True
        await self.release(list(self.owned))

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
        """Apply a batch of referral records, each partition's to its shard (consumed at
        `consumed_at`, for the `committed` stage)."""
        by_partition: dict[int, list[Delivery]] = {}
        for delivery in deliveries:
            by_partition.setdefault(delivery.partition, []).append(delivery)
        for partition, records in by_partition.items():
            shard = self.owned.get(partition)
            if shard is None:
                # Revoked meanwhile: its new owner reads these from the shard's stored positions.
                logger.info(
                    "shard %s is no longer ours: its records are left to its owner", partition
                )
                continue
            await self._handle(shard, records, consumed_at)

    async def _handle(
        self, shard: Shard, records: Sequence[Delivery], consumed_at: float | None
    ) -> None:
        if self._turns is None:
            self._turns = asyncio.Semaphore(self.batches_at_once)
        async with self._turns, shard.lock:
            await shard.processor.handle(records)
        if consumed_at is not None:
            stage = self.metrics.stages.labels(PipelineStage.COMMITTED)
            took = max(time.time() - consumed_at, 0.0)
            for _ in records:
                stage.observe(took)
        self._set_gauges()
        await self.after_batch(shard.projection)

    async def _run_feed(self, shard: Shard) -> None:
        """Read every partition of provider.events from the shard's positions until released."""
        options = self.feed
        while not shard.released:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=options.bootstrap_servers,
                client_id=f"{options.client_id}-shard-{shard.number}",
                group_id=None,
                fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                **options.security.client_options(),
            )
            try:
                async with shard.lock:
                    await shard.projection.warm_up(self.engine)
                self._set_gauges()
                await consumer.start()
                await self._follow(shard, consumer)
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError):
                logger.exception(
                    "shard %s cannot read %s; retrying in %.1fs",
                    shard.number,
                    options.provider_topic,
                    options.retry_interval,
                )
            except Exception:
                # Not a bad record (the processor dead-letters those): start again from the
                # stored positions, as a subscriber nacking the batch would.
                logger.exception(
                    "shard %s failed a batch; resuming from its positions", shard.number
                )
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(consumer.stop(), FEED_STOP_TIMEOUT_S)
            await asyncio.sleep(options.retry_interval)

    async def _follow(self, shard: Shard, consumer: AIOKafkaConsumer) -> None:
        topic = self.feed.provider_topic
        partitions = [TopicPartition(topic, number) for number in await self._partitions(topic)]
        consumer.assign(partitions)
        positions = await self._positions(shard.number, topic)
        for partition in partitions:
            consumer.seek(partition, positions.get(partition.partition, 0))
        while not shard.released:
            fetched = await consumer.getmany(timeout_ms=1000, max_records=self.feed.max_records)
            raw = [record for batch in fetched.values() for record in batch]
            if not raw:
                continue
            consumed_at = self.consumed(raw)
            records = [Delivery.of(record) for record in raw]
            await self._handle(shard, records, consumed_at)
            await observe_lag(consumer, records, self.consumer_metrics)

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
