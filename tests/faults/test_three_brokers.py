"""A replicated cluster loses a broker mid-stream: no acknowledged write is lost or doubled.

The test runs a three-broker KRaft cluster of its own (`infra.local.cluster`, as
`nearhome infra up --brokers 3` does, but in a temporary folder and on free ports: the shared
broker on 9092 and the shared PostgreSQL are left alone), the provider and the ledger as real
`nearhome serve` processes on it and on a fresh database, and providers posting vacancies over
HTTP. Midway it SIGKILLs the broker leading the most provider.events partitions, and keeps posting.

Then every write the provider acknowledged (HTTP 2xx) is in the ledger exactly once: its vacancies
are the acknowledged ones with their beds, its inbox holds each event the provider's outbox
committed once, and its capacity over HTTP offers the acknowledged beds, no more. The two
surviving brokers keep serving: they lead every partition, in sync with each other (two, the
topics' min.insync.replicas), and the writes after the kill reached the ledger through them.
"""

import asyncio
import contextlib
import os
import random
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from builders import SETTING_DETAILS
from serve_processes import ServeProcess

from contracts.serialization import ContractError, from_bytes
from contracts.topics import PROVIDER_EVENTS, all_topics
from faults.invariants import read_all
from infra.local import cluster, kafka
from infra.local.state import state_layout
from infra.local.topics import declare_topics
from services.platform.auth import Principal, Role, issue_token, principal_for
from tools.synthetic.figures import WESTMORLAND_AND_FURNESS

pytestmark = [pytest.mark.faults, pytest.mark.postgres]

SECRET = "three-brokers-secret-of-at-least-32-bytes"
SETTINGS = 6
PLACES = 40
WRITERS = 3
POSTS = 90  # at least, by the writers together
KILL_AFTER = 30  # acknowledged posts before a broker is killed
# Each writer goes on until it has posted this many once the survivors lead every partition...
POSTS_AFTER_FAILOVER = 5
# ... but never more than this many in all (1.5 beds each on average: within its homes' places).
MOST_POSTS_PER_WRITER = 60
PACE_S = 0.1  # between one writer's posts: they go on through the failover (a few seconds)
SETTLE_TIMEOUT_S = 60.0
# Below the kernel's ephemeral ports (32768 up, by default): no outgoing connection takes one
# between our check and the broker's bind.
PORT_RANGE = (20_000, 32_000)


def _free_port_block(count: int) -> int:
    """The first of `count` consecutive free ports on 127.0.0.1 (an even one, as 9092 is)."""
    for _ in range(200):
        base = random.randrange(*PORT_RANGE, 2)
        with contextlib.ExitStack() as held:
            try:
                for port in range(base, base + count):
                    probe = held.enter_context(socket.socket())
                    probe.bind((cluster.HOST, port))
            except OSError:
                continue
            return base
    raise RuntimeError("no block of free ports found")


def _bearer(principal: Principal) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(principal, SECRET)}"}


@dataclass
class Figures:
    """What the test measured, printed at the end (and recorded in the JUnit report)."""

    seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def mark(self, what: str) -> None:
        self.seconds[what] = round(time.monotonic() - self.started, 1)

    def report(self) -> str:
        return ", ".join(
            [f"{what} at {s} s" for what, s in self.seconds.items()]
            + [f"{what}: {n}" for what, n in self.counts.items()]
        )


@contextlib.asynccontextmanager
async def three_brokers(folder: Path, figures: Figures) -> AsyncIterator[cluster.ClusterPlan]:
    """A cluster of three on free ports in `folder`, the catalogue's topics declared on it; every
    node killed afterwards, however the test ended."""
    layout = state_layout()
    await kafka.ensure_kafka_jars(layout, print)  # already there: `nearhome infra up` ran
    plan = cluster.ClusterPlan(
        folder, layout.kafka_libs, 3, base_port=_free_port_block(3 * cluster.PORTS_PER_NODE)
    )
    try:
        await cluster.start_cluster(plan, print)
        figures.mark("cluster up")
        await declare_topics(plan.bootstrap, all_topics(), print, replication=plan.replication)
        figures.mark("topics declared")
        yield plan
    finally:
        for node_id in cluster.running_nodes(plan):
            await cluster.kill_node(plan, node_id)


