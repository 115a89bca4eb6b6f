"""What `nearhome serve` says of a schema not at head, and whom `nearhome migrate` grants."""

import pytest

from services.platform.migrate import Migrated, MigrateSettings
from services.platform.migrations import head_revision, not_at_head
from tools.supervisor.databases import runtime_url


def test_a_schema_at_head_will_do_and_any_other_says_what_to_run() -> None:
    head = head_revision("provider")

    assert head == "0004"
    assert not_at_head("provider", head, head) is None
    assert not_at_head("provider", "0003", head) == (
        "the provider schema is at 0003, not at head 0004: run `nearhome migrate provider`"
    )
    assert not_at_head("provider", None, head) == (
        "the provider schema has no migrations applied, not at head 0004: "
        "run `nearhome migrate provider`"
    )
    newer = not_at_head("provider", "0099", head)
    assert newer is not None
    assert "does not know" in newer
    assert "nearhome migrate" not in newer  # migrating cannot help: the code is older


def test_each_service_has_its_own_role_by_default_and_a_setting_names_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEDGER_DATABASE_ROLE", "exchange_ledger")
    monkeypatch.setenv("NEARHOME_MIGRATE_DATABASE_URL", "postgresql+asyncpg://owner:pw@db/nh")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://svc:pw@db/nh")
    settings = MigrateSettings()

    assert [settings.role_of(s) for s in ("provider", "authority", "ledger", "alerting")] == [
        "nearhome_provider",
        "nearhome_authority",
        "exchange_ledger",
        "nearhome_alerting",
    ]
    assert settings.owner_database_url == "postgresql+asyncpg://owner:pw@db/nh"
    monkeypatch.delenv("NEARHOME_MIGRATE_DATABASE_URL")
    assert MigrateSettings().owner_database_url == "postgresql+asyncpg://svc:pw@db/nh"


def test_the_local_runtime_url_is_the_owners_with_the_roles_name_and_password() -> None:
    assert (
        runtime_url("postgresql+asyncpg://nearhome:nearhome@127.0.0.1:5432/x", "nearhome_ledger")
        == "postgresql+asyncpg://nearhome_ledger:nearhome_ledger@127.0.0.1:5432/x"
    )


def test_a_migration_says_its_revisions() -> None:
    assert Migrated("ledger", "r", "0002", "0003").describe() == (
        "ledger: migrated from 0002 to head 0003; role r granted the ledger schema"
    )
    assert Migrated("ledger", "r", "0003", "0003").describe() == (
        "ledger: already at head 0003; role r granted the ledger schema"
    )
