"""Fault 4: every consumer (the provider's, the authority's, the ledger's and alerting's) SIGKILLed
inside a batch's transaction before it commits, or just after it commits and before Kafka is told
(failpoints `consumer.before_commit`, `consumer.after_commit`). Restarted, each resumes from the
positions stored with its effects: nothing is applied twice or skipped."""

import signal

import pytest

from faults.fault_exchange import CONSUMES, Exchange
from faults.fault_workload import Workload
from faults.invariants import settle_and_check

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.postgres]

# On which batch each consumer dies (the provider's reads the few referral events only).
ARMED = {"provider": 2, "authority": 3, "ledger": 3, "alerting": 3}


@pytest.mark.parametrize("point", ["consumer.before_commit", "consumer.after_commit"])
async def test_each_consumer_killed_at_its_commit_applies_every_event_once(
    exchange: Exchange, point: str
) -> None:
    assert set(ARMED) == set(CONSUMES)
    await exchange.start(
        ARMED, failpoints={name: f"{point}=kill:{hit}" for name, hit in ARMED.items()}
    )
    workload = Workload(exchange)
    await workload.run()
    settled = await settle_and_check(exchange)

    assert exchange.exits() == {name: [-signal.SIGKILL] for name in ARMED}
    for name, hit in ARMED.items():
        assert f"failpoint {point}: kill on hit {hit}" in exchange[name].output()
    assert settled.raised_for(workload.referrals) > 0
