"""What every fault test proves once the exchange has settled, whatever the fault was.

1. The event ids the writers committed (their outbox tables) are the event ids on their topics:
   nothing lost, nothing invented (a copy of an id already there is no new event).
2. For every consumer and every topic it reads, the ids on the topic are the ids it recorded in its
   inbox (applied, or received and dead-lettered; each of alerting's shards keeps its own inbox
   and positions of provider.events) together with the ids dead-lettered; a record
   that is not an event at all counts by its position (topic, partition, offset). It has read
   every partition to its end and has nothing left parked; a record that is no event was
   dead-lettered by every consumer of its topic.
3. The ledger's digest equals the digest of a rebuild from offset 0 (`nearhome ledger rebuild`).
4. No (referral, vacancy) pair was alerted twice: one AlertRaised event id per pair on
   alert.events, and one alert per pair in alerting's table.

`settle_and_check` waits for the exchange to settle (every outbox row sent, every consumer at the
end of every partition it reads, and the topics no longer growing), then checks all four and
returns what it saw, for the test's own assertions about its fault.
"""

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.structs import TopicPartition

from contracts.envelope import Envelope
from contracts.serialization import ContractError, from_bytes
from contracts.topics import ALERT_EVENTS, CATALOGUE, PROVIDER_EVENTS, REFERRAL_EVENTS, TopicSpec
from faults.fault_exchange import CONSUMES, PUBLISHES, Exchange
from services.ledger.rebuild import RebuildReport, rebuild
from services.ledger.settings import Settings as LedgerSettings

SETTLE_TIMEOUT_S = 120.0
# Alerting's shards: one per partition of referral.events (services/alerting/shards.py).
SHARDS = REFERRAL_EVENTS.partitions


def identity(topic: str, partition: int, offset: int, value: bytes) -> str:
    """An event's id; for a record that is no event, its position."""
    try:
        return str(from_bytes(value).event_id)
    except ContractError:
        return f"{topic}[{partition}]@{offset}"


@dataclass
class TopicContents:
    """Every record of one topic and of its dead-letter twin, from offset 0."""

    name: str
    records: list[ConsumerRecord[bytes, bytes]]
    dead_letters: list[ConsumerRecord[bytes, bytes]]

    def ids(self, since: dict[tuple[str, int], int] | None = None) -> list[str]:
        """The identity of every record (past the positions `since`, if given), in order per
        partition, copies repeated."""
        start = since or {}
        return [
            identity(self.name, r.partition, r.offset, r.value)
            for r in self.records
            if r.offset >= start.get((self.name, r.partition), 0)
        ]

    def events(self, since: dict[tuple[str, int], int] | None = None) -> list[Envelope[Any]]:
        """Every record that is an event (past the positions `since`, if given), copies
        included, in order per partition."""
        start = since or {}
        parsed = []
        for record in self.records:
            if record.offset < start.get((self.name, record.partition), 0):
                continue
            try:
                parsed.append(from_bytes(record.value))
            except ContractError:
                continue
        return parsed

    def event_ids(self) -> set[str]:
        return {str(event.event_id) for event in self.events()}

    def dead_lettered(self) -> Counter[str]:
        """How often each original was dead-lettered, by the identity of the record at the
        position its headers name."""
        found: Counter[str] = Counter()
        for letter in self.dead_letters:
            headers = {key: value.decode() for key, value in letter.headers}
            source = (
                headers["dlq-source-topic"],
                int(headers["dlq-source-partition"]),
                int(headers["dlq-source-offset"]),
            )
            found[identity(*source, letter.value)] += 1
        return found


@dataclass
class Settled:
    """What the exchange looked like once settled: the topics, and what the checks counted."""

    topics: dict[str, TopicContents]
    rebuild: RebuildReport
    alerts_raised: int
    inbox_sizes: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, spec: TopicSpec) -> TopicContents:
        return self.topics[spec.name]

    def raised_for(self, referral_ids: Iterable[str]) -> int:
        """How many (referral, vacancy) pairs of these referrals were alerted."""
        wanted = set(referral_ids)
        pairs = _raised_pairs(self.topics[ALERT_EVENTS.name].events())
        return sum(1 for referral, _ in pairs if referral in wanted)


