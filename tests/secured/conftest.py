"""The secured suite's fixture: a SASL_SSL broker and a TLS-only PostgreSQL of its own, for the
whole package (a broker takes seconds to start)."""

from collections.abc import AsyncIterator

import pytest

from secured.secured_infra import SecuredInfra, secured_infra


@pytest.fixture(scope="package")
async def infra() -> AsyncIterator[SecuredInfra]:
    async with secured_infra() as running:
        yield running
