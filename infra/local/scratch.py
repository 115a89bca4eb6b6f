"""Scratch namespaces on the local infrastructure: a new database, new catalogue topics.

Tests and benchmarks each run in a namespace of their own (a database, a topic prefix), so none
reads another's rows or events; both are removed afterwards unless asked to keep them.

A database can be made as a copy of a template (`scratch_template`): PostgreSQL copies its files,
which is much quicker than running every service's migrations again in each new database.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from contracts.topics import all_topics
from infra.local.topics import declare_topics

DROP_ATTEMPTS = 30


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _on(base_url: str, name: str) -> str:
    return base_url.rsplit("/", 1)[0] + f"/{name}"


@contextlib.asynccontextmanager
async def scratch_database(
    base_url: str, name: str, *, keep: bool = False, template: str | None = None
) -> AsyncIterator[str]:
    """The URL of a new database `name` on `base_url`'s server, dropped after (even while in use)
    unless `keep`: empty, or a copy of the database `template` (see `scratch_template`)."""
    async with _admin(base_url) as admin:
        url = await create_database(admin, base_url, name, template=template)
    try:
        yield url
    finally:
        if not keep:
            async with _admin(base_url) as admin:
                await drop_database(admin, name)


async def create_database(
    admin: asyncpg.Connection, base_url: str, name: str, *, template: str | None = None
) -> str:
    """Create `name` through `admin` (empty, or a copy of `template`); its URL."""
    copy_of = f' TEMPLATE "{template}"' if template is not None else ""
    await admin.execute(f'CREATE DATABASE "{name}"{copy_of}')
    return _on(base_url, name)


@contextlib.asynccontextmanager
async def scratch_template(
    base_url: str, name: str, prepare: Callable[[str], Awaitable[None]]
) -> AsyncIterator[str]:
    """`name`, a new database on `base_url`'s server that `prepare` (given its URL) fills, then
    closed to connections so that `scratch_database(..., template=name)` can copy it at any time
    (PostgreSQL refuses to copy a database someone is connected to); dropped after."""
    async with _admin(base_url) as admin:
        await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        await prepare(_on(base_url, name))
        async with _admin(base_url) as admin:
            await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        yield name
    finally:
        async with _admin(base_url) as admin:
            await drop_database(admin, name)


@contextlib.asynccontextmanager
async def _admin(base_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection for one step, none held while a database is in use: the server may restart
    meanwhile (`nearhome infra down` and `up` in tests/integration/test_infra.py)."""
    admin = await asyncpg.connect(_plain(base_url))
    try:
        yield admin
    finally:
        await admin.close()


async def drop_database(admin: asyncpg.Connection, name: str) -> None:
    """Drop `name` through `admin`, even while in use."""
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
