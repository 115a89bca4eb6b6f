"""Fault 7: poison messages mid-stream, on partitions that carry real traffic: bytes that are not
JSON, an event breaking its schema (no beds), a payload with a field no contract has, an event type
no one knows. Every consumer of the topic sends each to the `.dlq` twin once, with the original
bytes and headers naming the reason and the source position, and its partition keeps moving."""

import json
from dataclasses import dataclass
from uuid import uuid4

import pytest

from contracts.topics import PROVIDER_EVENTS, REFERRAL_EVENTS, TopicSpec
from faults.fault_exchange import CONSUMES, Exchange
from faults.fault_workload import Workload
from faults.invariants import read_all, settle_and_check

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.postgres]


@dataclass(frozen=True)
class Poison:
    spec: TopicSpec
    partition: int
    offset: int
    value: bytes
    reason: str  # what the dead letter's dlq-error must say


def _altered(value: bytes, **changes: object) -> bytes:
    """A real event's JSON under a new event id, with `changes` made to it (or its payload)."""
    raw = json.loads(value)
    raw["event_id"] = str(uuid4())
    for name, change in changes.items():
        if name == "event_type":
            raw["event_type"] = change
        else:
            raw["payload"][name] = change
    return json.dumps(raw).encode()


async def _inject(exchange: Exchange) -> list[Poison]:
    """Four poison records, each keyed (so partitioned) like one of the test's own events."""
    provider_events = await read_all(
        exchange.bootstrap, exchange.topic(PROVIDER_EVENTS), PROVIDER_EVENTS.partitions
    )
    vacancy = next(r for r in reversed(provider_events) if b'"VacancyPosted"' in r.value)
    referral_events = await read_all(
        exchange.bootstrap, exchange.topic(REFERRAL_EVENTS), REFERRAL_EVENTS.partitions
    )
    referral = referral_events[-1]
    planned = [
        (PROVIDER_EVENTS, vacancy.key, b"\x00\xff this is not an event", "not JSON"),
        (PROVIDER_EVENTS, vacancy.key, _altered(vacancy.value, beds=0), "payload.beds"),
        (
            REFERRAL_EVENTS,
            referral.key,
            _altered(referral.value, unexpected_field="x"),
            "payload.unexpected_field",
        ),
        (
            REFERRAL_EVENTS,
            referral.key,
            _altered(referral.value, event_type="ReferralTeleported"),
            "unknown event type 'ReferralTeleported'",
        ),
    ]
    poison = []
    async with exchange.producer() as producer:
        for spec, key, value, reason in planned:
            sent = await producer.send_and_wait(exchange.topic(spec), value, key=key)
            poison.append(Poison(spec, sent.partition, sent.offset, value, reason))
    return poison


async def test_poison_goes_to_the_dead_letter_topic_with_its_reason_and_the_stream_moves_on(
    exchange: Exchange,
) -> None:
    workload = Workload(exchange)
    await workload.phase_one()
    poison = await _inject(exchange)
    await workload.phase_two()
    settled = await settle_and_check(exchange)

    for bad in poison:
        consumers = [name for name, specs in CONSUMES.items() if bad.spec in specs]
        letters = [
            (letter.value, headers)
            for letter in settled[bad.spec].dead_letters
            for headers in [{key: value.decode() for key, value in letter.headers}]
            if (headers["dlq-source-partition"], headers["dlq-source-offset"])
            == (str(bad.partition), str(bad.offset))
        ]
        assert len(letters) == len(consumers), f"one dead letter per consumer of {bad.spec.name}"
        for value, headers in letters:
            assert value == bad.value
            assert bad.reason in headers["dlq-error"], headers["dlq-error"]
            assert headers["dlq-source-topic"] == exchange.topic(bad.spec)
    assert settled.raised_for(workload.referrals) > 0