@contextlib.asynccontextmanager
async def services(
    bootstrap: str, database_url: str, logs: Path
) -> AsyncIterator[Mapping[str, ServeProcess]]:
    """The provider and the ledger as `nearhome serve` processes on the cluster (reached first at
    `bootstrap`), ready; killed afterwards."""
    group = uuid4().hex[:8]
    env = {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "NEARHOME_TOPIC_PREFIX": "",
        "NEARHOME_JWT_SECRET": SECRET,
        "NEARHOME_ENV": "development",
        "NEARHOME_RATE_LIMIT_PER_MINUTE": "0",
        "RELAY_RETRY_INTERVAL": "0.3",
        "BROKER_RETRY_INTERVAL": "0.5",
        "KAFKA_REQUEST_TIMEOUT_MS": "3000",
        "PROVIDER_CONSUMER_GROUP": f"provider-{group}",
        "LEDGER_CONSUMER_GROUP": f"ledger-{group}",
    }
    running = {
        name: ServeProcess.on_free_port(name, env, logs / f"{name}.log")
        for name in ("provider", "ledger")
    }
    try:
        for process in running.values():
            await process.spawn({**os.environ, **process.env})
        await asyncio.gather(*(process.until_ready() for process in running.values()))
        yield running
    finally:
        await asyncio.gather(*(process.kill() for process in running.values()))


@dataclass
class Providers:
    """Writers posting vacancies to the provider, and what it acknowledged."""

    provider: ServeProcess
    provider_id: str = field(default_factory=lambda: f"brokers-{uuid4().hex[:8]}")
    settings: list[str] = field(default_factory=list)
    acknowledged: dict[str, int] = field(default_factory=dict)  # vacancy id to beds
    refused: Counter[str] = field(default_factory=Counter)
    after_kill: int = 0
    after_failover: int = 0
    killed: asyncio.Event = field(default_factory=asyncio.Event)
    failed_over: asyncio.Event = field(default_factory=asyncio.Event)

    def client(self) -> httpx.AsyncClient:
        headers = _bearer(principal_for(Role.PROVIDER, provider_id=self.provider_id))
        return httpx.AsyncClient(
            base_url=self.provider.url, headers=headers, timeout=15, trust_env=False
        )

    async def register_settings(self) -> None:
        async with self.client() as client:
            for n in range(SETTINGS):
                body = {
                    **SETTING_DETAILS,
                    "registered_places": PLACES,
                    "name": f"Replicated House {n}",
                    "ofsted_urn": f"SC8{n:05d}",
                    "referrals_email": "referrals@brokers.example",
                    "referrals_phone": "01539 000 000",
                    "description": "A home registered by the three-broker test.",
                }
                answer = await client.post(
                    "/v1/settings", json=body, headers={"Idempotency-Key": uuid4().hex}
                )
                assert answer.is_success, answer.text
                self.settings.append(answer.json()["setting_id"])

    async def post(self, writer: int) -> None:
        """Post vacancies of 1 or 2 beds to this writer's settings, once each (an answer other
        than 2xx, or none, is counted as refused, not retried): its share of `POSTS`, and on
        until `POSTS_AFTER_FAILOVER` were acknowledged after the failover."""
        mine = self.settings[writer::WRITERS]
        after_failover = 0
        async with self.client() as client:
            for n in range(MOST_POSTS_PER_WRITER):
                if n >= POSTS // WRITERS and after_failover >= POSTS_AFTER_FAILOVER:
                    return
                beds = 1 + (n + writer) % 2
                setting_id = mine[n % len(mine)]
                body = {"setting_id": setting_id, "beds": beds, "available_from": "2027-01-04"}
                await asyncio.sleep(PACE_S)
                try:
                    answer = await client.post(
                        "/v1/vacancies", json=body, headers={"Idempotency-Key": uuid4().hex}
                    )
                except httpx.TransportError as error:
                    self.refused[type(error).__name__] += 1
                    continue
                if not answer.is_success:
                    self.refused[str(answer.status_code)] += 1
                    continue
                self.acknowledged[answer.json()["vacancy_id"]] = beds
                if self.killed.is_set():
                    self.after_kill += 1
                if self.failed_over.is_set():
                    self.after_failover += 1
                    after_failover += 1


async def _admin(plan: cluster.ClusterPlan) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=plan.bootstrap, request_timeout_ms=10_000)
    await admin.start()
    return admin