async def end_offsets(exchange: Exchange) -> dict[tuple[str, int], int]:
    """The end of every non-empty partition of the exchange's topics, now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=exchange.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(exchange.topic(spec), p)
            for spec in CATALOGUE
            for p in range(spec.partitions)
        ]
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return {(tp.topic, tp.partition): offset for tp, offset in ends.items() if offset}


async def read_all(bootstrap: str, topic: str, partitions: int) -> list[ConsumerRecord[Any, Any]]:
    """Every record of `topic` from offset 0 to its end now, in order per partition."""
    # Earliest, not a seek: a new assignment's own reset (to the latest, by default) can land
    # after a seek and win.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(assigned)
        ends = await consumer.end_offsets(assigned)
        read = dict.fromkeys(assigned, 0)
        records: list[ConsumerRecord[Any, Any]] = []
        deadline = time.monotonic() + 30
        while any(read[tp] < ends[tp] for tp in assigned):
            assert time.monotonic() < deadline, f"could not read {topic} to {ends}: {read}"
            for tp, batch in (await consumer.getmany(timeout_ms=500)).items():
                records.extend(batch)
                read[tp] = batch[-1].offset + 1
        return [r for r in records if r.offset < ends[TopicPartition(topic, r.partition)]]
    finally:
        await consumer.stop()


async def _rows(connection: asyncpg.Connection, sql: str, *args: Any) -> list[asyncpg.Record]:
    return list(await connection.fetch(sql, *args))


async def _unsent(connection: asyncpg.Connection) -> int:
    total = 0
    for writer in PUBLISHES:
        total += await connection.fetchval(
            f"SELECT count(*) FROM {writer}.outbox WHERE published_at IS NULL"
        )
    return total


async def unsent(exchange: Exchange) -> int:
    """Events the writers committed and have not yet published."""
    async with exchange.database() as connection:
        return await _unsent(connection)


async def _behind(
    connection: asyncpg.Connection, exchange: Exchange, ends: dict[tuple[str, int], int]
) -> list[str]:
    """Which consumer is short of which partition's end."""
    short = []
    for consumer, specs in CONSUMES.items():
        # Alerting's shards each keep their own position in every partition of provider.events.
        stored = {
            (row["topic"], row["partition"]): (row["lowest"], row["readers"])
            for row in await _rows(
                connection,
                "SELECT topic, partition, min(next_offset) AS lowest, count(*) AS readers"
                f" FROM {consumer}.consumer_positions GROUP BY topic, partition",
            )
        }
        read = {exchange.topic(spec) for spec in specs}
        for (topic, partition), end in ends.items():
            at, readers = stored.get((topic, partition), (0, 0))
            wanted = readers_of(consumer, topic)
            if topic in read and (at < end or readers < wanted):
                short.append(f"{consumer} at {at}/{end} of {topic}[{partition}] ({readers} read)")
    return short


def readers_of(consumer: str, topic: str) -> int:
    """How many readers of `consumer` keep a position in each partition of `topic`: one, but
    alerting's shards each read every partition of provider.events."""
    return SHARDS if consumer == "alerting" and topic.endswith(PROVIDER_EVENTS.name) else 1


async def settle(exchange: Exchange, timeout_s: float = SETTLE_TIMEOUT_S) -> None:
    """Wait until every consumer has read every partition to its end, every outbox row is sent,
    and the topics have not grown meanwhile (so nothing is still on its way)."""
    deadline = time.monotonic() + timeout_s
    async with exchange.database() as connection:
        while True:
            ends = await end_offsets(exchange)
            behind = await _behind(connection, exchange, ends)
            unsent = await _unsent(connection)
            if not behind and not unsent and await end_offsets(exchange) == ends:
                return
            assert time.monotonic() < deadline, (
                f"not settled after {timeout_s:.0f}s: {unsent} outbox rows unsent; {behind}"
                + "".join(f"\n[{n}] {s.tail(8)}" for n, s in exchange.services.items())
            )
            await asyncio.sleep(0.3)


def _differences(what: str, left: set[str], right: set[str]) -> str:
    return (
        f"{what}: {len(left - right)} only left {sorted(left - right)[:5]}, "
        f"{len(right - left)} only right {sorted(right - left)[:5]}"
    )


