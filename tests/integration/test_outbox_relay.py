"""The platform's outbox relay against the real broker and database: order, redelivery, outages."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import pytest
from builders import sample_envelope
from prometheus_client import CollectorRegistry
from provider_fixtures import BOOTSTRAP, probe_from_now
from sqlalchemy import Table, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts.envelope import Envelope
from contracts.events import EventPayload
from contracts.topics import PROVIDER_EVENTS
from services.platform.background import running
from services.platform.database import create_engine, service_metadata, session_factory
from services.platform.kafka import OutboxPublisher, event_broker
from services.platform.outbox import (
    BrokerUnavailableError,
    OutboxMetrics,
    OutboxRelay,
    OutgoingMessage,
    Send,
    add_to_outbox,
    outbox_table,
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

SCHEMA = "relay_test"
LOCK_ID = 990_001
CLOSED_PORT = "127.0.0.1:1"


@dataclass
class Outbox:
    sessions: async_sessionmaker[AsyncSession]
    table: Table

    async def stage(self, envelopes: list[Envelope[EventPayload]]) -> None:
        async with self.sessions() as session, session.begin():
            for envelope in envelopes:
                await add_to_outbox(session, self.table, envelope)

    async def unsent_event_ids(self) -> list[UUID]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(self.table.c.event_id)
                .where(self.table.c.published_at.is_(None))
                .order_by(self.table.c.id)
            )
        return [row.event_id for row in rows]

    def relay(
        self, send: Send, registry: CollectorRegistry | None = None, **options: Any
    ) -> OutboxRelay:
        """A relay of this outbox through `send`, its metrics in `registry` (a new one if none)."""
        metrics = OutboxMetrics(CollectorRegistry() if registry is None else registry)
        return OutboxRelay(self.sessions, self.table, send, metrics, lock_id=LOCK_ID, **options)


@pytest.fixture
async def outbox(fresh_database_url) -> AsyncIterator[Outbox]:
    metadata = service_metadata(SCHEMA)
    table = outbox_table(metadata)
    engine = create_engine(fresh_database_url)
    async with engine.begin() as connection:
        await connection.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        await connection.run_sync(metadata.create_all)
    try:
        yield Outbox(session_factory(engine), table)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def publisher_to(bootstrap_servers: str) -> AsyncIterator[OutboxPublisher]:
    publisher = OutboxPublisher(
        event_broker(bootstrap_servers, f"relay-test-{uuid4().hex[:8]}"), (PROVIDER_EVENTS,)
    )
    try:
        yield publisher
    finally:
        await publisher.close()


def updates_of(setting_ids: list[UUID], count: int) -> list[Envelope[EventPayload]]:
    """`count` successive events per setting, interleaved across the settings as writes would be."""
    return [
        sample_envelope("SettingUpdated", sequence=sequence, setting_id=str(setting_id))
        for sequence in range(1, count + 1)
        for setting_id in setting_ids
    ]


def of_settings(setting_ids: list[UUID]) -> object:
    wanted = {str(setting_id) for setting_id in setting_ids}
    return lambda event: str(event.aggregate_id) in wanted


async def test_the_relay_publishes_in_id_order_per_aggregate_and_marks_rows_sent(outbox) -> None:
    setting_ids = [uuid4() for _ in range(3)]
    staged = updates_of(setting_ids, count=4)
    await outbox.stage(staged)
    registry = CollectorRegistry()
    probe = await probe_from_now(BOOTSTRAP, PROVIDER_EVENTS)
    try:
        async with publisher_to(BOOTSTRAP) as publisher:
            relay = outbox.relay(publisher.send, registry, batch_size=5)
            batches = [await relay.publish_pending() for _ in range(4)]
        await probe.wait_for(of_settings(setting_ids), count=len(staged))  # type: ignore[arg-type]
        await probe.settle()
        arrivals = probe.matching(of_settings(setting_ids))  # type: ignore[arg-type]
    finally:
        await probe.close()

    assert batches == [5, 5, 2, 0]
    assert await outbox.unsent_event_ids() == []
    assert len(arrivals) == len(staged), "each event once"
    for setting_id in setting_ids:
        mine = [a for a in arrivals if a.event.aggregate_id == setting_id]
        assert [a.event.sequence for a in mine] == [1, 2, 3, 4]
        assert [a.event.event_id for a in mine] == [
            e.event_id for e in staged if e.aggregate_id == setting_id
        ]
        assert {a.record.key for a in mine} == {str(setting_id).encode()}
        assert {a.record.partition for a in mine} == {mine[0].record.partition}
    published = registry.get_sample_value(
        "nearhome_events_published_total",
        {"topic": PROVIDER_EVENTS.name, "event_type": "SettingUpdated"},
    )
    assert published == len(staged)


async def test_two_relays_of_one_outbox_publish_each_event_once_in_order(outbox) -> None:
    """Two instances of a service each run a relay: one at a time holds the outbox (its advisory
    lock), so they never publish a row twice or an aggregate's events out of order."""
    setting_ids = [uuid4() for _ in range(4)]
    staged = updates_of(setting_ids, count=6)
    await outbox.stage(staged)
    probe = await probe_from_now(BOOTSTRAP, PROVIDER_EVENTS)
    try:
        async with publisher_to(BOOTSTRAP) as first, publisher_to(BOOTSTRAP) as second:
            relays = [
                outbox.relay(first.send, batch_size=3),
                outbox.relay(second.send, batch_size=3),
            ]

            async def drain(relay: OutboxRelay) -> int:
                published = 0
                while await outbox.unsent_event_ids():
                    published += await relay.publish_pending()
                return published

            shares = await asyncio.gather(*(drain(relay) for relay in relays))
        await probe.wait_for(of_settings(setting_ids), count=len(staged))  # type: ignore[arg-type]
        await probe.settle()
        arrivals = probe.matching(of_settings(setting_ids))  # type: ignore[arg-type]
    finally:
        await probe.close()

    assert sum(shares) == len(staged), f"published by each relay: {shares}"
    assert sorted(a.event.event_id for a in arrivals) == sorted(e.event_id for e in staged)
    for setting_id in setting_ids:
        mine = [a.event.sequence for a in arrivals if a.event.aggregate_id == setting_id]
        assert mine == [1, 2, 3, 4, 5, 6]


