"""Rebuild the ledger from the event log into fresh tables and compare it with the live one.

The topics are replayed from offset 0 by a bare consumer (manual assignment, no group) through
the same processor and projection as the live ledger, into the schema `ledger_rebuild`. The live
ledger's stored positions and its capacity are read in one snapshot; the replay stops at exactly
those positions, so both sides have seen the same events, and both are summarised by a digest of
their council-level capacity and flows at one `as_of`.
"""

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.topics import PROVIDER_EVENTS, REFERRAL_EVENTS
from services.ledger import store, tables
from services.ledger.domain import CouncilCapacity
from services.ledger.settings import Settings
from services.platform.clock import Clock, utc_now
from services.platform.connections import KafkaSecurity
from services.platform.consumer import (
    ConsumerMetrics,
    Delivery,
    ExactlyOnceProcessor,
    stored_positions,
)
from services.platform.database import create_engine
from services.platform.migrations import prepare_schema
from services.platform.tables import connection_of, qualified, select_columns

REBUILD_SCHEMA = "ledger_rebuild"
# The record and consumer tables (history is the live ledger's own record of time).
REBUILT_TABLES = (
    tables.SETTINGS,
    tables.VACANCIES,
    tables.PLACEMENTS,
    tables.REFERRALS,
    tables.REQUESTS,
    tables.ANSWERS,
    tables.INBOX,
    tables.CONSUMER_POSITIONS,
    tables.AGGREGATE_VERSIONS,
    tables.PARKED_EVENTS,
)
# Records per replayed batch (one transaction each): bigger than the live consumer's, for speed.
REPLAY_BATCH = 5000
OUTCOMES = ("applied", "duplicate", "stale", "parked", "dead_lettered")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class LedgerDigest:
    """A stable summary of a ledger's capacity: sha256 of its sorted council rows and flows."""

    sha256: str
    council_rows: int
    flow_rows: int
    counts: dict[str, int]


@dataclass(frozen=True)
class RebuildReport:
    as_of: datetime
    live: LedgerDigest
    rebuilt: LedgerDigest
    replayed: int
    outcomes: dict[str, int]
    # Records on the topics (at the start) that the live ledger had not processed.
    live_behind: int
    dead_letter_reasons: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return self.live.sha256 == self.rebuilt.sha256


def capacity_digest(
    capacity: CouncilCapacity, as_of: datetime, loop: dict[str, str] | None = None
) -> str:
    """sha256 over the sorted council-level rows and flows (and the `as_of` they hold for), and
    the digests of the loop's records (requests, answers, placements from them) when given."""
    lines = sorted(
        "figures|{}|{}|{}".format(code, placement_type.value, "|".join(map(str, f.as_row())))
        for (code, placement_type), f in capacity.figures.items()
    )
    lines += sorted(
        f"flow|{code}|{placing}|{placement_type.value}|{beds}"
        for (code, placing, placement_type), beds in capacity.flows.items()
    )
    lines += sorted(f"loop|{name}|{digest}" for name, digest in (loop or {}).items())
    body = "\n".join([f"as_of|{as_of.isoformat()}", *lines])
    return hashlib.sha256(body.encode()).hexdigest()


class _CountedDeadLetters:
    """Dead letters of a replay are only counted: the live consumer published them already."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    async def send(self, delivery: Delivery, reason: str) -> None:
        self.reasons.append(f"{delivery.topic}[{delivery.partition}]@{delivery.offset}: {reason}")


async def _recreate_schema(connection: asyncpg.Connection) -> None:
    await connection.execute(f"DROP SCHEMA IF EXISTS {REBUILD_SCHEMA} CASCADE")
    await connection.execute(f"CREATE SCHEMA {REBUILD_SCHEMA}")
    for table in REBUILT_TABLES:
        rebuilt = tables.table_in(table, REBUILD_SCHEMA)
        await connection.execute(
            f"CREATE TABLE {qualified(rebuilt)} (LIKE {qualified(table)} INCLUDING ALL)"
        )


async def _digest(
    connection: asyncpg.Connection, schema: str, settings: Settings, as_of: datetime
) -> LedgerDigest:
    capacity = await store.council_capacity(
        connection, schema, now=as_of, stale_after=settings.vacancy_stale_after
    )
    return LedgerDigest(
        sha256=capacity_digest(capacity, as_of, await store.loop_digests(connection, schema)),
        council_rows=len(capacity.figures),
        flow_rows=len(capacity.flows),
        counts=await store.row_counts(connection, schema),
    )


class _Replay:
    """Reads the ledger's topics from offset 0 up to given positions, into the rebuild schema."""

    def __init__(self, engine: AsyncEngine, consumer: AIOKafkaConsumer, progress: Progress) -> None:
        self._consumer = consumer
        self._progress = progress
        self._registry = CollectorRegistry()
        self.dead_letters = _CountedDeadLetters()
        self._processor = ExactlyOnceProcessor(
            engine,
            REBUILD_SCHEMA,
            store.LedgerProjection(REBUILD_SCHEMA),
            self.dead_letters,
            ConsumerMetrics(self._registry),
            partitions_apart=True,  # as the live ledger's (app.py): no row is in two partitions
        )
        self.replayed = 0

    def outcomes(self) -> dict[str, int]:
        return {
            outcome: int(
                self._registry.get_sample_value(
                    "nearhome_consumer_events_total", {"outcome": outcome}
                )
                or 0
            )
            for outcome in OUTCOMES
        }

    async def run(self, targets: dict[TopicPartition, int], batch_size: int) -> None:
        total = sum(targets.values())
        await self._consumer.seek_to_beginning(*targets)
        started = last_report = time.monotonic()
        reported = 0
        remaining = {tp for tp, end in targets.items() if end > 0}
        while remaining:
            batches = await self._consumer.getmany(
                *remaining, timeout_ms=1000, max_records=batch_size
            )
            deliveries = [
                Delivery.of(record)
                for tp, records in batches.items()
                for record in records
                if record.offset < targets[tp]
            ]
            if deliveries:
                await self._processor.handle(deliveries)
                self.replayed += len(deliveries)
            for tp in list(remaining):
                if await self._consumer.position(tp) >= targets[tp]:
                    remaining.discard(tp)
            now = time.monotonic()
            if now - last_report >= 3:
                rate = (self.replayed - reported) / (now - last_report)
                self._progress(f"  replayed {self.replayed:,}/{total:,} events ({rate:,.0f}/s)")
                last_report, reported = now, self.replayed
        elapsed = max(time.monotonic() - started, 1e-9)
        self._progress(
            f"  replayed {self.replayed:,} events in {elapsed:.1f}s"
            f" ({self.replayed / elapsed:,.0f}/s)"
        )