async def settle_and_check(exchange: Exchange) -> Settled:
    """Settle the exchange, then check the four invariants; what was seen, for further checks."""
    await settle(exchange)
    topics = {
        spec.name: TopicContents(
            exchange.topic(spec),
            await read_all(exchange.bootstrap, exchange.topic(spec), spec.partitions),
            await read_all(exchange.bootstrap, exchange.topic(spec.dlq), spec.dlq.partitions),
        )
        for spec in CATALOGUE
    }
    async with exchange.database() as connection:
        # 1. The writers' committed ids are the ids on their topics.
        for writer, spec in PUBLISHES.items():
            committed = {
                str(row["event_id"])
                for row in await _rows(connection, f"SELECT event_id FROM {writer}.outbox")
            }
            on_topic = topics[spec.name].event_ids()
            assert committed == on_topic, _differences(
                f"{writer} outbox vs topic", committed, on_topic
            )

        # 2. Each consumer: applied (inbox) together with dead-lettered is what is on the topic.
        inbox_sizes = {}
        for consumer, specs in CONSUMES.items():
            for spec in specs:
                contents = topics[spec.name]
                dead = contents.dead_lettered()
                on_topic = set(contents.ids())
                # Each of alerting's shards keeps an inbox of its own of provider.events.
                sharded = readers_of(consumer, contents.name) > 1
                for shard in range(SHARDS) if sharded else (None,):
                    received = {
                        str(row["event_id"])
                        for row in await _rows(
                            connection,
                            f"SELECT event_id FROM {consumer}.inbox WHERE topic = $1"
                            + ("" if shard is None else f" AND shard = {shard}"),
                            contents.name,
                        )
                    }
                    inbox_sizes[f"{consumer}:{spec.name}"] = len(received)
                    accounted = received | set(dead)
                    assert accounted == on_topic, _differences(
                        f"{consumer}'s inbox (shard {shard}) and dead letters vs {spec.name}",
                        accounted,
                        on_topic,
                    )
                # A record that is no event has no id for an inbox: every reader dead-letters it.
                readers = sum(1 for read in CONSUMES.values() if spec in read)
                unread = [p for p in on_topic - contents.event_ids() if dead[p] < readers]
                assert unread == [], f"not dead-lettered by every reader of {spec.name}: {unread}"
            parked = await connection.fetchval(f"SELECT count(*) FROM {consumer}.parked_events")
            assert parked == 0, f"{consumer} still has {parked} events parked"

        # 4. No pair alerted twice: on the topic, and in alerting's own table.
        stored = await _rows(
            connection,
            "SELECT referral_id, vacancy_id, count(*) AS n FROM alerting.alerts"
            " GROUP BY referral_id, vacancy_id HAVING count(*) > 1",
        )
        assert stored == [], f"pairs with more than one alert: {stored}"
    raised = _raised_pairs(topics[ALERT_EVENTS.name].events())
    twice = [pair for pair, ids in raised.items() if len(ids) > 1]
    assert twice == [], f"(referral, vacancy) pairs alerted more than once: {twice}"

    # 3. The ledger equals a rebuild of it from offset 0.
    settings = LedgerSettings(
        database_url=exchange.database_url,
        kafka_bootstrap_servers=exchange.bootstrap,
        topic_prefix=exchange.prefix,
    )
    report = await rebuild(settings, progress=lambda _: None, wait_s=5)
    assert report.live_behind == 0, report
    assert report.equal, f"the ledger differs from its rebuild: {report}"
    assert report.live.counts == report.rebuilt.counts, report
    return Settled(topics, report, sum(len(ids) for ids in raised.values()), inbox_sizes)


def _raised_pairs(alert_events: Iterable[Envelope[Any]]) -> dict[tuple[str, str], set[str]]:
    """The distinct AlertRaised event ids of each (referral, vacancy) pair."""
    raised: dict[tuple[str, str], set[str]] = {}
    for event in alert_events:
        if event.event_type == "AlertRaised":
            pair = (str(event.payload.referral_id), str(event.payload.vacancy_id))
            raised.setdefault(pair, set()).add(str(event.event_id))
    return raised


def copies(contents: TopicContents) -> int:
    """How many records on the topic repeat an identity already there."""
    return sum(count - 1 for count in Counter(contents.ids()).values())
