"""Scale-out: a second instance of every service joins the exchange, so each consumer group has two
members sharing the partitions (alerting: two instances owning a share of the shards each), and
two relays contend for each outbox. Mid-stream, the second instances are SIGKILLed. The survivors
take over every partition once the group's session timeout has expired, and the exchange settles
with nothing lost, nothing applied twice and no (referral, vacancy) pair alerted twice."""

import asyncio
import logging
import re
import signal
import time

import pytest

from faults.fault_exchange import CONSUMES, SERVICES, Exchange, ServiceProcess
from faults.fault_workload import Workload
from faults.invariants import SHARDS, settle_and_check

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.postgres]

logger = logging.getLogger(__name__)

# aiokafka's default: a member that has not sent a heartbeat for this long leaves the group.
SESSION_TIMEOUT_S = 10.0
# What a takeover may add to it on this machine: the rebalance, and (alerting) loading the books
# of the shards taken over.
TAKEOVER_ALLOWANCE_S = 10.0
ASSIGNED = re.compile(r"assigned to partitions: \((.*)\)")
PARTITION = re.compile(r"TopicPartition\(topic='([^']+)', partition=(\d+)\)")
SHARDS_OWNED = re.compile(r"alerting owns shards \[([\d, ]*)\]")


def assigned_since(output: str, start: int) -> dict[str, set[int]]:
    """The partitions of each topic the latest assignment after `start` of `output` gave."""
    latest: dict[str, set[int]] = {}
    for line in output[start:].splitlines():
        if (found := ASSIGNED.search(line)) is not None:
            partitions = PARTITION.findall(found.group(1))
            for topic in {topic for topic, _ in partitions}:
                latest[topic] = {int(n) for t, n in partitions if t == topic}
    return latest


def shards_owned(output: str, start: int = 0) -> set[int]:
    found = SHARDS_OWNED.findall(output[start:])
    return {int(n) for n in found[-1].split(",") if n.strip()} if found else set()


def holds_every_partition(exchange: Exchange, name: str, output: str, start: int) -> bool:
    """Whether `name`'s process was assigned, after `start`, every partition of what it reads."""
    assigned = assigned_since(output, start)
    for spec in CONSUMES[name]:
        if name == "alerting" and spec.name.endswith("provider.events"):
            continue  # each shard reads every partition of it, outside the group
        if assigned.get(exchange.topic(spec), set()) != set(range(spec.partitions)):
            return False
    return name != "alerting" or shards_owned(output, start) == set(range(SHARDS))


def unshared(exchange: Exchange, twins: dict[str, ServiceProcess]) -> list[str]:
    """The processes and topics of which a process holds no partition, or all of them."""
    waiting = []
    for name in SERVICES:
        for process in (exchange[name], twins[name]):
            mine = assigned_since(process.output(), 0)
            for spec in CONSUMES[name]:
                if name == "alerting" and spec.name.endswith("provider.events"):
                    continue
                held = mine.get(exchange.topic(spec), set())
                if not held or held == set(range(spec.partitions)):
                    waiting.append(f"{process.log.name}:{spec.name}")
    if not 0 < len(shards_owned(twins["alerting"].output())) < SHARDS:
        waiting.append("alerting twin's shards")
    return waiting


async def takeover_times(
    exchange: Exchange, marks: dict[str, int], killed_at: float
) -> dict[str, float]:
    """Seconds from the kill until each survivor was assigned every partition it reads."""
    took: dict[str, float] = {}
    deadline = killed_at + SESSION_TIMEOUT_S + TAKEOVER_ALLOWANCE_S + 30
    while len(took) < len(SERVICES):
        for name in SERVICES:
            if name not in took and holds_every_partition(
                exchange, name, exchange[name].output(), marks[name]
            ):
                took[name] = round(time.monotonic() - killed_at, 1)
        assert time.monotonic() < deadline, f"no takeover yet by {set(SERVICES) - set(took)}"
        await asyncio.sleep(0.2)
    return took


async def test_two_instances_share_each_group_and_one_killed_mid_stream_loses_and_doubles_nothing(
    exchange: Exchange,
) -> None:
    twins = {
        name: ServiceProcess.on_free_port(
            name,
            {k: v for k, v in exchange[name].env.items() if k != f"{name.upper()}_PORT"},
            exchange[name].log.with_name(f"{name}-twin.log"),
        )
        for name in SERVICES
    }
    try:
        await asyncio.gather(*(twin.start() for twin in twins.values()))

        # Each group now has two members, each with a share of the partitions.
        deadline = time.monotonic() + 60
        while waiting := unshared(exchange, twins):
            assert time.monotonic() < deadline, f"partitions not shared: {waiting}"
            await asyncio.sleep(0.3)

        workloads = [Workload(exchange), Workload(exchange)]
        await asyncio.gather(*(w.phase_one() for w in workloads))
        second_phase = [asyncio.create_task(w.phase_two()) for w in workloads]
        await asyncio.sleep(0.5)  # mid-stream: the second phase is being written and consumed
        marks = {name: len(exchange[name].output()) for name in SERVICES}
        killed_at = time.monotonic()
        await asyncio.gather(*(twin.kill() for twin in twins.values()))
        await asyncio.gather(*second_phase)

        # The survivors take over every partition within the session timeout (and a rebalance).
        took = await takeover_times(exchange, marks, killed_at)
        logger.info("takeover after the kill, in seconds: %s", took)
        late = {n: s for n, s in took.items() if s > SESSION_TIMEOUT_S + TAKEOVER_ALLOWANCE_S}
        assert not late, f"taken over later than the session timeout allows: {late}"

        settled = await settle_and_check(exchange)
        assert settled.raised_for([r for w in workloads for r in w.referrals]) > 0
        for twin in twins.values():
            assert twin.process is not None
            assert twin.process.returncode == -signal.SIGKILL
    finally:
        await asyncio.gather(*(twin.kill() for twin in twins.values()))