async def _live_positions(
    engine: AsyncEngine, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    stored = await stored_positions(engine, store.SCHEMA)
    return {tp: stored.get(tp, 0) for tp in partitions}


async def _wait_for_live(
    engine: AsyncEngine,
    ends: dict[TopicPartition, int],
    wait_s: float,
    progress: Progress,
) -> int:
    """Give the live ledger up to `wait_s` to reach the ends; how far behind it still is."""
    deadline = time.monotonic() + wait_s
    while True:
        positions = await _live_positions(engine, list(ends))
        behind = sum(max(end - positions[tp], 0) for tp, end in ends.items())
        if behind == 0 or time.monotonic() >= deadline:
            return behind
        progress(f"waiting for the live ledger to catch up ({behind:,} events behind)")
        await asyncio.sleep(min(1.0, max(deadline - time.monotonic(), 0)))


async def rebuild(
    settings: Settings,
    *,
    progress: Progress,
    wait_s: float = 30.0,
    keep: bool = False,
    clock: Clock = utc_now,
) -> RebuildReport:
    """Replay the topics into fresh tables and compare the result with the live ledger.

    It creates (and drops) a schema of its own, which the ledger's runtime role may not: it runs
    as the schemas' owner (`owner_database_url`: NEARHOME_MIGRATE_DATABASE_URL, else
    DATABASE_URL). Like the service, it wants the ledger's schema at head (in development it
    migrates it)."""
    database_url = settings.owner_database_url
    await prepare_schema("ledger", database_url, settings.database_tls)
    engine = create_engine(database_url, tls=settings.database_tls)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **settings.kafka_security.client_options(),
    )
    try:
        async with connection_of(engine) as connection:
            await _recreate_schema(connection)
        await consumer.start()
        partitions = await _partitions(
            settings.kafka_bootstrap_servers, settings.topic_prefix, settings.kafka_security
        )
        consumer.assign(partitions)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        behind = await _wait_for_live(engine, ends, wait_s, progress)
        as_of = clock()
        # The live positions and capacity from one snapshot: what the live ledger had seen.
        async with (
            connection_of(engine) as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            targets = {
                TopicPartition(r["topic"], r["partition"]): r["next_offset"]
                for r in await connection.fetch(select_columns(tables.CONSUMER_POSITIONS))
            }
            live = await _digest(connection, store.SCHEMA, settings, as_of)
        targets = {tp: targets.get(tp, 0) for tp in partitions}
        progress(
            f"replaying {', '.join(sorted({tp.topic for tp in partitions}))} from offset 0 to the"
            f" live ledger's positions ({sum(targets.values()):,} records)"
        )
        replay = _Replay(engine, consumer, progress)
        await replay.run(targets, REPLAY_BATCH)
        async with connection_of(engine) as connection:
            rebuilt = await _digest(connection, REBUILD_SCHEMA, settings, as_of)
            if not keep:
                await connection.execute(f"DROP SCHEMA {REBUILD_SCHEMA} CASCADE")
        return RebuildReport(
            as_of=as_of,
            live=live,
            rebuilt=rebuilt,
            replayed=replay.replayed,
            outcomes=replay.outcomes(),
            live_behind=behind,
            dead_letter_reasons=replay.dead_letters.reasons,
        )
    finally:
        await consumer.stop()
        await engine.dispose()


async def _partitions(
    bootstrap_servers: str, prefix: str, security: KafkaSecurity
) -> list[TopicPartition]:
    """Every partition of the ledger's two topics, as the broker knows them."""
    names = [prefix + topic.name for topic in (PROVIDER_EVENTS, REFERRAL_EVENTS)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **security.client_options())
    await admin.start()
    try:
        described: list[dict[str, Any]] = await admin.describe_topics(names)
    finally:
        await admin.close()
    partitions: list[TopicPartition] = []
    for topic in described:
        if topic["error_code"] or not topic["partitions"]:
            raise RuntimeError(
                f"topic {topic['topic']} does not exist (Kafka error {topic['error_code']})"
            )
        partitions += sorted(
            TopicPartition(topic["topic"], p["partition"]) for p in topic["partitions"]
        )
    return partitions