async def _partitions(plan: cluster.ClusterPlan) -> list[Mapping[str, Any]]:
    """provider.events' partitions: leader, replicas, in-sync replicas."""
    admin = await _admin(plan)
    try:
        (topic,) = await admin.describe_topics([PROVIDER_EVENTS.name])
    finally:
        await admin.close()
    partitions: list[Mapping[str, Any]] = topic["partitions"]
    return partitions


async def _led_partitions(plan: cluster.ClusterPlan) -> list[Mapping[str, Any]]:
    """provider.events' partitions once every one has a leader: a node learns of a new topic
    from the metadata log a moment after it is created."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        partitions = await _partitions(plan)
        led = [p for p in partitions if p["leader"] >= 0]
        if len(led) == PROVIDER_EVENTS.partitions or time.monotonic() > deadline:
            return partitions
        await asyncio.sleep(0.2)


async def _min_insync(plan: cluster.ClusterPlan) -> str:
    admin = await _admin(plan)
    try:
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, PROVIDER_EVENTS.name)]
        )
    finally:
        await admin.close()
    return next(
        str(config["config_value"])
        for response in described
        for resource in response.to_object()["resources"]
        for config in resource["config_entries"]
        if config["config_names"] == "min.insync.replicas"
    )


async def _events_on_topic(plan: cluster.ClusterPlan) -> Counter[str]:
    """How often each event id is on provider.events (a copy is a resend, not a new event)."""
    found: Counter[str] = Counter()
    for record in await read_all(plan.bootstrap, PROVIDER_EVENTS.name, PROVIDER_EVENTS.partitions):
        with contextlib.suppress(ContractError):
            found[str(from_bytes(record.value).event_id)] += 1
    return found


async def _ledger_vacancies(connection: asyncpg.Connection) -> dict[str, int]:
    rows = await connection.fetch("SELECT vacancy_id, beds FROM ledger.vacancies")
    return {str(row["vacancy_id"]): row["beds"] for row in rows}


async def _settle(connection: asyncpg.Connection) -> None:
    """Wait until every event the provider committed is sent and in the ledger's inbox (or the
    time is up: the assertions then say what is missing)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        behind = await connection.fetchval(
            "SELECT count(*) FROM provider.outbox o WHERE o.published_at IS NULL OR NOT EXISTS"
            " (SELECT 1 FROM ledger.inbox i WHERE i.event_id = o.event_id)"
        )
        if behind == 0:
            return
        await asyncio.sleep(0.3)


@dataclass
class Outcome:
    """What the ledger, the topic and the cluster hold once the exchange has settled."""

    in_ledger: dict[str, int]  # vacancy id to beds
    committed: set[str]  # event ids in the provider's outbox
    applied: Counter[str]  # event ids in the ledger's inbox
    offered: int  # the ledger's capacity over HTTP: beds offered
    on_topic: Counter[str]  # event ids on provider.events
    partitions: list[Mapping[str, Any]]
    brokers: set[int] | None
    providers: Providers


