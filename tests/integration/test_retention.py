"""Retention against the real database and broker: old bookkeeping goes, exactly-once stays."""

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from builders import sample_envelope
from prometheus_client import CollectorRegistry
from sqlalchemy import MetaData
from test_exactly_once import (
    SCHEMA,
    RecordingProjection,
    _applied_rows,
    _keyed,
    _metadata,
    _publish,
    _run_consumer,
)

from contracts.topics import PROVIDER_EVENTS
from services.alerting.tables import DELIVERIES
from services.platform.consumer import (
    ConsumerMetrics,
    Delivery,
    ExactlyOnceProcessor,
    consumer_tables,
)
from services.platform.database import create_engine
from services.platform.idempotency import idempotency_table
from services.platform.migrations import upgrade_to_head_async
from services.platform.outbox import outbox_table
from services.platform.retention import (
    RetentionSettings,
    prune_delivered_webhooks,
    prune_idempotency_keys,
    prune_inbox,
    prune_sent_outbox,
)
from services.platform.settings import CommonSettings

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

BOOTSTRAP = CommonSettings().kafka_bootstrap_servers
DAY = timedelta(days=1)


def _later(days: float) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


def _dsn(database_url: str) -> str:
    return database_url.replace("+asyncpg", "")


@pytest.fixture
async def bookkeeping(fresh_database_url: str) -> MetaData:
    """The platform's outbox, idempotency keys and consumer tables in a schema of their own."""
    metadata = MetaData(schema="kept")
    outbox_table(metadata)
    idempotency_table(metadata)
    consumer_tables(metadata)
    engine = create_engine(fresh_database_url)
    async with engine.begin() as connection:
        await connection.exec_driver_sql("CREATE SCHEMA kept")
        await connection.run_sync(metadata.create_all)
    await engine.dispose()
    return metadata


async def test_sent_outbox_rows_and_old_idempotency_keys_go_in_batches_unsent_rows_stay(
    fresh_database_url: str, bookkeeping: MetaData
) -> None:
    connection = await asyncpg.connect(_dsn(fresh_database_url))
    try:
        now = datetime.now(UTC)
        # 7 sent 10 days ago, 2 sent an hour ago, 3 never sent (one staged 20 days ago).
        for published, count in ((now - 10 * DAY, 7), (now - timedelta(hours=1), 2), (None, 3)):
            for _ in range(count):
                await connection.execute(
                    "INSERT INTO kept.outbox (event_id, event_type, topic, message_key,"
                    " aggregate_id, sequence, body, created_at, published_at)"
                    " VALUES ($1, 'VacancyPosted', 'provider.events', '\\x01', $2, 1, '\\x02',"
                    " $3, $4)",
                    uuid4(),
                    uuid4(),
                    now - 20 * DAY,
                    published,
                )
        for index, created in enumerate([now - 8 * DAY] * 5 + [now - DAY] * 2):
            await connection.execute(
                "INSERT INTO kept.idempotency_keys"
                " (organisation_id, idempotency_key, request_hash, status_code, created_at)"
                " VALUES ('org', $1, 'hash', 201, $2)",
                f"key-{index}",
                created,
            )
    finally:
        await connection.close()

    engine = create_engine(fresh_database_url)
    try:
        outbox = bookkeeping.tables["kept.outbox"]
        keys = bookkeeping.tables["kept.idempotency_keys"]
        week = RetentionSettings().retain_sent_outbox
        assert week == 7 * DAY
        pruned = await prune_sent_outbox(
            engine, outbox, older_than=week, batch_size=2, now=lambda: now
        )
        pruned_keys = await prune_idempotency_keys(
            engine, keys, older_than=week, batch_size=2, now=lambda: now
        )
    finally:
        await engine.dispose()
    assert (pruned, pruned_keys) == (7, 5)

    connection = await asyncpg.connect(_dsn(fresh_database_url))
    try:
        left = await connection.fetch(
            "SELECT published_at IS NULL AS unsent, count(*) FROM kept.outbox GROUP BY 1 ORDER BY 1"
        )
        kept_keys = await connection.fetchval("SELECT count(*) FROM kept.idempotency_keys")
    finally:
        await connection.close()
    assert [(row["unsent"], row["count"]) for row in left] == [(False, 2), (True, 3)]
    assert kept_keys == 2


