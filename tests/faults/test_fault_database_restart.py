"""Fault 2: PostgreSQL stopped at once (immediate mode: every backend quits, no checkpoint, crash
recovery on the next start) while providers and councils post, then started again. Writes that
failed meanwhile are retried with their Idempotency-Key; consumers and relays carry on."""

import asyncio

import pytest

from faults.fault_exchange import Exchange
from faults.fault_workload import Workload
from faults.invariants import settle_and_check

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.postgres]

OUTAGE_S = 3.0


async def test_the_database_restarted_mid_stream_loses_and_repeats_nothing(
    exchange: Exchange,
) -> None:
    database = exchange.infra.database
    workload = Workload(exchange)
    await workload.phase_one()

    writing = asyncio.create_task(workload.phase_two())
    await asyncio.sleep(0.5)
    try:
        await database.crash()
        await asyncio.sleep(OUTAGE_S)
    finally:
        await database.start()
    await writing
    settled = await settle_and_check(exchange)

    assert exchange.exits() == {}, "no service died of it"
    assert workload.retried > 0, "writes during the outage failed and were retried"
    assert settled.raised_for(workload.referrals) > 0
