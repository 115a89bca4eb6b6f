"""The ledger service run in-process (or as a process) for a test, with its own topics and database.

Each ledger joins its own consumer group, so tests running at the same time never rebalance each
other; events are published straight to the test's prefixed topics with a plain producer.
"""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import common
import httpx
from aiokafka import AIOKafkaProducer, ConsumerRecord
from common import Metrics, free_port, in_process_on, metrics_of, settings_for_test
from fastapi import FastAPI
from kafka_probe import records_from_start
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.envelope import Envelope
from contracts.serialization import to_bytes
from contracts.topics import DLQ_SUFFIX, PROVIDER_EVENTS
from services.ledger import store
from services.ledger.app import Settings, create_app
from services.ledger.domain import CouncilCapacity
from services.platform.auth import Role, issue_token, principal_for
from services.platform.tables import connection_of
from tools.synthetic.history import topic_of

SECRET = "ledger-test-secret-of-at-least-32-bytes"
BOOTSTRAP = Settings().kafka_bootstrap_servers
REPO = Path(__file__).resolve().parents[2]

WESTMORLAND_AND_FURNESS = "E06000064"
CUMBERLAND = "E06000063"
SEFTON = "E08000014"
LEEDS = "E08000035"
NORTH_WEST = "E12000002"
PLACEMENTS_NORTH_WEST = "placements-north-west"

