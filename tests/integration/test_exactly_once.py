"""The consumer platform against the real broker and database: each effect once, nothing lost."""

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from builders import sample_envelope
from faststream.kafka import KafkaBroker
from kafka_probe import records_from_start
from prometheus_client import CollectorRegistry
from sqlalchemy import Column, Integer, MetaData, Table, Uuid

from contracts.envelope import Envelope
from contracts.events import VacancyWithdrawn
from contracts.serialization import to_bytes
from contracts.topics import PROVIDER_EVENTS
from services.platform.consumer import (
    ConsumerMetrics,
    ExactlyOnceProcessor,
    KafkaDeadLetters,
    consumer_tables,
)
from services.platform.database import create_engine
from services.platform.kafka import ConsumerPlacement, consume
from services.platform.settings import CommonSettings

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

BOOTSTRAP = CommonSettings().kafka_bootstrap_servers
SCHEMA = "probe"
Event = Envelope[Any]


@dataclass
class Applied:
    rows: list[tuple[UUID, UUID, int]] = field(default_factory=list)


class RecordingProjection:
    """Writes one row per applied event; refuses a withdrawal with reason `other` (a bad apply)."""

    async def load(self, connection: asyncpg.Connection, events: Sequence[Event]) -> Applied:
        return Applied()

    def apply(self, state: Applied, event: Event) -> None:
        if isinstance(event.payload, VacancyWithdrawn) and event.payload.reason == "other":
            raise ValueError("this projection cannot apply a withdrawal for another reason")
        state.rows.append((event.event_id, event.aggregate_id, event.sequence))

    async def save(self, connection: asyncpg.Connection, state: Applied) -> None:
        await connection.executemany(
            f"INSERT INTO {SCHEMA}.applied (event_id, aggregate_id, sequence) VALUES ($1, $2, $3)",
            state.rows,
        )


def _metadata() -> MetaData:
    metadata = MetaData(schema=SCHEMA)
    consumer_tables(metadata)
    Table(
        "applied",
        metadata,
        Column("event_id", Uuid, primary_key=True),
        Column("aggregate_id", Uuid, nullable=False),
        Column("sequence", Integer, nullable=False),
    )
    return metadata


@pytest.fixture
async def database(fresh_database_url: str) -> str:
    engine = create_engine(fresh_database_url)
    async with engine.begin() as connection:
        await connection.exec_driver_sql(f"CREATE SCHEMA {SCHEMA}")
        await connection.run_sync(_metadata().create_all)
    await engine.dispose()
    return fresh_database_url


@dataclass
class RunningConsumer:
    registry: CollectorRegistry

    def count(self, outcome: str) -> float:
        value = self.registry.get_sample_value(
            "nearhome_consumer_events_total", {"outcome": outcome}
        )
        return value or 0.0


async def _run_consumer(database_url: str, topic: str, until: Any) -> RunningConsumer:
    """Consume `topic` with a fresh group until `until(connection)` is true, then stop."""
    engine = create_engine(database_url)
    registry = CollectorRegistry()
    broker = KafkaBroker(BOOTSTRAP)
    processor = ExactlyOnceProcessor(
        engine,
        SCHEMA,
        RecordingProjection(),
        KafkaDeadLetters(broker.publish),
        ConsumerMetrics(registry),
        retry_backoff_s=0.01,
    )
    consume(
        broker,
        processor,
        [(replace(PROVIDER_EVENTS, name=topic), "recorded by the test's projection")],
        ConsumerPlacement(engine=engine, schema=SCHEMA, group_id=f"test-{uuid4()}", max_records=4),
    )

    connection = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        async with broker:
            await broker.start()
            async with asyncio.timeout(60):
                while not await until(connection):
                    await asyncio.sleep(0.1)
    finally:
        await connection.close()
        await engine.dispose()
    return RunningConsumer(registry)


