"""Suite-wide fixtures: tests marked `kafka` or `postgres` get the real local infrastructure."""

from collections.abc import AsyncIterator
from uuid import uuid4

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from contracts.topics import all_topics
from infra.local import ensure_up
from infra.local.topics import declare_topics
from services.platform.settings import CommonSettings


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
    base = CommonSettings().database_url
    name = f"nearhome_test_{uuid4().hex[:12]}"
    admin = await asyncpg.connect(base.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield base.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def topic_prefix(_real_infrastructure: None) -> AsyncIterator[str]:
    """A namespace of fresh catalogue topics (and .dlq twins) for one test, deleted after it.

    Services built with `topic_prefix=<this>` publish and consume only there, so a consumer that
    reads from offset 0 sees this test's events and nothing else.
    """
    prefix = f"test-{uuid4().hex[:10]}."
    bootstrap = CommonSettings().kafka_bootstrap_servers
    specs = all_topics(prefix)
    await declare_topics(bootstrap, specs, lambda _: None)
    try:
        yield prefix
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([spec.name for spec in specs])
        finally:
            await admin.close()