# The figures of a council that both its capacity answer and its dashboard row show.
SUMMARY_FIGURES = (
    "registered_places",
    "occupied",
    "vacant",
    "offered",
    "stale_vacancies",
    "open_referrals",
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def admin_headers() -> dict[str, str]:
    return bearer(issue_token(principal_for(Role.ADMIN), SECRET))


def authority_headers(authority_code: str = SEFTON) -> dict[str, str]:
    return bearer(issue_token(principal_for(Role.AUTHORITY, authority_code=authority_code), SECRET))


def collaborative_headers(*footprints: str) -> dict[str, str]:
    return bearer(issue_token(principal_for(Role.COLLABORATIVE, footprints=footprints), SECRET))


def provider_headers(provider_id: str = "acme-care") -> dict[str, str]:
    return bearer(issue_token(principal_for(Role.PROVIDER, provider_id=provider_id), SECRET))


class TestClock:
    """The ledger's clock: real time, or a fixed instant a test chooses."""

    def __init__(self) -> None:
        self.fixed: datetime | None = None

    def __call__(self) -> datetime:
        return self.fixed or datetime.now(UTC)


async def until(
    condition: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 60, every_s: float = 0.1
) -> None:
    """Poll `condition` until it holds; fail after `timeout_s` (a minute, for the ledger)."""
    await common.until(condition, what, timeout_s, every_s)


@dataclass
class LedgerDatabase:
    """Looks at a ledger's schema directly (the consumer's tables and the record state)."""

    engine: AsyncEngine
    schema: str = store.SCHEMA

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        async with connection_of(self.engine) as connection:
            return [dict(row) for row in await connection.fetch(sql, *args)]

    async def migrated(self) -> bool:
        """Whether the ledger's schema exists yet (a process creates it as it starts)."""
        rows = await self.fetch(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = $1"
            " AND table_name = 'aggregate_versions'",
            self.schema,
        )
        return bool(rows)

    async def counts(self) -> dict[str, int]:
        async with connection_of(self.engine) as connection:
            return await store.row_counts(connection, self.schema)

    async def applied(self) -> int:
        async with connection_of(self.engine) as connection:
            return await store.events_applied(connection, self.schema)

    async def processed(self) -> int:
        """Records the consumer is past (whatever became of them): the sum of stored positions."""
        rows = await self.fetch(
            f"SELECT coalesce(sum(next_offset), 0) AS n FROM {self.schema}.consumer_positions"
        )
        return int(rows[0]["n"])

    async def council_capacity(self, now: datetime, stale_after: timedelta) -> CouncilCapacity:
        async with connection_of(self.engine) as connection:
            return await store.council_capacity(
                connection, self.schema, now=now, stale_after=stale_after
            )

    async def until_processed(self, records: int, timeout_s: float = 60) -> None:
        async def done() -> bool:
            return await self.processed() >= records

        await until(done, f"the ledger to process {records} records", timeout_s)

    async def until_applied(self, events: int, timeout_s: float = 60) -> None:
        async def done() -> bool:
            return await self.applied() >= events

        await until(done, f"the ledger to apply {events} events", timeout_s)


@dataclass
class RunningLedger:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    database: LedgerDatabase
    clock: TestClock

    async def get(self, path: str, headers: dict[str, str] | None = None, **params: str) -> Any:
        headers = headers or admin_headers()
        response = await self.client.get(path, headers=headers, params=params or None)
        assert response.status_code == 200, response.text
        return response.json()

    async def capacity(self, footprint_id: str) -> dict[str, Any]:
        return await self.get(f"/v1/capacity/{footprint_id}")

    async def metrics(self) -> Metrics:
        return await metrics_of(self.client)

    async def consumer_events(self, outcome: str) -> float:
        metrics = await self.metrics()
        return metrics.get(("nearhome_consumer_events_total", (("outcome", outcome),)), 0.0)


def ledger_settings(database_url: str, topic_prefix: str, **settings: Any) -> Settings:
    return settings_for_test(
        Settings,
        "ledger",
        database_url,
        SECRET,
        **{"topic_prefix": topic_prefix, "history_interval": 3600.0, **settings},
    )


@contextlib.asynccontextmanager
async def running_ledger(
    database_url: str, topic_prefix: str, **settings: Any
) -> AsyncIterator[RunningLedger]:
    """The ledger on `database_url`, reading `topic_prefix`'s topics, its lifespan running."""
    configured = ledger_settings(database_url, topic_prefix, **settings)
    clock = TestClock()
    app = create_app(configured, clock=clock)
    async with in_process_on(app, "ledger", database_url) as (client, engine):
        yield RunningLedger(app, client, configured, LedgerDatabase(engine), clock)


# --- publishing and reading topics -------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes | None
    value: bytes | None  # None: a tombstone
    headers: tuple[tuple[str, bytes], ...] = ()


def record_of(event: Envelope[Any], topic_prefix: str) -> Record:
    return Record(topic_of(event, topic_prefix), event.key, to_bytes(event))


@dataclass
class Published:
    """Where each record landed: (topic, partition, offset), in publishing order."""

    positions: list[tuple[str, int, int]] = field(default_factory=list)


async def publish(records: Iterable[Record]) -> Published:
    """Produce `records` in order (per key) and wait until the broker has them all."""
    producer = AIOKafkaProducer(
        bootstrap_servers=BOOTSTRAP, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        futures = [
            await producer.send(r.topic, r.value, key=r.key, headers=list(r.headers))
            for r in records
        ]
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return Published([(m.topic, m.partition, m.offset) for m in metadata])


async def publish_events(events: Sequence[Envelope[Any]], topic_prefix: str) -> Published:
    return await publish(record_of(event, topic_prefix) for event in events)


async def dead_letters(
    topic_prefix: str, count: int, timeout_s: float = 30
) -> list[ConsumerRecord[bytes, bytes]]:
    """The first `count` records of `provider.events.dlq`, read from its beginning, and any more
    that come within half a second."""
    topic = topic_prefix + PROVIDER_EVENTS.name + DLQ_SUFFIX
    return await records_from_start(BOOTSTRAP, topic, count, timeout_s, linger_s=0.5)


# --- the ledger as a process ------------------------------------------------------------------


def serve(name: str, environment: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`nearhome serve <name>` in a child process, its output appended to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(Path(sys.executable).with_name("nearhome")), "serve", name],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )


def kill_process(process: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL: no shutdown, no last commit."""
    assert process is not None
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """Terminate a still-running child, killing it if it does not stop within 15 s."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass
class ServedProcess:
    """`nearhome serve <name>` in a child process, configured through its environment, its output
    in `log`."""

    name: str
    environment: dict[str, str]
    log: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = serve(self.name, self.environment, self.log)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last commit; whatever was in flight is simply gone."""
        kill_process(self.process)

    def stop(self) -> None:
        stop_process(self.process)

    async def until_answering(self, path: str, timeout_s: float = 60) -> None:
        """Wait until GET `path` answers 200; fail at once if the process has exited."""
        async with httpx.AsyncClient(base_url=self.url) as client:

            async def answers() -> bool:
                assert self.process is not None
                exited = f"{self.name} exited:\n{self.log.read_text(errors='replace')[-4000:]}"
                assert self.process.poll() is None, exited
                with contextlib.suppress(httpx.HTTPError):
                    return (await client.get(path)).status_code == 200
                return False

            await until(answers, f"{self.name} to answer {path}", timeout_s, every_s=0.2)


def served_process(
    name: str,
    database_url: str,
    topic_prefix: str,
    log: Path,
    *,
    secret: str = SECRET,
    **variables: str,
) -> ServedProcess:
    """`nearhome serve <name>` (not started yet) on a free port, on `database_url` and the topics
    under `topic_prefix`, reading in a consumer group of its own; `variables` added to its
    environment."""
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "NEARHOME_TOPIC_PREFIX": topic_prefix,
        f"{name.upper()}_PORT": str(port),
        "NEARHOME_JWT_SECRET": secret,
        "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
        f"{name.upper()}_CONSUMER_GROUP": f"{name}-test-{uuid4().hex[:10]}",
        **variables,
    }
    return ServedProcess(name, environment, log, port)


def ledger_process(
    database_url: str, topic_prefix: str, log: Path, **variables: str
) -> ServedProcess:
    """The ledger as a process, writing no history snapshots during a test (unless told to)."""
    return served_process(
        "ledger",
        database_url,
        topic_prefix,
        log,
        **{"LEDGER_HISTORY_INTERVAL": "3600", **variables},
    )
