"""Reading what really arrived on a topic, from the moment a test started looking."""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.structs import TopicPartition

from contracts.envelope import Envelope
from contracts.events import EventPayload
from contracts.serialization import from_bytes
from contracts.topics import TopicSpec, all_topics

_CATALOGUE = {spec.name: spec for spec in all_topics()}


@dataclass(frozen=True)
class Arrival:
    record: ConsumerRecord[bytes, bytes]
    event: Envelope[EventPayload]


Match = Callable[[Envelope[EventPayload]], bool]


class TopicProbe:
    """Remembers a topic's end offsets, then reads every event published after them."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer
        self.arrivals: list[Arrival] = []

    @classmethod
    async def from_now(cls, bootstrap_servers: str, topic: str | TopicSpec) -> Self:
        # The catalogue knows each topic's partitions; a new consumer has no metadata to ask.
        spec = topic if isinstance(topic, TopicSpec) else _CATALOGUE[topic]
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = [TopicPartition(spec.name, p) for p in range(spec.partitions)]
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            for partition, offset in ends.items():
                consumer.seek(partition, offset)
        except BaseException:
            await consumer.stop()
            raise
        return cls(consumer)

    async def close(self) -> None:
        await self._consumer.stop()

    async def _read(self, timeout_s: float) -> None:
        batches = await self._consumer.getmany(timeout_ms=int(timeout_s * 1000))
        for records in batches.values():
            self.arrivals.extend(Arrival(record, from_bytes(record.value)) for record in records)

    def matching(self, match: Match) -> list[Arrival]:
        return [arrival for arrival in self.arrivals if match(arrival.event)]

    async def wait_for(self, match: Match, count: int = 1, timeout_s: float = 30) -> list[Arrival]:
        """The first `count` matching arrivals; fails after `timeout_s` with what did arrive."""
        deadline = time.monotonic() + timeout_s
        while len(self.matching(match)) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [a.event.event_type for a in self.matching(match)]
                raise AssertionError(f"expected {count} matching events, got {len(seen)}: {seen}")
            await self._read(min(remaining, 0.5))
        return self.matching(match)[:count]

    async def settle(self, quiet_s: float = 1.5) -> None:
        """Read for `quiet_s` more, so a test can assert that nothing else arrived."""
        deadline = time.monotonic() + quiet_s
        while (remaining := deadline - time.monotonic()) > 0:
            await self._read(min(remaining, 0.5))


def for_aggregate(aggregate_id: Any) -> Match:
    return lambda event: str(event.aggregate_id) == str(aggregate_id)


async def gather_probes(bootstrap_servers: str, *topics: str) -> list[TopicProbe]:
    return list(await asyncio.gather(*(TopicProbe.from_now(bootstrap_servers, t) for t in topics)))


async def records_from_start(
    bootstrap_servers: str,
    topic: str,
    count: int,
    timeout_s: float = 30,
    *,
    linger_s: float = 0.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """At least the first `count` records of partition 0 of `topic` (a dead-letter topic, say),
    read from its beginning; with `linger_s`, and then whatever more came within that time."""
    # "earliest" as well as the seek: a new consumer's own reset (to "latest" by default) can land
    # after `seek_to_beginning` and win, and then nothing already there is read.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        found: list[ConsumerRecord[bytes, bytes]] = []
        deadline = time.monotonic() + timeout_s
        while len(found) < count:
            assert time.monotonic() < deadline, f"{len(found)} records on {topic}, expected {count}"
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found.extend(records)
        if linger_s:
            await asyncio.sleep(linger_s)
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found.extend(records)
        return found
    finally:
        await consumer.stop()
