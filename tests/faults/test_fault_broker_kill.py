"""Fault 1: the broker SIGKILLed mid-stream, while providers and councils keep posting, then
restarted on the same storage. Writes are taken meanwhile (they wait in the outboxes); once the
broker is back every event arrives, and every consumer applies each once."""

import asyncio

import pytest

from faults.fault_exchange import Exchange
from faults.fault_workload import Workload
from faults.invariants import settle_and_check, unsent

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.postgres]


async def test_the_broker_killed_mid_stream_loses_and_repeats_nothing(exchange: Exchange) -> None:
    broker = exchange.infra.broker
    workload = Workload(exchange)
    await workload.phase_one()

    writing = asyncio.create_task(workload.phase_two())
    await asyncio.sleep(0.5)
    try:
        await broker.kill()
        await writing
        waiting_while_down = await unsent(exchange)
    finally:
        await broker.start()
    settled = await settle_and_check(exchange)

    assert exchange.exits() == {}, "no service died of it"
    assert waiting_while_down > 0, "some writes were taken while the broker was down"
    assert workload.retried == 0, "no write was refused for want of the broker"
    assert settled.raised_for(workload.referrals) > 0
