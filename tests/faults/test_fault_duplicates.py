"""Fault 5: every event delivered three times. Each record the writers put on provider.events and
referral.events is published twice more, byte for byte, to the same partition: the consumers see
every event three times, once interleaved with new traffic, and must take each effect once."""

from collections import Counter

import pytest

from contracts.topics import PROVIDER_EVENTS, REFERRAL_EVENTS
from faults.fault_exchange import Exchange
from faults.fault_workload import Workload
from faults.invariants import end_offsets, read_all, settle, settle_and_check

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.postgres]

DELIVERIES = 3
COPIED = (PROVIDER_EVENTS, REFERRAL_EVENTS)


async def deliver_again(exchange: Exchange, copied: dict[tuple[str, int], int]) -> None:
    """Publish every original record past the positions in `copied` twice more, to its own
    partition; `copied` then holds the ends after the copies."""
    async with exchange.producer() as producer:
        for spec in COPIED:
            topic = exchange.topic(spec)
            records = await read_all(exchange.bootstrap, topic, spec.partitions)
            originals = [r for r in records if r.offset >= copied.get((topic, r.partition), 0)]
            for record in originals:
                for _ in range(DELIVERIES - 1):
                    sent = await producer.send_and_wait(
                        topic,
                        record.value,
                        key=record.key,
                        partition=record.partition,
                        headers=list(record.headers),
                    )
                    copied[(topic, record.partition)] = sent.offset + 1


async def test_every_event_delivered_three_times_takes_effect_once(exchange: Exchange) -> None:
    workload = Workload(exchange)
    before = await end_offsets(exchange)
    copied = dict(before)

    await workload.phase_one()
    await settle(exchange)
    await deliver_again(exchange, copied)
    await workload.phase_two()
    await settle(exchange)
    await deliver_again(exchange, copied)
    settled = await settle_and_check(exchange)

    deliveries = Counter(id_ for spec in COPIED for id_ in settled[spec].ids(since=before))
    assert len(deliveries) == workload.writes
    assert set(deliveries.values()) == {DELIVERIES}, deliveries
    assert settled.raised_for(workload.referrals) > 0