async def _failed_over(
    plan: cluster.ClusterPlan, survivors: set[int], providers: Providers, figures: Figures
) -> None:
    """Wait until the cluster has fenced the killed broker (only the survivors registered) and
    the survivors lead every provider.events partition; tell the writers, and `figures` when."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        if await cluster.registered_brokers(plan.bootstrap) == survivors and all(
            p["leader"] in survivors for p in await _partitions(plan)
        ):
            providers.failed_over.set()
            figures.mark("failed over")
            return
        await asyncio.sleep(0.25)


async def _write_kill_and_observe(
    plan: cluster.ClusterPlan,
    victim: int,
    running: Mapping[str, ServeProcess],
    database_url: str,
    figures: Figures,
) -> Outcome:
    """Post vacancies, SIGKILL broker `victim` after `KILL_AFTER` are acknowledged, post on (past
    the failover); once the exchange has settled, what it holds."""
    providers = Providers(running["provider"])
    await providers.register_settings()
    writing = asyncio.gather(*(providers.post(w) for w in range(WRITERS)))
    while len(providers.acknowledged) < KILL_AFTER and not writing.done():
        await asyncio.sleep(0.02)
    await cluster.kill_node(plan, victim)
    providers.killed.set()
    figures.mark(f"broker {victim} killed")
    survivors = {node.node_id for node in plan.nodes} - {victim}
    failing_over = asyncio.create_task(_failed_over(plan, survivors, providers, figures))
    await writing
    figures.mark("posts done")
    await failing_over
    return await _outcome(plan, database_url, running["ledger"], figures, providers)


async def _outcome(
    plan: cluster.ClusterPlan,
    database_url: str,
    ledger: ServeProcess,
    figures: Figures,
    providers: Providers,
) -> Outcome:
    connection = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        await _settle(connection)
        figures.mark("ledger settled")
        in_ledger = await _ledger_vacancies(connection)
        committed = {
            str(row["event_id"])
            for row in await connection.fetch(
                "SELECT event_id FROM provider.outbox WHERE topic = $1", PROVIDER_EVENTS.name
            )
        }
        applied = Counter(
            str(row["event_id"])
            for row in await connection.fetch(
                "SELECT event_id FROM ledger.inbox WHERE topic = $1", PROVIDER_EVENTS.name
            )
        )
    finally:
        await connection.close()
    headers = _bearer(principal_for(Role.AUTHORITY, authority_code=WESTMORLAND_AND_FURNESS))
    async with httpx.AsyncClient(base_url=ledger.url, trust_env=False) as client:
        answer = await client.get(f"/v1/capacity/{WESTMORLAND_AND_FURNESS}", headers=headers)
    assert answer.status_code == 200, answer.text
    return Outcome(
        in_ledger,
        committed,
        applied,
        answer.json()["totals"]["offered"],
        await _events_on_topic(plan),
        await _partitions(plan),
        await cluster.registered_brokers(plan.bootstrap),
        providers,
    )


async def test_a_broker_killed_mid_stream_loses_and_doubles_no_acknowledged_write(
    fresh_database_url: str, tmp_path: Path, record_property: Any
) -> None:
    figures = Figures()
    async with three_brokers(tmp_path / "kafka", figures) as plan:
        before = await _led_partitions(plan)
        assert len(before) == PROVIDER_EVENTS.partitions, before
        assert {len(p["replicas"]) for p in before} == {3}, before
        assert await _min_insync(plan) == "2"
        # The broker leading the most provider.events partitions.
        victim = Counter(p["leader"] for p in before).most_common(1)[0][0]
        survivors = {node.node_id for node in plan.nodes} - {victim}
        # The services are given one survivor's address, not the three: they pass
        # KAFKA_BOOTSTRAP_SERVERS to FastStream as one host, so a list of three reaches none.
        # They learn every broker from it, and reconnect to it if they must.
        async with services(
            plan.node(min(survivors)).address, fresh_database_url, tmp_path
        ) as running:
            figures.mark("services ready")
            outcome = await _write_kill_and_observe(
                plan, victim, running, fresh_database_url, figures
            )

    providers = outcome.providers
    acknowledged = providers.acknowledged
    figures.counts.update(
        acknowledged=len(acknowledged),
        acknowledged_after_kill=providers.after_kill,
        acknowledged_after_failover=providers.after_failover,
        refused=sum(providers.refused.values()),
        events_committed=len(outcome.committed),
        records_on_topic=sum(outcome.on_topic.values()),
        resent_copies=sum(outcome.on_topic.values()) - len(outcome.on_topic),
    )
    print(f"three brokers: {figures.report()}; refusals by cause: {dict(providers.refused)}")  # noqa: T201
    record_property("figures", figures.report())

    assert len(acknowledged) >= KILL_AFTER
    assert providers.after_kill > 0, "writes were acknowledged after the kill"
    assert providers.after_failover > 0, "and after the survivors took over"
    in_ledger = outcome.in_ledger
    assert {v: in_ledger.get(v) for v in acknowledged} == acknowledged, "each, with its beds"
    # A write whose answer was lost may have committed: never more of them than were refused.
    assert len(in_ledger) - len(acknowledged) <= sum(providers.refused.values())
    assert max(outcome.applied.values()) == 1, "no event applied twice"
    assert set(outcome.applied) == outcome.committed, "every committed event applied, no other"
    assert set(outcome.on_topic) == outcome.committed, "every committed event on the topic"
    assert outcome.offered == sum(in_ledger.values()), "the ledger offers those beds, no more"
    assert outcome.brokers == survivors, "the cluster serves on with two brokers"
    assert all(p["leader"] in survivors for p in outcome.partitions), outcome.partitions
    assert all(set(p["isr"]) == survivors for p in outcome.partitions), outcome.partitions