async def test_an_inbox_id_goes_only_once_its_partition_is_read_past_it_and_the_horizon_passed(
    fresh_database_url: str, bookkeeping: MetaData
) -> None:
    connection = await asyncpg.connect(_dsn(fresh_database_url))
    old, recent = datetime.now(UTC) - 40 * DAY, datetime.now(UTC) - DAY
    ids = {name: uuid4() for name in ("old_read", "old_unread", "recent_read", "no_position")}
    try:
        await connection.execute(
            "INSERT INTO kept.consumer_positions VALUES ('t', 0, 10), ('t', 1, 3)"
        )
        for name, partition, offset, received in (
            ("old_read", 0, 9, old),
            ("old_unread", 1, 3, old),  # at the stored position: not read past yet
            ("recent_read", 0, 4, recent),
            ("no_position", 2, 0, old),  # a partition with no stored position
        ):
            await connection.execute(
                'INSERT INTO kept.inbox (event_id, topic, partition, "offset", received_at)'
                " VALUES ($1, 't', $2, $3, $4)",
                ids[name],
                partition,
                offset,
                received,
            )
    finally:
        await connection.close()

    engine = create_engine(fresh_database_url)
    try:
        pruned = await prune_inbox(
            engine,
            bookkeeping.tables["kept.inbox"],
            bookkeeping.tables["kept.consumer_positions"],
            older_than=30 * DAY,
            batch_size=1,
            now=lambda: datetime.now(UTC),
        )
    finally:
        await engine.dispose()
    assert pruned == 1

    connection = await asyncpg.connect(_dsn(fresh_database_url))
    try:
        kept = {
            row["event_id"] for row in await connection.fetch("SELECT event_id FROM kept.inbox")
        }
    finally:
        await connection.close()
    assert kept == {ids["old_unread"], ids["recent_read"], ids["no_position"]}


async def test_a_sharded_inbox_id_goes_once_its_own_shard_has_read_past_it(
    fresh_database_url: str,
) -> None:
    """Alerting's shards each keep an inbox and positions: one shard's position prunes only its
    own copy of an id."""
    metadata = MetaData(schema="sharded")
    inbox, positions, _, _ = consumer_tables(metadata, sharded=True)
    engine = create_engine(fresh_database_url)
    async with engine.begin() as connection:
        await connection.exec_driver_sql("CREATE SCHEMA sharded")
        await connection.run_sync(metadata.create_all)
    event_id, old = uuid4(), datetime.now(UTC) - 40 * DAY
    connection = await asyncpg.connect(_dsn(fresh_database_url))
    try:
        # Shard 0 has read partition 0 past offset 5, shard 1 not yet.
        await connection.execute(
            "INSERT INTO sharded.consumer_positions (topic, partition, next_offset, shard)"
            " VALUES ('t', 0, 10, 0), ('t', 0, 5, 1)"
        )
        await connection.execute(
            'INSERT INTO sharded.inbox (event_id, topic, partition, "offset", received_at, shard)'
            " SELECT $1, 't', 0, 5, $2, shard FROM generate_series(0, 1) AS shard",
            event_id,
            old,
        )
        pruned = await prune_inbox(
            engine,
            inbox,
            positions,
            older_than=30 * DAY,
            batch_size=1,
            now=lambda: datetime.now(UTC),
        )
        kept = [
            tuple(row)
            for row in await connection.fetch("SELECT shard, event_id FROM sharded.inbox")
        ]
    finally:
        await connection.close()
        await engine.dispose()
    assert pruned == 1
    assert kept == [(1, event_id)]


