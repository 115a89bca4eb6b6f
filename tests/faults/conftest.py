"""The fault suite's fixtures: a broker and a database of its own for the session (the suite kills
them), and for each test a fresh exchange on them whose services the test starts."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fault_exchange import Exchange, exchange_on
from fault_infra import FaultInfra, fault_infra


@pytest.fixture(scope="session")
async def infra() -> AsyncIterator[FaultInfra]:
    async with fault_infra() as running:
        yield running


@pytest.fixture
async def exchange(infra: FaultInfra, tmp_path: Path) -> AsyncIterator[Exchange]:
    """A fresh database and topics on the suite's infrastructure, the four services' processes
    ready to start (their output in the test's tmp_path), all killed after the test."""
    async with exchange_on(infra, tmp_path) as fresh:
        yield fresh
