"""Fault 4: every consumer (the provider's, the authority's, the ledger's and alerting's) SIGKILLed
inside a batch's transaction before it commits (failpoint `consumer.before_commit`), restarted, and
SIGKILLed again just after a batch commits and before Kafka is told (`consumer.after_commit`),
restarted again. Each resumes from the positions stored with its effects: nothing is applied twice
or skipped."""

import signal

import pytest

from faults.fault_exchange import CONSUMES, Exchange
from faults.fault_workload import Workload
from faults.invariants import settle_and_check

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.postgres]

POINTS = ("consumer.before_commit", "consumer.after_commit")
# On which batch each consumer dies: a few batches in (the provider's reads only the few referral
# events), then on the first after the restart (the batch it died in, delivered again).
ARMED = {"provider": (2, 1), "authority": (3, 1), "ledger": (3, 1), "alerting": (3, 1)}


async def test_each_consumer_killed_before_and_after_its_commit_applies_every_event_once(
    exchange: Exchange,
) -> None:
    assert set(ARMED) == set(CONSUMES)
    await exchange.start(
        ARMED,
        failpoints={
            name: [f"{point}=kill:{hit}" for point, hit in zip(POINTS, hits, strict=True)]
            for name, hits in ARMED.items()
        },
    )
    workload = Workload(exchange)
    await workload.run()
    settled = await settle_and_check(exchange)

    assert exchange.exits() == {name: [-signal.SIGKILL] * len(POINTS) for name in ARMED}
    for name, hits in ARMED.items():
        said = [
            f"failpoint {point}: kill on hit {hit}" for point, hit in zip(POINTS, hits, strict=True)
        ]
        output = exchange[name].output()
        assert all(line in output for line in said), f"{name} did not die at {said}"
        assert output.index(said[0]) < output.index(said[1])
    assert settled.raised_for(workload.referrals) > 0
