"""`nearhome migrate`: a service's migrations, applied as the owner of its schema, and its runtime
role granted what it needs there, and nothing elsewhere (README, "Production").

Each service runs as a role of its own (`<SERVICE>_DATABASE_ROLE`, `nearhome_<service>` by
default) that can reach only its own schema: USAGE on it, SELECT/INSERT/UPDATE/DELETE on its
tables (SELECT only on its `alembic_version`, and SELECT/INSERT only on the authority's
append-only audit log), USAGE/SELECT on its sequences, and the same on the tables and sequences
its owner creates there later (default privileges). No CREATE anywhere: a service that would
change its schema at run time fails. The operator creates the roles; this grants them, every
time it runs (granting is idempotent).
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from pydantic import Field

from services.platform.connections import DatabaseTls, database_setup_error
from services.platform.migrations import (
    asyncpg_url,
    head_revision,
    schema_revision,
    upgrade_to_head,
)
from services.platform.settings import SERVICE_SCHEMAS, CommonSettings

# Tables a service's role may read and append to, but never change or delete from.
APPEND_ONLY: dict[str, tuple[str, ...]] = {"authority": ("audit_log",)}
VERSION_TABLE = "alembic_version"

Progress = Callable[[str], None]


def default_role(service: str) -> str:
    return f"nearhome_{service}"


class MigrateSettings(CommonSettings):
    """Where `nearhome migrate` connects (`owner_database_url`) and whom it grants each schema."""

    provider_database_role: str = Field(default=default_role("provider"), min_length=1)
    authority_database_role: str = Field(default=default_role("authority"), min_length=1)
    ledger_database_role: str = Field(default=default_role("ledger"), min_length=1)
    alerting_database_role: str = Field(default=default_role("alerting"), min_length=1)

    def role_of(self, service: str) -> str:
        role: str = getattr(self, f"{service}_database_role")
        return role


class MigrateError(Exception):
    """A migration that cannot be done as configured; the message says what to do."""


class RoleMissingError(MigrateError):
    pass


@dataclass(frozen=True, slots=True)
class Migrated:
    service: str
    role: str
    before: str | None
    head: str

    def describe(self) -> str:
        change = (
            f"already at head {self.head}"
            if self.before == self.head
            else f"migrated from {self.before or 'nothing'} to head {self.head}"
        )
        return f"{self.service}: {change}; role {self.role} granted the {self.service} schema"


def development_password(role: str) -> str:
    """The password `nearhome infra up` gives a runtime role in the local database (only there)."""
    return role


def create_role_sql(role: str) -> str:
    """What an operator runs to create a service's runtime role."""
    return f"CREATE ROLE {role} LOGIN PASSWORD '…'"


async def _format(connection: asyncpg.Connection, template: str, *values: str) -> str:
    """SQL with identifiers quoted by the server's own `format()` (DDL takes no parameters)."""
    placeholders = ", ".join(f"${index}::text" for index in range(2, len(values) + 2))
    statement: str = await connection.fetchval(
        f"SELECT format($1::text, {placeholders})", template, *values
    )
    return statement


async def grant_runtime_role(connection: asyncpg.Connection, service: str, role: str) -> None:
    """Give `role` what the `service` needs in its schema (and only there), as its owner."""
    statements = [
        ("GRANT USAGE ON SCHEMA %I TO %I", service, role),
        ("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO %I", service, role),
        ("REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON %I.%I FROM %I", service, VERSION_TABLE, role),
        ("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO %I", service, role),
        (
            (
                "ALTER DEFAULT PRIVILEGES IN SCHEMA %I "
                "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %I"
            ),
            service,
            role,
        ),
        (
            "ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT ON SEQUENCES TO %I",
            service,
            role,
        ),
    ]
    statements += [
        ("REVOKE UPDATE, DELETE, TRUNCATE ON %I.%I FROM %I", service, table, role)
        for table in APPEND_ONLY.get(service, ())
    ]
    async with connection.transaction():
        for template, *values in statements:
            await connection.execute(await _format(connection, template, *values))


async def migrate_service(service: str, owner_url: str, tls: DatabaseTls, role: str) -> Migrated:
    """Upgrade `service`'s schema to head as the owner in `owner_url`, then grant `role`."""
    if service not in SERVICE_SCHEMAS:
        raise MigrateError(f"unknown service {service!r}; choose from {', '.join(SERVICE_SCHEMAS)}")
    head = head_revision(service)
    try:
        connection = await asyncpg.connect(asyncpg_url(owner_url), **tls.connect_args())
    except Exception as error:
        cause = database_setup_error(error, owner_url, tls)
        raise MigrateError(f"{service}: cannot connect as the owner: {cause or error}") from error
    try:
        if not await connection.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
            raise RoleMissingError(
                f"{service}: the role {role} does not exist: create it first "
                f"({create_role_sql(role)}), or name another with "
                f"{service.upper()}_DATABASE_ROLE"
            )
        before = await schema_revision(service, owner_url, tls)
        if before != head:
            await asyncio.to_thread(upgrade_to_head, service, owner_url, tls)
        try:
            await grant_runtime_role(connection, service, role)
        except asyncpg.InsufficientPrivilegeError as error:
            raise MigrateError(
                f"{service}: the owner may not grant {role} the {service} schema ({error}): "
                "NEARHOME_MIGRATE_DATABASE_URL must name the role that owns it"
            ) from error
    finally:
        await connection.close()
    return Migrated(service, role, before, head)


async def migrate(
    services: tuple[str, ...],
    settings: MigrateSettings,
    progress: Progress,
    *,
    role: str | None = None,
) -> list[Migrated]:
    """Migrate `services` in turn (stopping at the first that fails), saying each one's change;
    `role` overrides the settings' role (for one service)."""
    done = []
    for service in services:
        migrated = await migrate_service(
            service,
            settings.owner_database_url,
            settings.database_tls,
            role or settings.role_of(service),
        )
        progress(migrated.describe())
        done.append(migrated)
    return done
