"""New, empty places on the real local infrastructure, removed after use: a database, and a
namespace of catalogue topics. The `fresh_database_url` and `topic_prefix` fixtures are these, for
one test; a test that needs more of them, or one for a whole module, uses these directly."""

import contextlib
from collections.abc import AsyncIterator
from uuid import uuid4

from infra.local.scratch import scratch_database, scratch_topics
from services.platform.settings import CommonSettings


@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """The URL of a new, empty database on the local PostgreSQL, dropped after (even in use)."""
    name = f"nearhome_test_{uuid4().hex[:12]}"
    async with scratch_database(CommonSettings().database_url, name) as url:
        yield url


@contextlib.asynccontextmanager
async def fresh_topics() -> AsyncIterator[str]:
    """A prefix naming fresh catalogue topics (and their .dlq twins) on the local broker, deleted
    after (see `infra.local.scratch.scratch_topics`)."""
    prefix = f"test-{uuid4().hex[:10]}."
    async with scratch_topics(CommonSettings().kafka_bootstrap_servers, prefix) as named:
        yield named
