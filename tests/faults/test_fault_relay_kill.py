"""Fault 3: each writer's outbox relay SIGKILLed after the broker acknowledged a batch and before
its rows were marked sent (failpoint `relay.after_publish`). Restarted, it publishes the same event
ids again; the consumers take each once."""

import signal

import pytest

from faults.fault_exchange import PUBLISHES, Exchange
from faults.fault_workload import Workload
from faults.invariants import copies, settle_and_check

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.postgres]

# On which batch each writer's relay dies: a few in, so the topic already has traffic.
ARMED = {"provider": 4, "authority": 2, "alerting": 3}


async def test_a_relay_killed_between_publishing_and_marking_sent_repeats_ids_not_effects(
    exchange: Exchange,
) -> None:
    await exchange.start(
        ARMED, failpoints={name: f"relay.after_publish=kill:{hit}" for name, hit in ARMED.items()}
    )
    workload = Workload(exchange)
    await workload.run()
    settled = await settle_and_check(exchange)

    assert exchange.exits() == {name: [-signal.SIGKILL] for name in ARMED}
    for name, hit in ARMED.items():
        assert f"failpoint relay.after_publish: kill on hit {hit}" in exchange[name].output()
        assert copies(settled[PUBLISHES[name]]) > 0, f"{name}'s unmarked batch went out again"
    assert settled.raised_for(workload.referrals) > 0
