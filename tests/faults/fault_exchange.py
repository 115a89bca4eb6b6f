"""The exchange under fault: each service a real `nearhome serve <name>` process (so it can be
SIGKILLed, by the test or by a failpoint), on the fault suite's own broker and database, in a
fresh database and topic namespace for each test."""

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from uuid import uuid4

import asyncpg
from aiokafka import AIOKafkaProducer
from serve_processes import NEARHOME, ExitedWhileStartingError, ServeProcess

from contracts.topics import ALERT_EVENTS, PROVIDER_EVENTS, REFERRAL_EVENTS, TopicSpec
from faults.fault_infra import FaultInfra
from infra.local.scratch import scratch_topics

__all__ = [
    "CONSUMES",
    "NEARHOME",  # the secured suite starts it too
    "PUBLISHES",
    "SECRET",
    "SERVICES",
    "Exchange",
    "ExitedWhileStartingError",
    "ServiceProcess",
    "exchange_on",
]

SECRET = "fault-suite-secret-of-at-least-32-bytes"
SERVICES = ("provider", "authority", "ledger", "alerting")
# What each service publishes through its outbox, and what its exactly-once consumers read.
PUBLISHES: Mapping[str, TopicSpec] = {
    "provider": PROVIDER_EVENTS,
    "authority": REFERRAL_EVENTS,
    "alerting": ALERT_EVENTS,
}
CONSUMES: Mapping[str, tuple[TopicSpec, ...]] = {
    "provider": (REFERRAL_EVENTS,),
    "authority": (PROVIDER_EVENTS,),
    "ledger": (PROVIDER_EVENTS, REFERRAL_EVENTS),
    "alerting": (PROVIDER_EVENTS, REFERRAL_EVENTS),
}


@dataclass
class ServiceProcess(ServeProcess):
    """One `nearhome serve <name>`, its output in `log`, and how it ended each time it did by
    itself."""

    exits: list[int] = field(default_factory=list)

    async def start(self, **extra_env: str) -> None:
        """Start the process (with `extra_env`, e.g. armed failpoints) and wait until /ready."""
        await self.spawn(
            {**os.environ, **self.env, **extra_env},
            note=f"started with {extra_env or 'no extra settings'}",
        )
        await self.until_ready()

    async def exited(self, timeout_s: float = 60) -> int:
        """Wait for the process to end by itself (a failpoint, a crash); its return code."""
        assert self.process is not None
        try:
            async with asyncio.timeout(None if timeout_s == float("inf") else timeout_s):
                code = await self.process.wait()
        except TimeoutError:
            raise AssertionError(f"{self.name} is still running:\n{self.tail()}") from None
        self.exits.append(code)
        return code


