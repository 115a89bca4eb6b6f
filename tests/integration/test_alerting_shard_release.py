"""The instance's feed of provider.events: each shard it owns gets every record from its own
stored position on, once; the feed ends when the service stops, even if it never saw the
cancellation (one arriving while aiokafka starts or stops a consumer can be lost): a feed that
carried on would outlive its owner, reading and logging for ever."""

import asyncio
from uuid import uuid4

import asyncpg
import pytest
from alerting_fixtures import publish, setting_registered
from common import until
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.topics import PROVIDER_EVENTS
from services.alerting.metrics import AlertingMetrics
from services.alerting.projection import AlertingProjection
from services.alerting.shards import FeedOptions, Shards
from services.platform.clock import utc_now
from services.platform.consumer import ConsumerMetrics, Delivery
from services.platform.settings import CommonSettings
from services.platform.tables import connection_of

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


class NoDeadLetters:
    async def send(self, delivery: Delivery, reason: str) -> None:
        raise AssertionError(f"nothing here is poison: {reason}")


async def nothing_after(_: AlertingProjection) -> None:
    pass


def shards_on(engine: AsyncEngine, topic_prefix: str) -> Shards:
    registry = CollectorRegistry()
    return Shards(
        engine,
        "alerting",
        AlertingMetrics(registry),
        ConsumerMetrics(registry),
        NoDeadLetters(),
        FeedOptions(
            CommonSettings().kafka_bootstrap_servers,
            topic_prefix + PROVIDER_EVENTS.name,
            "test-shard-feed",
            retry_interval=0.1,
        ),
        utc_now,
        nothing_after,
    )


async def fetch(engine: AsyncEngine, sql: str) -> list[asyncpg.Record]:
    async with connection_of(engine) as connection:
        rows: list[asyncpg.Record] = await connection.fetch(sql)
    return rows


async def test_the_feed_ends_once_the_service_stops_without_being_cancelled(
    alerting_engine: AsyncEngine, topic_prefix: str
) -> None:
    shards = shards_on(alerting_engine, topic_prefix)
    shards.acquire([2], 6)
    feed = shards.feed_task
    assert feed is not None
    await asyncio.sleep(2.0)  # the feed has started its consumer and is fetching
    assert not feed.done()

    shards.stopping = True  # as `stop` marks it, but its cancellation never arrives

    async def ended() -> bool:
        return feed.done()

    await until(ended, "the feed ends", timeout_s=10)
    assert feed.exception() is None
    await shards.stop()


async def test_a_shard_owned_later_reads_from_its_own_positions_and_the_others_apply_nothing_twice(
    alerting_engine: AsyncEngine, topic_prefix: str
) -> None:
    first, second = uuid4(), uuid4()
    shards = shards_on(alerting_engine, topic_prefix)
    try:
        shards.acquire([2], 6)
        await publish([setting_registered(first)], topic_prefix)

        async def shard_2_has_it() -> bool:
            rows = await fetch(alerting_engine, "SELECT shard FROM alerting.settings")
            return [row["shard"] for row in rows] == [2]

        await until(shard_2_has_it, "shard 2 applies the first setting", timeout_s=20)
        epochs = "SELECT id, epoch FROM alerting.index_epoch ORDER BY id"
        before = {row["id"]: row["epoch"] for row in await fetch(alerting_engine, epochs)}

        # Shard 3 has stored nothing: the feed goes back to the start for it alone.
        shards.acquire([3], 6)
        await publish([setting_registered(second)], topic_prefix)

        async def both_have_both() -> bool:
            rows = await fetch(alerting_engine, "SELECT shard, setting_id FROM alerting.settings")
            return len(rows) == 4

        await until(both_have_both, "each shard applies each setting", timeout_s=20)
        after = {row["id"]: row["epoch"] for row in await fetch(alerting_engine, epochs)}
        inbox = await fetch(
            alerting_engine, "SELECT shard, count(*) AS n FROM alerting.inbox GROUP BY shard"
        )
    finally:
        await shards.stop()

    # Shard 2 applied only the second setting since (one batch more), never the first again.
    assert after[2] - before[2] == 1
    assert {row["shard"]: row["n"] for row in inbox} == {2: 2, 3: 2}
