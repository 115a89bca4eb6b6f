"""How fast the ledger applies events, against how fast a bare consumer can read them.

Run: .venv/bin/python bench/ledger/bench_ledger.py [--events 200000] [--max-records 2000]
     [--instances 2] [--profile ledger.prof]

It makes its own prefixed topics and a fresh database on the local broker and PostgreSQL
(`nearhome infra up`), fills `provider.events` and `referral.events` with a synthetic but valid
history, then measures (a) a bare aiokafka consumer reading both topics from offset 0 to the end,
(a2) the same consumer also validating each record against the contracts, as the ledger must
before it applies anything (what is left of the time a record may take at 20,000/s), and (b) the
real ledger (its app lifespan: FastStream subscribers, the exactly-once processor,
the projection's bulk SQL) from offset 0 until every record is processed. Both topics and the
database are dropped afterwards unless --keep.
"""

import argparse
import asyncio
import cProfile
import gc
import logging
import os
import pstats
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.envelope import Envelope
from contracts.serialization import from_bytes, to_bytes
from contracts.topics import PROVIDER_EVENTS, REFERRAL_EVENTS
from infra.local.scratch import scratch_database, scratch_topics
from services.ledger import store
from services.ledger.app import Settings, create_app
from services.ledger.domain import council_figures, fold
from services.platform.clock import utc_now
from services.platform.database import create_engine
from services.platform.migrations import prepare_schema
from services.platform.tables import connection_of
from tools.synthetic.history import SyntheticHistory, topic_of

# The target for the ledger from offset 0, on this machine.
TARGET_RATE = 20_000


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="events to produce")
    parser.add_argument("--max-records", type=int, default=2000, help="records per ledger batch")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic history")
    parser.add_argument("--keep", action="store_true", help="keep the topics and the database")
    parser.add_argument(
        "--no-verify", action="store_true", help="skip comparing the result with a pure fold"
    )
    parser.add_argument(
        "--instances",
        type=int,
        default=1,
        help="ledger instances: 1 runs the app in this process; more run that many"
        " `nearhome serve ledger` processes in one consumer group, as a deployment does",
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="profile the ledger's run (cProfile, slower) into FILE and print where its time went",
    )
    return parser.parse_args()


async def produce(bootstrap: str, records: list[tuple[str, bytes, bytes]]) -> float:
    """Send every record (in order per key); the seconds it took."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=512 * 1024,
    )
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for topic, key, value in records:
            pending.append(await producer.send(topic, value, key=key))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def raw_consume(bootstrap: str, prefix: str, *, validate: bool = False) -> tuple[int, float]:
    """A bare consumer (manual assignment, no group) reading both topics from 0 to the end; with
    `validate`, also parsing and checking each record against the contracts (`from_bytes`), as
    the ledger does before anything else."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(prefix + topic.name, p)
            for topic in (PROVIDER_EVENTS, REFERRAL_EVENTS)
            for p in range(topic.partitions)
        ]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        read = 0
        started = time.perf_counter()
        remaining = {tp for tp, end in ends.items() if end > 0}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=10_000)
            read += sum(len(records) for records in batches.values())
            if validate:
                for records in batches.values():
                    for record in records:
                        from_bytes(record.value)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return read, time.perf_counter() - started
    finally:
        await consumer.stop()


async def run_ledger(settings: Settings, total: int) -> tuple[float, float, int]:
    """The real ledger from offset 0 until it has processed `total` records.

    Returns the seconds from the lifespan's start (migrations, joining the consumer group), the
    seconds from its first commit, and the records processed since that first commit.
    """
    app = create_app(settings)
    started = time.perf_counter()
    async with app.router.lifespan_context(app):
        engine = create_engine(settings.database_url)
        try:
            first_commit: float | None = None
            done_at_first = 0
            last_report = started
            while True:
                async with connection_of(engine) as connection:
                    done = int(
                        await connection.fetchval(
                            "SELECT coalesce(sum(next_offset), 0) FROM ledger.consumer_positions"
                        )
                    )
                now = time.perf_counter()
                if first_commit is None and done:
                    first_commit, done_at_first = now, done
                if done >= total:
                    break
                if now - last_report >= 5:
                    print(f"  ledger: {done:,}/{total:,} records processed")
                    last_report = now
                await asyncio.sleep(0.05)
        finally:
            await engine.dispose()
    finished = time.perf_counter()
    assert first_commit is not None
    return finished - started, finished - first_commit, total - done_at_first


async def processed(engine: AsyncEngine) -> int:
    """Records the ledger is past: the sum of its stored positions."""
    async with connection_of(engine) as connection:
        return int(
            await connection.fetchval(
                "SELECT coalesce(sum(next_offset), 0) FROM ledger.consumer_positions"
            )
        )