async def _publish(topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def _keyed(event: Event) -> tuple[bytes, bytes]:
    return event.key, to_bytes(event)


async def _dead_letters(topic: str, count: int) -> list[tuple[bytes, dict[str, str]]]:
    letters = await records_from_start(BOOTSTRAP, topic, count)
    return [(r.value, {k: v.decode() for k, v in r.headers}) for r in letters]


def _applied_rows(rows: int) -> Any:
    async def done(connection: asyncpg.Connection) -> bool:
        count: int = await connection.fetchval(f"SELECT count(*) FROM {SCHEMA}.applied")
        return count >= rows

    return done


async def test_duplicates_reordering_and_poison_each_end_once_and_the_partition_moves_on(
    database: str, topic_prefix: str
) -> None:
    topic = PROVIDER_EVENTS.prefixed(topic_prefix).name
    setting = str(uuid4())  # one key, so one partition: the delivery order is the publish order
    a, b, c = uuid4(), uuid4(), uuid4()
    a1, a2, a3 = (
        sample_envelope("VacancyConfirmed", sequence=n, aggregate_id=a, setting_id=setting)
        for n in (1, 2, 3)
    )
    b1, b2 = (
        sample_envelope("VacancyConfirmed", sequence=n, aggregate_id=b, setting_id=setting)
        for n in (1, 2)
    )
    unappliable = sample_envelope(
        "VacancyWithdrawn", aggregate_id=uuid4(), setting_id=setting, reason="other"
    )
    c1 = sample_envelope("VacancyConfirmed", aggregate_id=c, setting_id=setting)
    invalid = json.loads(to_bytes(sample_envelope("VacancyPosted", setting_id=setting)))
    invalid["payload"]["beds"] = 0
    key = setting.encode()

    await _publish(
        topic,
        [
            *(_keyed(e) for e in (a1, a1, a1, a2, a2, a3, a3, a3)),
            _keyed(b2),
            (key, b"this is not an event"),
            (key, json.dumps(invalid).encode()),
            _keyed(b1),
            _keyed(unappliable),
            _keyed(c1),
        ],
    )
    consumer = await _run_consumer(database, topic, _applied_rows(6))

    connection = await asyncpg.connect(database.replace("+asyncpg", ""))
    try:
        applied = await connection.fetch(
            f"SELECT aggregate_id, sequence FROM {SCHEMA}.applied ORDER BY aggregate_id, sequence"
        )
        positions = await connection.fetch(f"SELECT * FROM {SCHEMA}.consumer_positions")
        parked = await connection.fetchval(f"SELECT count(*) FROM {SCHEMA}.parked_events")
    finally:
        await connection.close()
    assert sorted((r["aggregate_id"], r["sequence"]) for r in applied) == sorted(
        [(a, 1), (a, 2), (a, 3), (b, 1), (b, 2), (c, 1)]
    )
    assert parked == 0
    assert [(p["topic"], p["next_offset"]) for p in positions] == [(topic, 14)]
    assert consumer.count("duplicate") == 5
    assert consumer.count("dead_lettered") == 3
    dead = await _dead_letters(topic + ".dlq", 3)
    assert [value for value, _ in dead][:2] == [
        b"this is not an event",
        json.dumps(invalid).encode(),
    ]
    reasons = [headers["dlq-error"] for _, headers in dead]
    assert "not JSON" in reasons[0]
    assert "payload.beds" in reasons[1]
    assert "could not be applied" in reasons[2]
    assert all(headers["dlq-source-topic"] == topic for _, headers in dead)
    assert [int(headers["dlq-source-offset"]) for _, headers in dead] == [9, 10, 12]


async def test_a_new_consumer_resumes_from_the_positions_stored_with_the_effect(
    database: str, topic_prefix: str
) -> None:
    topic = PROVIDER_EVENTS.prefixed(topic_prefix).name
    first = [sample_envelope("VacancyConfirmed", aggregate_id=uuid4()) for _ in range(5)]
    later = [sample_envelope("VacancyConfirmed", aggregate_id=uuid4()) for _ in range(3)]
    await _publish(topic, [_keyed(e) for e in first])
    await _run_consumer(database, topic, _applied_rows(5))

    await _publish(topic, [_keyed(e) for e in later])
    # A different group has no committed offsets in Kafka: only the stored positions say where
    # the first consumer stopped. Reading from 0 would show the first five as duplicates.
    resumed = await _run_consumer(database, topic, _applied_rows(8))

    assert resumed.count("applied") == 3
    assert resumed.count("duplicate") == 0