class RelayCrashedError(BaseException):
    """Stands for the relay's process dying: no `except Exception` in the relay catches it."""


async def test_a_relay_that_dies_after_the_broker_acknowledged_but_before_marking_publishes_again(
    outbox,
) -> None:
    setting_id = uuid4()
    staged = updates_of([setting_id], count=2)
    await outbox.stage(staged)
    probe = await probe_from_now(BOOTSTRAP, PROVIDER_EVENTS)
    try:
        async with publisher_to(BOOTSTRAP) as publisher:
            sent = 0

            async def send_then_die_before_marking(message: OutgoingMessage) -> Awaitable[object]:
                nonlocal sent
                confirmation = await publisher.send(message)
                sent += 1
                if sent < len(staged):
                    return confirmation

                async def acknowledged_then_dies() -> object:
                    acknowledgement = await confirmation
                    assert acknowledgement is not None
                    raise RelayCrashedError

                return acknowledged_then_dies()

            dying = outbox.relay(send_then_die_before_marking)
            with pytest.raises(RelayCrashedError):
                await dying.publish_pending()
            unsent_after_the_crash = await outbox.unsent_event_ids()
            await probe.wait_for(of_settings([setting_id]), count=2)  # type: ignore[arg-type]

            restarted = outbox.relay(publisher.send)
            republished = await restarted.publish_pending()
        await probe.wait_for(of_settings([setting_id]), count=4)  # type: ignore[arg-type]
        await probe.settle()
        arrivals = probe.matching(of_settings([setting_id]))  # type: ignore[arg-type]
    finally:
        await probe.close()

    assert unsent_after_the_crash == [e.event_id for e in staged], "rolled back: nothing marked"
    assert republished == 2
    assert await outbox.unsent_event_ids() == []
    staged_ids = [e.event_id for e in staged]
    assert [a.event.event_id for a in arrivals] == staged_ids + staged_ids, "same ids, again"
    assert [a.event.sequence for a in arrivals] == [1, 2, 1, 2]


async def test_with_the_broker_unreachable_rows_stay_unsent_and_failures_are_counted(
    outbox,
) -> None:
    staged = updates_of([uuid4(), uuid4()], count=2)
    await outbox.stage(staged)
    registry = CollectorRegistry()

    def sample(name: str) -> float:
        return registry.get_sample_value(name) or 0.0

    async with publisher_to(CLOSED_PORT) as publisher:
        relay = outbox.relay(publisher.send, registry, retry_interval=0.1, backlog_interval=0.1)
        with pytest.raises(BrokerUnavailableError, match="4 events await the broker"):
            await relay.publish_pending()
        failures_after_one_try = sample("nearhome_outbox_publish_failures_total")

        async with running(relay.run()):
            deadline = time.monotonic() + 10
            while (
                sample("nearhome_outbox_publish_failures_total") < 3
                or sample("nearhome_outbox_backlog") != len(staged)
                or sample("nearhome_outbox_oldest_unsent_age_seconds") <= 0
            ):
                assert time.monotonic() < deadline, "the relay did not keep trying and measuring"
                await asyncio.sleep(0.05)

    assert failures_after_one_try == 1
    assert await outbox.unsent_event_ids() == [e.event_id for e in staged]
    assert sample("nearhome_events_published_total") == 0