def serve_ledger(settings: Settings) -> subprocess.Popen[bytes]:
    """`nearhome serve ledger` on a free port, on the benchmark's database, topics and group."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "NEARHOME_TOPIC_PREFIX": settings.topic_prefix,
        "LEDGER_CONSUMER_GROUP": settings.consumer_group,
        "LEDGER_MAX_RECORDS": str(settings.max_records),
        "LEDGER_HISTORY_INTERVAL": str(settings.history_interval),
        "LEDGER_PORT": str(port),
        "NEARHOME_LOG_LEVEL": "WARNING",
    }
    command = [str(Path(sys.executable).with_name("nearhome")), "serve", "ledger"]
    return subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL)


async def run_instances(settings: Settings, total: int, instances: int) -> tuple[float, float, int]:
    """`run_ledger`, with the ledger as `instances` processes sharing the partitions."""
    await prepare_schema("ledger", settings.database_url)  # once, before they all start
    engine = create_engine(settings.database_url)
    started = time.perf_counter()
    children = [serve_ledger(settings) for _ in range(instances)]
    try:
        first_commit: float | None = None
        done_at_first = 0
        last_report = started
        while (done := await processed(engine)) < total:
            now = time.perf_counter()
            if first_commit is None and done:
                first_commit, done_at_first = now, done
            if now - last_report >= 5:
                print(f"  ledger: {done:,}/{total:,} records processed")
                last_report = now
            if any(child.poll() is not None for child in children):
                raise RuntimeError("a ledger instance exited")
            await asyncio.sleep(0.05)
        finished = time.perf_counter()
    finally:
        for child in children:
            child.send_signal(signal.SIGINT)
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
        await engine.dispose()
    assert first_commit is not None
    return finished - started, finished - first_commit, total - done_at_first


async def verify(settings: Settings, events: list[Envelope[Any]]) -> bool:
    now = utc_now()
    stale_after = timedelta(hours=72)
    expected = council_figures(fold(events), now, stale_after)
    engine = create_engine(settings.database_url)
    try:
        async with connection_of(engine) as connection:
            actual = await store.council_capacity(
                connection, store.SCHEMA, now=now, stale_after=stale_after
            )
            applied = await store.events_applied(connection, store.SCHEMA)
    finally:
        await engine.dispose()
    return actual == expected and applied == len(events)


async def main() -> None:
    arguments = _arguments()
    logging.basicConfig(level=logging.WARNING)
    base = Settings()
    print(f"generating {arguments.events:,} events (seed {arguments.seed}) …")
    started = time.perf_counter()
    events = list(SyntheticHistory(arguments.seed).events(arguments.events))
    print(f"  generated in {time.perf_counter() - started:.1f}s")
    async with (
        scratch_topics(
            base.kafka_bootstrap_servers, f"bench-{uuid4().hex[:8]}.", keep=arguments.keep
        ) as prefix,
        scratch_database(
            base.database_url, f"nearhome_bench_{uuid4().hex[:8]}", keep=arguments.keep
        ) as database_url,
    ):
        records = [(topic_of(e, prefix), e.key, to_bytes(e)) for e in events]
        size = sum(len(value) for _, _, value in records) / len(records)
        seconds = await produce(base.kafka_bootstrap_servers, records)
        print(
            f"produced {len(events):,} records (mean {size:.0f} bytes) in {seconds:.1f}s"
            f" ({len(events) / seconds:,.0f}/s) to {prefix}*"
        )

        del records
        # The generated history stays in memory for the check at the end; keep the collector
        # from walking it over and over while the ledger runs (a ledger process never holds it).
        gc.collect()
        gc.freeze()

        read, raw_seconds = await raw_consume(base.kafka_bootstrap_servers, prefix)
        raw_rate = read / raw_seconds
        print(
            f"(a) bare aiokafka consumer: {read:,} records in {raw_seconds:.2f}s"
            f" = {raw_rate:,.0f}/s"
        )

        checked, checked_seconds = await raw_consume(
            base.kafka_bootstrap_servers, prefix, validate=True
        )
        reading_us = raw_seconds / read * 1e6
        validating_us = (checked_seconds - raw_seconds) / read * 1e6
        print(
            f"(a2) the same, validating each record (`from_bytes`): {checked:,} records in"
            f" {checked_seconds:.2f}s = {checked / checked_seconds:,.0f}/s; per record"
            f" {reading_us:.1f} µs reading and {validating_us:.1f} µs validating, of the"
            f" {1e6 / TARGET_RATE:.0f} µs a record may take at {TARGET_RATE:,}/s"
        )

        settings = Settings(
            database_url=database_url,
            topic_prefix=prefix,
            consumer_group=f"bench-ledger-{uuid4().hex[:8]}",
            max_records=arguments.max_records,
            history_interval=3600.0,
        )
        profiler = cProfile.Profile() if arguments.profile else None
        if profiler is not None:
            profiler.enable()
        if arguments.instances > 1:
            total, steady, counted = await run_instances(settings, len(events), arguments.instances)
        else:
            total, steady, counted = await run_ledger(settings, len(events))
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(arguments.profile)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        ledger_rate = counted / steady
        print(
            f"(b) ledger (max_records {arguments.max_records}, {arguments.instances} instance(s)):"
            f" {len(events):,} records applied"
            f" in {total:.1f}s from start-up ({len(events) / total:,.0f}/s);"
            f" {ledger_rate:,.0f}/s from its first commit"
        )
        print(f"ratio (b)/(a): {ledger_rate / raw_rate:.0%}")
        if not arguments.no_verify:
            same = await verify(settings, events)
            print(f"capacity equals a pure fold of the events: {same}")


if __name__ == "__main__":
    # A local run: the ledger's app trusts development tokens (none are sent here).
    os.environ.setdefault("NEARHOME_ENV", "development")
    # On the event loop the services run on (`nearhome serve`): the one-instance run is the
    # ledger's app in this process, and the bare consumer is measured on the same loop.
    uvloop.run(main())
