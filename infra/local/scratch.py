"""Scratch namespaces on the local infrastructure: a new database, new catalogue topics.

Tests and benchmarks each run in a namespace of their own (a database, a topic prefix), so none
reads another's rows or events; both are removed afterwards unless asked to keep them.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from contracts.topics import all_topics
from infra.local.topics import declare_topics

DROP_ATTEMPTS = 30


@contextlib.asynccontextmanager
async def scratch_database(base_url: str, name: str, *, keep: bool = False) -> AsyncIterator[str]:
    """The URL of a new, empty database `name` on `base_url`'s server, dropped after (even while
    in use) unless `keep`."""
    admin = await asyncpg.connect(base_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield base_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        try:
            if not keep:
                await _drop_database(admin, name)
        finally:
            await admin.close()


async def _drop_database(admin: asyncpg.Connection, name: str) -> None:
    # An autovacuum worker (the server's own role, which FORCE may not end) may still be in it:
    # wait for it to finish.
    for _ in range(DROP_ATTEMPTS):
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except asyncpg.InsufficientPrivilegeError:
            await asyncio.sleep(1)
        else:
            return
    raise RuntimeError(f"could not drop the scratch database {name}: drop it by hand")


@contextlib.asynccontextmanager
async def scratch_topics(bootstrap: str, prefix: str, *, keep: bool = False) -> AsyncIterator[str]:
    """`prefix`, naming new catalogue topics (and their .dlq twins) on the broker at `bootstrap`,
    deleted after unless `keep`. Services built with `topic_prefix=<prefix>` publish and consume
    only there, so a consumer that reads from offset 0 sees this prefix's events and nothing else.
    """
    specs = all_topics(prefix)
    await declare_topics(bootstrap, specs, lambda _: None)
    try:
        yield prefix
    finally:
        if not keep:
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
            await admin.start()
            try:
                await admin.delete_topics([spec.name for spec in specs])
            finally:
                await admin.close()
