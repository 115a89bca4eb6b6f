"""A shard given up stops reading provider.events, even if its feed never saw the cancellation
(one arriving while aiokafka starts or stops a consumer can be lost): a feed that carried on would
outlive its owner, reading and logging for ever."""

import asyncio

import pytest
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

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


class NoDeadLetters:
    async def send(self, delivery: Delivery, reason: str) -> None:
        raise AssertionError(f"nothing here is poison: {reason}")


async def nothing_after(_: AlertingProjection) -> None:
    pass


async def test_a_released_shard_feed_ends_without_being_cancelled(
    alerting_engine: AsyncEngine, topic_prefix: str
) -> None:
    registry = CollectorRegistry()
    shards = Shards(
        alerting_engine,
        "alerting",
        AlertingMetrics(registry),
        ConsumerMetrics(registry),
        NoDeadLetters(),
        FeedOptions(
            CommonSettings().kafka_bootstrap_servers,
            topic_prefix + PROVIDER_EVENTS.name,
            "test-shard-release",
            retry_interval=0.1,
        ),
        utc_now,
        nothing_after,
    )
    shards.acquire([2], 6)
    shard = shards.owned[2]
    assert shard.feed is not None
    await asyncio.sleep(2.0)  # the feed has started its consumer and is fetching
    assert not shard.feed.done()

    shard.released = True  # as `release` marks it, but its cancellation never arrives

    feed = shard.feed

    async def ended() -> bool:
        return feed.done()

    await until(ended, "the released shard's feed ends", timeout_s=10)
    assert feed.exception() is None
    await shards.stop()
