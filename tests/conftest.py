"""Suite-wide fixtures: tests marked `kafka` or `postgres` get the real local infrastructure.

The suite runs in development (NEARHOME_ENV=development), as `make demo` does: its services trust
the HS256 tokens the tests make with `issue_token`, and every process a test starts inherits it. A
test of production behaviour takes it away with `monkeypatch.delenv("NEARHOME_ENV")`.
"""

import os
from collections.abc import AsyncIterator

import pytest
from fresh import fresh_database, fresh_topics

from infra.local import ensure_up

os.environ["NEARHOME_ENV"] = "development"


@pytest.fixture(scope="session")
async def _real_infrastructure() -> None:
    # `make test` has already run `nearhome infra up`; this makes a bare `pytest` work too.
    await ensure_up()


@pytest.fixture(autouse=True)
def _needs_infrastructure(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("kafka") or request.node.get_closest_marker("postgres"):
        request.getfixturevalue("_real_infrastructure")


@pytest.fixture
async def fresh_database_url(_real_infrastructure: None) -> AsyncIterator[str]:
    """A new, empty database for one test (dropped after it), on the real local PostgreSQL."""
    async with fresh_database() as url:
        yield url


@pytest.fixture
async def topic_prefix(_real_infrastructure: None) -> AsyncIterator[str]:
    """A namespace of fresh catalogue topics for one test, deleted after it (see `fresh_topics`)."""
    async with fresh_topics() as prefix:
        yield prefix
