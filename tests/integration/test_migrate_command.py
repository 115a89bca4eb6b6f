"""Migrations as a step: `nearhome migrate` says what it did and fails with a status and one line;
`nearhome serve` in production refuses a schema that is not at head, naming the command to run,
and starts once it has been run."""

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import pytest
from alembic import command
from common import free_port
from fresh import fresh_database
from identity_provider import IdentityProvider
from production_services import identity_environment, production_process

from services.platform.migrate import default_role
from services.platform.migrations import alembic_config
from tools.supervisor.databases import runtime_url

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

NEARHOME = str(Path(sys.executable).with_name("nearhome"))


@pytest.fixture
async def empty_database_url(_real_infrastructure: None) -> AsyncIterator[str]:
    """A new database with no schema in it (`empty_database_url` may come migrated)."""
    async with fresh_database() as url:
        yield url


def nearhome(database_url: str, *args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NEARHOME, *args],
        env={**os.environ, "DATABASE_URL": database_url, **variables},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_migrate_says_each_services_revisions_and_exits_0_then_again_at_head(
    empty_database_url: str,
) -> None:
    first = nearhome(empty_database_url, "migrate", "--all")
    again = nearhome(empty_database_url, "migrate", "ledger")

    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        f"{service}: migrated from nothing to head {head}; role nearhome_{service} granted the "
        f"{service} schema"
        for service, head in (
            ("provider", "0004"),
            ("authority", "0003"),
            ("ledger", "0003"),
            ("alerting", "0008"),
        )
    ]
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        "ledger: already at head 0003; role nearhome_ledger granted the ledger schema"
    ]


async def test_migrate_refuses_what_it_cannot_do_with_a_status_and_one_line(
    empty_database_url: str,
) -> None:
    missing = f"nearhome_missing_{uuid4().hex[:8]}"
    unknown = nearhome(empty_database_url, "migrate", "billing")
    nothing = nearhome(empty_database_url, "migrate")
    both = nearhome(empty_database_url, "migrate", "--all", "--role", missing)
    no_role = nearhome(empty_database_url, "migrate", "provider", "--role", missing)
    no_role_setting = nearhome(
        empty_database_url, "migrate", "--all", AUTHORITY_DATABASE_ROLE=missing
    )
    wrong_password = nearhome(
        empty_database_url.replace("nearhome:nearhome@", "nearhome:wrong@", 1), "migrate", "ledger"
    )

    assert unknown.returncode == 2
    assert "'billing' is not one of" in unknown.stderr
    assert (nothing.returncode, nothing.stderr) == (2, "error: name one service, or --all\n")
    assert both.returncode == 2
    assert both.stderr.startswith("error: --role names one service's role")
    assert no_role.returncode == 2
    assert no_role.stderr == (
        f"error: provider: the role {missing} does not exist: create it first (CREATE ROLE "
        f"{missing} LOGIN PASSWORD '…'), or name another with PROVIDER_DATABASE_ROLE\n"
    )
    assert no_role.stdout == ""  # nothing migrated before it found out
    # --all stops at the first service that fails, having said what it did before.
    assert no_role_setting.returncode == 2
    assert no_role_setting.stdout.startswith("provider: migrated from nothing to head 0004")
    assert f"authority: the role {missing} does not exist" in no_role_setting.stderr
    assert wrong_password.returncode == 1
    assert wrong_password.stderr.startswith("error: ledger: cannot connect as the owner:")
    assert "check the password in DATABASE_URL" in wrong_password.stderr


async def test_serve_in_production_refuses_a_schema_behind_head_until_it_is_migrated(
    empty_database_url: str, topic_prefix: str, identity_provider: IdentityProvider, tmp_path: Path
) -> None:
    # Migrated and granted, then one revision back, as a deployment of newer code finds it.
    assert nearhome(empty_database_url, "migrate", "provider").returncode == 0
    await asyncio.to_thread(command.downgrade, alembic_config("provider", empty_database_url), "-1")
    provider = production_process(
        "provider",
        runtime_url(empty_database_url, default_role("provider")),
        topic_prefix,
        tmp_path / "provider.log",
        identity_provider,
    )

    provider.start()
    assert provider.process is not None
    refused = await asyncio.to_thread(provider.process.wait, 60)
    log = provider.log.read_text()
    migrated = nearhome(empty_database_url, "migrate", "provider")
    provider.start()
    try:
        await provider.until_answering("/ready")
    finally:
        provider.stop()

    assert refused == 2, log
    critical = [line for line in log.splitlines() if '"CRITICAL"' in line]
    assert len(critical) == 1, log
    assert (
        "the provider schema is at 0003, not at head 0004: run `nearhome migrate provider`"
        in critical[0]
    )
    assert "Uvicorn running" not in log
    assert migrated.stdout == (
        "provider: migrated from 0003 to head 0004; role nearhome_provider granted the provider "
        "schema\n"
    )


async def test_serve_in_production_refuses_a_database_never_migrated(
    empty_database_url: str, topic_prefix: str, identity_provider: IdentityProvider, tmp_path: Path
) -> None:
    ledger = production_process(
        "ledger", empty_database_url, topic_prefix, tmp_path / "ledger.log", identity_provider
    )
    ledger.start()
    assert ledger.process is not None
    status = await asyncio.to_thread(ledger.process.wait, 60)
    log = ledger.log.read_text()

    assert status == 2, log
    assert (
        "the ledger schema has no migrations applied, not at head 0003: run `nearhome migrate "
        "ledger`" in log
    )


async def test_run_in_production_starts_nothing_unless_every_schema_is_at_head(
    empty_database_url: str, identity_provider: IdentityProvider
) -> None:
    production = {
        "NEARHOME_ENV": "production",
        **identity_environment(identity_provider),
        "PROVIDER_PORT": str(free_port()),
        "LEDGER_PORT": str(free_port()),
    }
    assert nearhome(empty_database_url, "migrate", "provider").returncode == 0

    refused = nearhome(
        empty_database_url, "run", "--no-infra", "--only", "provider,ledger", **production
    )

    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert (
        "error: the services cannot start: the ledger schema has no migrations applied, not at "
        "head 0003: run `nearhome migrate ledger`" in refused.stdout
    )
    assert "started provider" not in refused.stdout
