"""PostgreSQL engines and sessions: built in the composition root, never at import."""

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from services.platform.connections import NO_DATABASE_TLS, DatabaseTls


def service_metadata(schema: str) -> MetaData:
    """One MetaData per service: its tables live in its own schema and never clash by name."""
    return MetaData(schema=schema)


def create_engine(
    database_url: str, *, pool_size: int = 5, tls: DatabaseTls = NO_DATABASE_TLS
) -> AsyncEngine:
    """An engine whose connections are secured as `tls` says (`CommonSettings.database_tls`)."""
    # hide_parameters: a failed statement is logged without its values (ages, districts, refs).
    return create_async_engine(
        database_url,
        pool_size=pool_size,
        pool_pre_ping=True,
        hide_parameters=True,
        connect_args=tls.connect_args(),
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