@dataclass
class Exchange:
    """The four services, their database and the prefix naming their topics (one for the session:
    each test adds its own writes, and the invariants hold over all of them)."""

    infra: FaultInfra
    database_url: str
    prefix: str
    services: dict[str, ServiceProcess]
    supervisors: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    armed: dict[str, bool] = field(default_factory=dict)
    plans: dict[str, list[str]] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return self.infra.broker.bootstrap

    def topic(self, spec: TopicSpec) -> str:
        return self.prefix + spec.name

    def __getitem__(self, name: str) -> ServiceProcess:
        return self.services[name]

    @contextlib.asynccontextmanager
    async def database(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection to the services' database (every service's schema), closed after."""
        connection = await asyncpg.connect(self.database_url.replace("+asyncpg", ""))
        try:
            yield connection
        finally:
            await connection.close()

    @contextlib.asynccontextmanager
    async def producer(self) -> AsyncIterator[AIOKafkaProducer]:
        """A plain producer on the exchange's broker, for records no writer would send."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        await producer.start()
        try:
            yield producer
        finally:
            await producer.stop()

    async def start(
        self,
        names: Iterable[str] = SERVICES,
        failpoints: Mapping[str, str | Sequence[str]] | None = None,
    ) -> None:
        """(Re)start `names` together, each armed with its `failpoints` if any (a running process
        is SIGKILLed first), and wait until all are ready. From then on any that exits is started
        again, as `nearhome run` does: armed with the next of its `failpoints` if it was given a
        sequence of them (one per incarnation), otherwise unarmed, so each armed point fires once.
        """
        plans = {
            name: [spec] if isinstance(spec, str) else list(spec)
            for name, spec in (failpoints or {}).items()
        }
        names = list(names)
        for name in names:
            if (supervisor := self.supervisors.pop(name, None)) is not None:
                supervisor.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await supervisor
        await asyncio.gather(*(self[name].kill() for name in names))
        for name in names:
            self.plans[name] = plans.get(name, [])
        await asyncio.gather(*(self._start_next(name) for name in names))
        for name in names:
            self.supervisors[name] = asyncio.create_task(self._restart(name))

    async def _start_next(self, name: str) -> None:
        """Start `name` armed with the next failpoints of its plan, if any are left."""
        plan = self.plans.get(name, [])
        spec = plan.pop(0) if plan else None
        self.armed[name] = spec is not None
        await self[name].start(**({"NEARHOME_FAILPOINTS": spec} if spec else {}))

    async def _restart(self, name: str) -> None:
        while True:
            await self[name].exited(timeout_s=float("inf"))
            with contextlib.suppress(ExitedWhileStartingError):
                await self._start_next(name)

    async def disarm(self) -> None:
        """Start again, unarmed, any service still armed (or with failpoints left for a next
        incarnation); forget how processes ended."""
        await self.start(
            [name for name in SERVICES if self.armed.get(name) or self.plans.get(name)]
        )
        for service in self.services.values():
            service.exits.clear()

    async def stop(self) -> None:
        """Stop supervising, and SIGKILL every process."""
        for supervisor in self.supervisors.values():
            supervisor.cancel()
        await asyncio.gather(*self.supervisors.values(), return_exceptions=True)
        await asyncio.gather(*(service.kill() for service in self.services.values()))

    def exits(self) -> dict[str, list[int]]:
        """How each service's processes ended by themselves (-9: SIGKILL) since `disarm`."""
        return {name: service.exits for name, service in self.services.items() if service.exits}


def _environment(infra: FaultInfra, database_url: str, prefix: str) -> dict[str, str]:
    """What every service of the test is started with."""
    return {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": infra.broker.bootstrap,
        "NEARHOME_TOPIC_PREFIX": prefix,
        "NEARHOME_JWT_SECRET": SECRET,
        # Development: failpoints are honoured (and never in production).
        "NEARHOME_ENV": "development",
        "NEARHOME_RATE_LIMIT_PER_MINUTE": "0",
        # Back quickly once the broker or database returns.
        "RELAY_RETRY_INTERVAL": "0.3",
        "BROKER_RETRY_INTERVAL": "0.5",
        "KAFKA_REQUEST_TIMEOUT_MS": "3000",
        # Small batches, so a stream of tens of events is many batches (and commits), however
        # late a consumer joins: a failpoint armed for a consumer's 2nd or 3rd batch is reached
        # even when every event was waiting for it in one fetch.
        "LEDGER_MAX_RECORDS": "5",
        "ALERTING_MAX_RECORDS": "5",
        "MAX_RECORDS": "2",  # the provider's and the authority's
        **{f"{name.upper()}_CONSUMER_GROUP": f"{name}-{prefix}" for name in SERVICES},
    }


@contextlib.asynccontextmanager
async def exchange_on(infra: FaultInfra, logs: Path) -> AsyncIterator[Exchange]:
    """A fresh database and topic namespace on `infra`, and the four services' processes, started;
    every process killed afterwards."""
    prefix = f"faults-{uuid4().hex[:8]}."
    database = f"nearhome_faults_{uuid4().hex[:8]}"
    # Both stay until the session's broker and database are thrown away.
    admin = await asyncpg.connect(infra.database.url.replace("+asyncpg", ""))
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    url = infra.database.url.rsplit("/", 1)[0] + f"/{database}"
    async with scratch_topics(infra.broker.bootstrap, prefix, keep=True):
        env = _environment(infra, url, prefix)
        services = {
            name: ServiceProcess.on_free_port(name, env, logs / f"{name}.log") for name in SERVICES
        }
        exchange = Exchange(infra, url, prefix, services)
        try:
            await exchange.start()
            yield exchange
        finally:
            await exchange.stop()
