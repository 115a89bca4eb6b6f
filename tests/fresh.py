"""New places on the real local infrastructure, removed after use: a database, and a namespace of
catalogue topics. The `fresh_database_url` and `topic_prefix` fixtures are these, for one test; a
test that needs more of them, or one for a whole module, uses these directly.

A fresh database is a copy of the session's `migrated_template` (every service's schema at its
head, no rows): copying it is much quicker than migrating each new database again, and a service
started on it finds its schema at head (its start-up upgrade does nothing). Only a test of the
migrations themselves wants an empty one (`fresh_database()` with no template).
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from uuid import uuid4

import asyncpg

from infra.local.scratch import (
    create_database,
    drop_database,
    scratch_database,
    scratch_template,
    scratch_topics,
)
from services.platform.migrations import upgrade_to_head_async
from services.platform.settings import SERVICE_SCHEMAS, CommonSettings

DROPPERS = 4


def _new_name() -> str:
    return f"nearhome_test_{uuid4().hex[:12]}"


def _admin_url() -> str:
    return CommonSettings().database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


@contextlib.asynccontextmanager
async def fresh_database(template: str | None = None) -> AsyncIterator[str]:
    """The URL of a new database on the local PostgreSQL, dropped after (even in use): empty, or
    a copy of `template` (`migrated_template`'s name)."""
    async with scratch_database(
        CommonSettings().database_url, _new_name(), template=template
    ) as url:
        yield url


class Databases:
    """Fresh databases for a session's tests. The next one (a copy of the same template) is made
    in the background while a test runs, and each is dropped in the background once its test is
    over: making one and dropping one (which waits for the server's checkpoint) each take up to a
    second on a busy machine, which no test needs to wait for. `close` waits until every one is
    gone.

    Their commits do not wait for the WAL to reach the disk (`synchronous_commit = off`): only a
    crash of the server could lose one, and no test crashes this one (the fault tests run a server
    of their own). What a transaction sees and when it is visible are unchanged."""

    def __init__(self) -> None:
        self._used: asyncio.Queue[str | None] = asyncio.Queue()
        # Drops on several connections at once share the server's checkpoints: in a row, each
        # would wait for one of its own.
        self._droppers = [asyncio.create_task(self._drop_used()) for _ in range(DROPPERS)]
        self._next: dict[str | None, asyncio.Task[str]] = {}
        self._left: list[str] = []

    @contextlib.asynccontextmanager
    async def fresh(self, template: str | None = None) -> AsyncIterator[str]:
        """As `fresh_database`, but made ahead and dropped in the background."""
        ahead = self._next.pop(template, None)
        try:
            name = await ahead if ahead is not None else await self._create(template)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            # Made ahead on a connection the server has since dropped, say: make it now.
            name = await self._create(template)
        self._next[template] = asyncio.create_task(self._create(template))
        try:
            yield f"{CommonSettings().database_url.rsplit('/', 1)[0]}/{name}"
        finally:
            self._used.put_nowait(name)

    @staticmethod
    async def _create(template: str | None) -> str:
        name = _new_name()
        admin = await asyncpg.connect(_admin_url())
        try:
            await create_database(admin, CommonSettings().database_url, name, template=template)
            await admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
        finally:
            await admin.close()
        return name

    async def _drop_used(self) -> None:
        admin: asyncpg.Connection | None = None
        try:
            while (name := await self._used.get()) is not None:
                for attempt in (1, 2):
                    try:
                        if admin is None or admin.is_closed():
                            admin = await asyncpg.connect(_admin_url())
                        await drop_database(admin, name)
                        break
                    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                        # The server restarted under the connection, say: try once more on a
                        # new one, then leave the name for `close` to report.
                        if admin is not None:
                            admin.terminate()
                            admin = None
                        if attempt == 2:
                            self._left.append(f"{name} ({error})")
        finally:
            if admin is not None:
                await admin.close()

    async def close(self) -> None:
        """Wait until every database made is dropped; fail naming any that could not be."""
        for ahead in self._next.values():
            with contextlib.suppress(Exception):
                self._used.put_nowait(await ahead)
        for _ in self._droppers:
            self._used.put_nowait(None)
        await asyncio.gather(*self._droppers)
        if self._left:
            raise RuntimeError(f"could not drop scratch databases, drop them by hand: {self._left}")


@contextlib.asynccontextmanager
async def databases() -> AsyncIterator[Databases]:
    """A `Databases` for a session, closed (every database it made dropped) after."""
    made = Databases()
    try:
        yield made
    finally:
        await made.close()


async def _migrate_every_service(url: str) -> None:
    # One after another: Alembic's env.py runs its own event loop in each worker thread, and the
    # four histories live in four schemas of their own.
    for service in SERVICE_SCHEMAS:
        await upgrade_to_head_async(service, url)


@contextlib.asynccontextmanager
async def migrated_template() -> AsyncIterator[str]:
    """The name of a new database with every service's migrations applied, to copy fresh
    databases from (`fresh_database(template=...)`); dropped after. Made anew for each session, so
    it is always at the checkout's heads."""
    name = f"nearhome_template_{uuid4().hex[:12]}"
    async with scratch_template(
        CommonSettings().database_url, name, _migrate_every_service
    ) as made:
        yield made


@contextlib.asynccontextmanager
async def fresh_topics() -> AsyncIterator[str]:
    """A prefix naming fresh catalogue topics (and their .dlq twins) on the local broker, deleted
    after (see `infra.local.scratch.scratch_topics`)."""
    prefix = f"test-{uuid4().hex[:10]}."
    async with scratch_topics(CommonSettings().kafka_bootstrap_servers, prefix) as named:
        yield named
