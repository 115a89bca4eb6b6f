"""What a statement raises when its database connection goes away under it is an outage the
services wait out (`TRANSIENT_ERRORS`), not a reason to stop: a PostgreSQL restart terminates
every backend, often in the middle of a consumer's or the delivery worker's statement."""

import asyncio

import asyncpg
import pytest

from services.platform.consumer import TRANSIENT_ERRORS
from services.platform.database import create_engine
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
