"""What a statement raises when its database connection goes away under it is an outage the
services wait out (`TRANSIENT_ERRORS`), not a reason to stop: a PostgreSQL restart terminates
every backend, often in the middle of a consumer's or the delivery worker's statement."""

import asyncio

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.platform.consumer import TRANSIENT_ERRORS
from services.platform.database import IDLE_BEFORE_PING_S, create_engine
from services.platform.tables import connection_of

pytestmark = pytest.mark.postgres


async def test_a_backend_terminated_mid_statement_is_an_outage_and_the_pool_recovers(
    fresh_database_url: str,
) -> None:
    engine = create_engine(fresh_database_url)
    try:
        async with connection_of(engine) as other, connection_of(engine) as connection:
            statement = asyncio.create_task(connection.fetch("SELECT pg_sleep(30)"))
            await asyncio.sleep(0.3)
            await other.execute("SELECT pg_terminate_backend($1)", connection.get_server_pid())
            with pytest.raises(TRANSIENT_ERRORS) as raised:
                await statement
        # The error as a restart raises it: a connection closed in the middle of an operation.
        assert isinstance(raised.value, asyncpg.PostgresConnectionError), repr(raised.value)
        async with connection_of(engine) as connection:
            assert await connection.fetchval("SELECT 1") == 1
    finally:
        await engine.dispose()


async def test_a_bad_statement_is_not_an_outage(fresh_database_url: str) -> None:
    engine = create_engine(fresh_database_url)
    try:
        async with connection_of(engine) as connection:
            with pytest.raises(asyncpg.PostgresError) as raised:
                await connection.fetch("SELECT 1 / 0")
        assert not isinstance(raised.value, TRANSIENT_ERRORS)
    finally:
        await engine.dispose()


async def _end_the_pooled_connection(engine: AsyncEngine, database_url: str) -> int:
    """Ends the backend of the engine's one pooled connection, from another engine; its pid."""
    async with engine.connect() as connection:
        pid = await connection.scalar(text("SELECT pg_backend_pid()"))
    other = create_engine(database_url)
    try:
        async with other.connect() as connection:
            await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await other.dispose()
    assert isinstance(pid, int)
    return pid


async def test_a_connection_idle_past_the_ping_threshold_is_replaced_unseen(
    fresh_database_url: str,
) -> None:
    engine = create_engine(fresh_database_url)
    try:
        ended = await _end_the_pooled_connection(engine, fresh_database_url)
        await asyncio.sleep(IDLE_BEFORE_PING_S + 0.2)
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT pg_backend_pid()")) != ended
    finally:
        await engine.dispose()


async def test_a_connection_known_closed_is_replaced_within_the_second(
    fresh_database_url: str,
) -> None:
    # Used under a second ago, so not pinged; but asyncpg has seen its socket close, and that
    # costs no round trip to know.
    engine = create_engine(fresh_database_url)
    try:
        ended = await _end_the_pooled_connection(engine, fresh_database_url)
        await asyncio.sleep(0.2)
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT pg_backend_pid()")) != ended
    finally:
        await engine.dispose()
