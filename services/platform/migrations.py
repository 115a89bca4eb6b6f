"""Alembic, one migration history per service, each in its own schema.

A service's `migrations/env.py` is two lines: it hands its MetaData to `run_migrations`.
"""

import asyncio
import logging
from importlib.resources import files

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from services.platform.connections import NO_DATABASE_TLS, DatabaseTls, database_setup_error

logger = logging.getLogger(__name__)

_TLS_ATTRIBUTE = "database_tls"


def alembic_config(service: str, database_url: str, tls: DatabaseTls = NO_DATABASE_TLS) -> Config:
    config = Config()
    # The migrations ship inside the service's package: found where it is installed, not where
    # this file happens to sit in a checkout.
    migrations = files(f"services.{service}.migrations")
    config.set_main_option("script_location", str(migrations))
    config.set_main_option("sqlalchemy.url", database_url)
    config.attributes["service"] = service
    config.attributes[_TLS_ATTRIBUTE] = tls
    return config


def upgrade_to_head(service: str, database_url: str, tls: DatabaseTls = NO_DATABASE_TLS) -> None:
    """Apply every migration of `service` (blocking: call it from a thread in async code)."""
    command.upgrade(alembic_config(service, database_url, tls), "head")


async def upgrade_to_head_async(
    service: str, database_url: str, tls: DatabaseTls = NO_DATABASE_TLS
) -> None:
    """`upgrade_to_head` in a thread: a service's first use of the database at start-up, so a
    database that refuses it as configured (`DatabaseSetupError`) is said in one line."""
    try:
        await asyncio.to_thread(upgrade_to_head, service, database_url, tls)
    except Exception as error:
        cause = database_setup_error(error, database_url, tls)
        if cause is None:
            raise
        logger.critical("the %s service cannot use its database: %s", service, cause)
        raise cause from error


def _migrate(connection: Connection, metadata: MetaData) -> None:
    schema = metadata.schema
    assert schema is not None, "every service's MetaData names its schema"
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table_schema=schema,
        include_schemas=False,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online(metadata: MetaData) -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None
    tls = context.config.attributes.get(_TLS_ATTRIBUTE, NO_DATABASE_TLS)
    engine = create_async_engine(url, connect_args=tls.connect_args())
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_migrate, metadata)
    finally:
        await engine.dispose()


def run_migrations(metadata: MetaData) -> None:
    """The body of every service's `env.py` (online mode only: migrations run against a DB)."""
    asyncio.run(_run_online(metadata))
