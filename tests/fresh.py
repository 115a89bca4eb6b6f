"""New, empty places on the real local infrastructure, removed after use: a database, and a
namespace of catalogue topics. The `fresh_database_url` and `topic_prefix` fixtures are these, for
one test; a test that needs more of them, or one for a whole module, uses these directly."""

import contextlib
from collections.abc import AsyncIterator
from uuid import uuid4

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from contracts.topics import all_topics
from infra.local.topics import declare_topics
from services.platform.settings import CommonSettings


@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """The URL of a new, empty database on the local PostgreSQL, dropped after (even in use)."""
    base = CommonSettings().database_url
    name = f"nearhome_test_{uuid4().hex[:12]}"
    admin = await asyncpg.connect(base.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield base.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@contextlib.asynccontextmanager
async def fresh_topics() -> AsyncIterator[str]:
    """A prefix naming fresh catalogue topics (and their .dlq twins) on the local broker, deleted
    after.

    Services built with `topic_prefix=<this>` publish and consume only there, so a consumer that
    reads from offset 0 sees this prefix's events and nothing else.
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
