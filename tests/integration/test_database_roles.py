"""Least privilege: after `nearhome migrate --all` (as the schemas' owner), each service's runtime
role reaches its own schema and nothing else, and a service run as its role works end to end.

The roles are the local ones `nearhome infra up` creates (cluster-wide, with development
passwords); what each may do is granted per database, so this fresh database is the test's own.
"""

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest
from provider_fixtures import running_provider

from services.platform.migrate import default_role
from services.platform.migrations import asyncpg_url
from services.provider.tables import OUTBOX
from tools.supervisor.databases import runtime_url

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

NEARHOME = str(Path(sys.executable).with_name("nearhome"))
SERVICES = ("provider", "authority", "ledger", "alerting")


def migrate_all(database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NEARHOME, "migrate", "--all"],
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
async def migrated(fresh_database_url: str) -> str:
    """A fresh database after `nearhome migrate --all` as its owner."""
    done = migrate_all(fresh_database_url)
    assert done.returncode == 0, done.stdout + done.stderr
    return fresh_database_url


async def connect_as(database_url: str, service: str) -> asyncpg.Connection:
    """A connection as `service`'s runtime role (its local development password)."""
    return await asyncpg.connect(asyncpg_url(runtime_url(database_url, default_role(service))))


@pytest.fixture
async def roles(migrated: str) -> AsyncIterator[dict[str, asyncpg.Connection]]:
    connections = {service: await connect_as(migrated, service) for service in SERVICES}
    try:
        yield connections
    finally:
        for connection in connections.values():
            await connection.close()


async def test_the_ledgers_role_cannot_read_the_authoritys_audit_log(
    roles: dict[str, asyncpg.Connection],
) -> None:
    assert await roles["ledger"].fetchval("SELECT current_user") == "nearhome_ledger"
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
        await roles["ledger"].fetch("SELECT * FROM authority.audit_log")
    # The authority's own role reads it and appends to it, but never changes or deletes a row.
    authority = roles["authority"]
    await authority.execute(
        "INSERT INTO authority.audit_log (at, action, outcome) VALUES (now(), 'read', 'allowed')"
    )
    assert await authority.fetchval("SELECT count(*) FROM authority.audit_log") == 1
    for statement in (
        "DELETE FROM authority.audit_log",
        "UPDATE authority.audit_log SET role = 'x'",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await authority.execute(statement)


async def test_the_providers_role_cannot_write_the_ledgers_tables(
    roles: dict[str, asyncpg.Connection],
) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
        await roles["provider"].execute(
            'INSERT INTO ledger.inbox (event_id, topic, partition, "offset") '
            "VALUES (gen_random_uuid(), 'provider.events', 0, 0)"
        )
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await roles["provider"].execute("DELETE FROM ledger.consumer_positions")


@pytest.mark.parametrize("service", SERVICES)
async def test_each_role_reads_and_writes_its_own_tables_and_changes_no_schema(
    roles: dict[str, asyncpg.Connection], service: str
) -> None:
    own = roles[service]
    # Alerting's inbox is kept per shard; the others' have no shard.
    shard = (", shard", ", 0") if service == "alerting" else ("", "")
    event_id = uuid4()
    await own.execute(
        f'INSERT INTO {service}.inbox (event_id, topic, partition, "offset"{shard[0]}) '
        f"VALUES ($1, 'some.events', 0, 7{shard[1]})",
        event_id,
    )
    await own.execute(f'UPDATE {service}.inbox SET "offset" = 8 WHERE event_id = $1', event_id)
    assert await own.fetchval(f'SELECT "offset" FROM {service}.inbox') == 8
    await own.execute(f"DELETE FROM {service}.inbox WHERE event_id = $1", event_id)
    # Its schema's revision it reads (to check it is at head), but never writes.
    assert await own.fetchval(f"SELECT version_num FROM {service}.alembic_version")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await own.execute(f"DELETE FROM {service}.alembic_version")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await own.execute(f"CREATE TABLE {service}.scratch (id int)")
    # Nor any other service's schema.
    for other in SERVICES:
        if other != service:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await own.fetch(f"SELECT * FROM {other}.inbox")


async def test_migrating_again_changes_nothing_and_keeps_the_grants(migrated: str) -> None:
    again = migrate_all(migrated)
    assert again.returncode == 0, again.stderr
    for service in SERVICES:
        assert f"{service}: already at head" in again.stdout
    connection = await connect_as(migrated, "provider")
    try:
        assert await connection.fetchval("SELECT count(*) FROM provider.outbox") == 0
    finally:
        await connection.close()


async def test_the_provider_run_as_its_own_role_serves_a_write_end_to_end(
    migrated: str, topic_prefix: str
) -> None:
    as_provider = runtime_url(migrated, default_role("provider"))
    provider_id = f"roles-{uuid4().hex[:8]}"
    async with running_provider(as_provider, topic_prefix=topic_prefix) as provider:
        created = await provider.register_setting(provider_id)
        # Every connection the service holds to its database is its own role's.
        owner = await asyncpg.connect(asyncpg_url(migrated))
        try:
            users = {
                row["usename"]
                for row in await owner.fetch(
                    "SELECT usename FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            }
            rows = await owner.fetch(f"SELECT event_type, aggregate_id FROM provider.{OUTBOX.name}")
        finally:
            await owner.close()
    assert users == {"nearhome_provider"}, users
    assert [(row["event_type"], str(row["aggregate_id"])) for row in rows] == [
        ("SettingRegistered", created["setting_id"])
    ]