async def test_an_old_duplicate_replayed_after_its_inbox_id_was_pruned_changes_nothing(
    fresh_database_url: str, topic_prefix: str
) -> None:
    # The exactly-once consumer's test schema (`probe`), as its own tests build it.
    engine = create_engine(fresh_database_url)
    async with engine.begin() as connection:
        await connection.exec_driver_sql(f"CREATE SCHEMA {SCHEMA}")
        await connection.run_sync(_metadata().create_all)
    metadata = _metadata()

    topic = PROVIDER_EVENTS.prefixed(topic_prefix).name
    first = [sample_envelope("VacancyConfirmed", aggregate_id=uuid4()) for _ in range(5)]
    await _publish(topic, [_keyed(event) for event in first])
    await _run_consumer(fresh_database_url, topic, _applied_rows(5))

    try:
        pruned = await prune_inbox(
            engine,
            metadata.tables[f"{SCHEMA}.inbox"],
            metadata.tables[f"{SCHEMA}.consumer_positions"],
            older_than=RetentionSettings().retain_inbox_ids,
            batch_size=2,
            now=lambda: _later(31),
        )
        assert pruned == 5

        # The very records, read again from the topic and handed to the consumer (a redelivery
        # after a restart, a rebalance or a reset of the group's offsets): no id is left in the
        # inbox to find, and still nothing is applied twice.
        registry = CollectorRegistry()
        processor = ExactlyOnceProcessor(
            engine,
            SCHEMA,
            RecordingProjection(),
            _NoDeadLetters(),
            ConsumerMetrics(registry),
            retry_backoff_s=0.01,
        )
        replayed = await _every_record(topic, 5)
        await processor.handle(replayed)
        assert registry.get_sample_value(
            "nearhome_consumer_events_total", {"outcome": "duplicate"}
        ) == len(replayed)
    finally:
        await engine.dispose()

    # A consumer under a new group (no offsets committed in Kafka) resumes from the stored
    # positions too: the next event is applied once and the old five are not read again.
    later = sample_envelope("VacancyConfirmed", aggregate_id=uuid4())
    await _publish(topic, [_keyed(later)])
    resumed = await _run_consumer(fresh_database_url, topic, _applied_rows(6))
    assert resumed.count("applied") == 1
    assert resumed.count("duplicate") == 0

    connection = await asyncpg.connect(_dsn(fresh_database_url))
    try:
        applied = await connection.fetch(f"SELECT event_id FROM {SCHEMA}.applied")
        inbox = await connection.fetchval(f"SELECT count(*) FROM {SCHEMA}.inbox")
    finally:
        await connection.close()
    assert sorted(row["event_id"] for row in applied) == sorted(
        event.event_id for event in [*first, later]
    )
    assert inbox == 1  # only the new event's id; the pruned five were not recorded again


async def test_delivered_webhook_rows_go_past_the_horizon_pending_and_dead_ones_stay(
    fresh_database_url: str,
) -> None:
    await upgrade_to_head_async("alerting", fresh_database_url)
    subscription = uuid4()
    now = datetime.now(UTC)
    connection = await asyncpg.connect(_dsn(fresh_database_url))
    try:
        await connection.execute(
            "INSERT INTO alerting.subscriptions"
            " (subscription_id, authority_code, url, created_at, secret, delivered)"
            " VALUES ($1, 'E06000009', 'https://council.example/hook', $2, 'whsec_x', 4)",
            subscription,
            now - 90 * DAY,
        )
        for status, delivered_at in (
            ("delivered", now - 40 * DAY),
            ("delivered", now - 31 * DAY),
            ("delivered", now - 2 * DAY),
            ("delivered", now - 3 * DAY),
            ("pending", None),
            ("dead", None),
        ):
            await connection.execute(
                "INSERT INTO alerting.deliveries (subscription_id, alert_id, kind, body, status,"
                " next_attempt_at, delivered_at, source_occurred_at, created_at)"
                " VALUES ($1, $2, 'raised', '\\x7b7d', $3, $4, $5, $4, $4)",
                subscription,
                uuid4(),
                status,
                now - 60 * DAY,
                delivered_at,
            )
    finally:
        await connection.close()

    engine = create_engine(fresh_database_url)
    try:
        pruned = await prune_delivered_webhooks(
            engine,
            DELIVERIES,
            older_than=RetentionSettings().retain_delivered_webhooks,
            batch_size=1,
            now=lambda: now,
        )
    finally:
        await engine.dispose()
    assert pruned == 2

    connection = await asyncpg.connect(_dsn(fresh_database_url))
    try:
        left = await connection.fetch(
            "SELECT status, count(*) FROM alerting.deliveries GROUP BY status ORDER BY status"
        )
        delivered = await connection.fetchval("SELECT delivered FROM alerting.subscriptions")
    finally:
        await connection.close()
    assert [(row["status"], row["count"]) for row in left] == [
        ("dead", 1),
        ("delivered", 2),
        ("pending", 1),
    ]
    assert delivered == 4  # the subscription's own count is kept


async def _every_record(topic: str, count: int) -> list[Delivery]:
    """The first `count` records of every partition of `topic`, read again from the start."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        found: list[Delivery] = []
        async with asyncio.timeout(30):
            while len(found) < count:
                batches = await consumer.getmany(timeout_ms=500)
                found.extend(Delivery.of(r) for records in batches.values() for r in records)
    finally:
        await consumer.stop()
    return found


class _NoDeadLetters:
    async def send(self, delivery: Delivery, reason: str) -> None:
        raise AssertionError(f"nothing here is poison: {reason}")
