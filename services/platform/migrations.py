"""Alembic, one migration history per service, each in its own schema.

A service's `migrations/env.py` is two lines: it hands its MetaData to `run_migrations`. Its
version table is `<service>.alembic_version`, in the service's own schema.

In production the migrations are a step of their own (`nearhome migrate`, as the schemas' owner,
`services.platform.migrate`): a service only checks at start-up that its schema is at its head
(`prepare_schema`), reading the version table with its own, narrower role, and refuses to start
otherwise. In development (`NEARHOME_ENV=development`) it still migrates at start-up.
"""

import asyncio
import logging
from importlib.resources import files

import asyncpg
from alembic import command, context
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from services.platform.connections import NO_DATABASE_TLS, DatabaseTls, database_setup_error
from services.platform.environment import is_development

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
        _raise_if_refused(service, error, database_url, tls)
        raise


def _raise_if_refused(service: str, error: Exception, database_url: str, tls: DatabaseTls) -> None:
    """If `error` is the database refusing the service as configured (certificate, TLS, password),
    say so in one critical line and raise it as a `DatabaseSetupError`; else return."""
    cause = database_setup_error(error, database_url, tls)
    if cause is not None:
        logger.critical("the %s service cannot use its database: %s", service, cause)
        raise cause from error


class SchemaNotAtHeadError(RuntimeError):
    """The service's schema is not at the head of its migrations: `nearhome migrate` is due."""


def head_revision(service: str) -> str:
    """The head of `service`'s migrations, as shipped with this code."""
    head = ScriptDirectory.from_config(alembic_config(service, "postgresql://")).get_current_head()
    assert head is not None, f"the {service} service has migrations"
    return head


def is_known_revision(service: str, revision: str) -> bool:
    """Whether `revision` is one of `service`'s migrations (else the database is newer)."""
    try:
        found = ScriptDirectory.from_config(alembic_config(service, "postgresql://")).get_revision(
            revision
        )
    except CommandError:
        return False
    return found is not None


def asyncpg_url(database_url: str) -> str:
    """A SQLAlchemy URL (`postgresql+asyncpg://`) as plain asyncpg takes it."""
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def schema_revision(
    service: str, database_url: str, tls: DatabaseTls = NO_DATABASE_TLS
) -> str | None:
    """The revision `service`'s schema is at (its `alembic_version` row), None if it has none (no
    schema, no version table, or no row). Raises asyncpg's `InsufficientPrivilegeError` if the
    role in `database_url` may not read it."""
    connection = await asyncpg.connect(asyncpg_url(database_url), **tls.connect_args())
    try:
        revision: str | None = await connection.fetchval(
            f'SELECT version_num FROM "{service}".alembic_version'  # noqa: S608 - a service name
        )
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        return None
    finally:
        await connection.close()
    return revision


def not_at_head(service: str, current: str | None, head: str) -> str | None:
    """Why a schema at `current` will not do for this code (whose head is `head`), with what to
    run; None when it is at head."""
    if current == head:
        return None
    if current is None:
        return (
            f"the {service} schema has no migrations applied, not at head {head}: "
            f"run `nearhome migrate {service}`"
        )
    if not is_known_revision(service, current):
        return (
            f"the {service} schema is at {current}, which this version of the {service} service "
            f"does not know (its head is {head}): deploy the version that migrated it"
        )
    return (
        f"the {service} schema is at {current}, not at head {head}: "
        f"run `nearhome migrate {service}`"
    )


async def require_schema_at_head(
    service: str, database_url: str, tls: DatabaseTls = NO_DATABASE_TLS
) -> None:
    """Check, as the service's own role, that its schema is at head; else log one critical line
    and raise `SchemaNotAtHeadError` (or `DatabaseSetupError`, a database that refuses the
    connection as configured)."""
    head = head_revision(service)
    problem: str | None
    try:
        current = await schema_revision(service, database_url, tls)
    except asyncpg.InsufficientPrivilegeError as error:
        problem = (
            f"the {service} service's database role may not read {service}.alembic_version "
            f"({error}): run `nearhome migrate {service}`, which grants the role its schema"
        )
    except Exception as error:
        _raise_if_refused(service, error, database_url, tls)
        raise
    else:
        problem = not_at_head(service, current, head)
    if problem is not None:
        logger.critical("%s", problem)
        raise SchemaNotAtHeadError(problem)


async def prepare_schema(
    service: str, database_url: str, tls: DatabaseTls = NO_DATABASE_TLS
) -> None:
    """A service's first use of its database at start-up. In production, check that its schema
    is at head (`require_schema_at_head`): the migrations are `nearhome migrate`'s. In
    development, migrate it to head if it is not there yet, saying so."""
    if not is_development():
        await require_schema_at_head(service, database_url, tls)
        return
    head = head_revision(service)
    try:
        current = await schema_revision(service, database_url, tls)
    except asyncpg.InsufficientPrivilegeError:
        current = None  # the upgrade below says what is wrong
    except Exception as error:
        _raise_if_refused(service, error, database_url, tls)
        raise
    if current == head:
        return
    await upgrade_to_head_async(service, database_url, tls)
    logger.info(
        "migrated the %s schema from %s to head %s at start-up (development only: in production "
        "`nearhome migrate %s` does it)",
        service,
        current or "nothing",
        head,
        service,
    )


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
