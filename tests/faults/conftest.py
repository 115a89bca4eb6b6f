"""The fault suite's fixtures: a broker and a database of its own (the suite kills them), and the
exchange on them, both for the whole session (starting four services takes seconds each): every
test adds its own writes, and the invariants are checked over the whole history so far."""

from collections.abc import AsyncIterator

import pytest

from faults.fault_exchange import Exchange, exchange_on
from faults.fault_infra import FaultInfra, fault_infra


@pytest.fixture(scope="package")
async def infra() -> AsyncIterator[FaultInfra]:
    async with fault_infra() as running:
        yield running


@pytest.fixture(scope="package")
async def _exchange(
    infra: FaultInfra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Exchange]:
    async with exchange_on(infra, tmp_path_factory.mktemp("fault-exchange")) as running:
        yield running


@pytest.fixture
async def exchange(_exchange: Exchange) -> Exchange:
    """The four services running unarmed, on the suite's broker and database, no exits counted."""
    await _exchange.disarm()
    return _exchange
