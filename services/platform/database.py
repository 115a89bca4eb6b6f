"""PostgreSQL engines and sessions: built in the composition root, never at import."""

import time

from sqlalchemy import MetaData, event, exc
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from services.platform.connections import NO_DATABASE_TLS, DatabaseTls


def service_metadata(schema: str) -> MetaData:
    """One MetaData per service: its tables live in its own schema and never clash by name."""
    return MetaData(schema=schema)


def create_engine(
    database_url: str, *, pool_size: int = 5, tls: DatabaseTls = NO_DATABASE_TLS
) -> AsyncEngine:
    """An engine whose connections are secured as `tls` says (`CommonSettings.database_tls`)."""
    # hide_parameters: a failed statement is logged without its values (ages, districts, refs).
    engine = create_async_engine(
        database_url,
        pool_size=pool_size,
        hide_parameters=True,
        connect_args=tls.connect_args(),
    )
    _ping_when_idle(engine)
    return engine


# A connection back in the pool for less than this is handed out again without a ping.
IDLE_BEFORE_PING_S = 1.0
_RETURNED_AT = "nearhome_returned_at"


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Ping a pooled connection before use only if it has been idle for a second or more.

    A connection asyncpg already knows to be closed is never handed out. SQLAlchemy's
    `pool_pre_ping` pings on every checkout, and its asyncpg ping is three round
    trips (BEGIN, SELECT, ROLLBACK): under load that was a third of a capacity read's round trips
    and one in six of an alerting shard's. A connection used a moment ago and not known closed is
    almost certainly alive; one that is not (its backend ended and the news has not reached the
    process yet) fails its statement, and the caller's own handling of an unreachable database (a
    consumer's retry, an HTTP 503) takes over, as it does when the database goes away mid-request.
    """

    @event.listens_for(engine.sync_engine, "checkin")
    def returned(_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def handed_out(
        connection: DBAPIConnection, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
    ) -> None:
        if _known_closed(connection):
            raise exc.InvalidatePoolError  # the backend ended (a restart ends them all)
        returned_at = record.info.get(_RETURNED_AT)
        if returned_at is None or time.monotonic() - returned_at < IDLE_BEFORE_PING_S:
            return  # new, or used a moment ago
        try:
            connection.ping()  # asyncpg adapted connection: awaits the ping within the greenlet
        except Exception as error:  # any failure means the connection is gone
            raise exc.InvalidatePoolError from error


def _known_closed(connection: DBAPIConnection) -> bool:
    """asyncpg marks a connection closed as soon as its socket is (the server ended the backend,
    or a statement on the raw connection met the end); knowing it costs no round trip."""
    driver = getattr(connection, "driver_connection", None)
    return driver is not None and bool(driver.is_closed())


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
