"""Suite-wide fixtures: tests marked `kafka` or `postgres` get the real local infrastructure.

The suite runs in development (NEARHOME_ENV=development), as `make demo` does: its services trust
the HS256 tokens the tests make with `issue_token`, and every process a test starts inherits it. A
test of production behaviour takes it away with `monkeypatch.delenv("NEARHOME_ENV")`.
"""

import os
from collections.abc import AsyncIterator

import pytest
from fresh import Databases, databases, fresh_topics
from fresh import migrated_template as migrated_template_database
from hypothesis import settings

from infra.local import ensure_up

os.environ["NEARHOME_ENV"] = "development"

# Property tests assert what holds, never how fast: on a busy 2-core machine one example can take
# longer than Hypothesis's default 200 ms deadline (speed is measured in bench/ instead).
settings.register_profile("nearhome", deadline=None)
settings.load_profile("nearhome")


@pytest.fixture(scope="session")
async def _real_infrastructure() -> None:
    # `make test` has already run `nearhome infra up`; this makes a bare `pytest` work too.
    await ensure_up()


@pytest.fixture(autouse=True)
def _needs_infrastructure(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("kafka") or request.node.get_closest_marker("postgres"):
        request.getfixturevalue("_real_infrastructure")


@pytest.fixture(scope="session")
async def migrated_template(_real_infrastructure: None) -> AsyncIterator[str]:
    """The name of a database with every service's schema at its head, made once per session (and
    dropped after it), that `fresh_database_url` copies (see `fresh.migrated_template`)."""
    async with migrated_template_database() as name:
        yield name


@pytest.fixture(scope="session")
async def _databases(migrated_template: str) -> AsyncIterator[Databases]:
    # Each test's database is made ahead and dropped in the background (see `fresh.Databases`);
    # every one is gone before the template they are copies of is dropped.
    async with databases() as made:
        yield made


@pytest.fixture
async def fresh_database_url(migrated_template: str, _databases: Databases) -> AsyncIterator[str]:
    """A new database for one test (dropped after it), on the real local PostgreSQL: every
    service's schema at its head and no rows, as the services' start-up migrations leave it."""
    async with _databases.fresh(migrated_template) as url:
        yield url


@pytest.fixture
async def empty_database_url(_databases: Databases) -> AsyncIterator[str]:
    """A new, empty database for one test (dropped after it): for a test of the migrations."""
    async with _databases.fresh() as url:
        yield url


@pytest.fixture
async def topic_prefix(_real_infrastructure: None) -> AsyncIterator[str]:
    """A namespace of fresh catalogue topics for one test, deleted after it (see `fresh_topics`)."""
    async with fresh_topics() as prefix:
        yield prefix
