"""Each service's migrations build exactly the tables its code uses, and undo cleanly."""

import asyncio
import importlib
from typing import Any
from uuid import uuid4

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection

from services.alerting.shards import shard_of
from services.platform.database import create_engine
from services.platform.migrations import alembic_config, upgrade_to_head_async

pytestmark = pytest.mark.postgres

SERVICES = ("provider", "authority", "ledger", "alerting")
VERSION_TABLE = "alembic_version"


def metadata_of(service: str) -> MetaData:
    metadata: MetaData = importlib.import_module(f"services.{service}.tables").METADATA
    return metadata


def differences(connection: Connection, metadata: MetaData) -> list[Any]:
    """What autogenerate would write to bring the database to the code's tables (types too)."""

    def in_the_service_schema(name: str | None, kind: str, _parent: object) -> bool:
        if kind == "schema":
            return name == metadata.schema
        return not (kind == "table" and name == VERSION_TABLE)

    context = MigrationContext.configure(
        connection,
        opts={"include_schemas": True, "include_name": in_the_service_schema, "compare_type": True},
    )
    return list(compare_metadata(context, metadata))


def tables_in(connection: Connection, schema: str) -> set[str]:
    return set(inspect(connection).get_table_names(schema=schema)) - {VERSION_TABLE}


@pytest.mark.parametrize("service", SERVICES)
async def test_the_migrated_schema_is_the_one_the_code_uses_and_downgrades_to_nothing(
    empty_database_url, service
):
    metadata = metadata_of(service)
    assert metadata.schema is not None
    engine = create_engine(empty_database_url)
    try:
        await upgrade_to_head_async(service, empty_database_url)
        async with engine.connect() as connection:
            assert await connection.run_sync(differences, metadata) == []
            assert await connection.run_sync(tables_in, metadata.schema) == {
                table.name for table in metadata.tables.values()
            }

        # Alembic's env.py runs its own event loop, so it cannot run on this one.
        config = alembic_config(service, empty_database_url)
        await asyncio.to_thread(command.downgrade, config, "base")
        async with engine.connect() as connection:
            assert await connection.run_sync(tables_in, metadata.schema) == set()

        await upgrade_to_head_async(service, empty_database_url)
        async with engine.connect() as connection:
            assert await connection.run_sync(differences, metadata) == []
    finally:
        await engine.dispose()


async def test_alerting_state_kept_before_the_shards_is_split_into_them(empty_database_url):
    """0008: a referral and its alert go to the shard of the referral's partition; every shard gets
    a copy of each setting, vacancy and hold and of provider.events' inbox ids and positions."""
    config = alembic_config("alerting", empty_database_url)
    await asyncio.to_thread(command.upgrade, config, "0007")
    referral_id, vacancy_id, setting_id, event_id = uuid4(), uuid4(), uuid4(), uuid4()
    engine = create_engine(empty_database_url)
    try:
        async with engine.begin() as connection:
            for statement, values in (
                (
                    (
                        "INSERT INTO alerting.referrals"
                        " (referral_id, authority_code, state, is_open)"
                        " VALUES (:id, 'E08000014', '{}', true)"
                    ),
                    {"id": referral_id},
                ),
                (
                    (
                        "INSERT INTO alerting.settings (setting_id, state, is_open)"
                        " VALUES (:id, '{}', true)"
                    ),
                    {"id": setting_id},
                ),
                (
                    (
                        'INSERT INTO alerting.inbox (event_id, topic, partition, "offset")'
                        " VALUES (:id, 'p.provider.events', 2, 7)"
                    ),
                    {"id": event_id},
                ),
                (
                    (
                        "INSERT INTO alerting.consumer_positions (topic, partition, next_offset)"
                        " VALUES ('p.provider.events', 2, 8), ('p.referral.events', 4, 3)"
                    ),
                    {},
                ),
                (
                    (
                        "INSERT INTO alerting.aggregate_versions (aggregate_id, version)"
                        " VALUES (:referral, 2), (:setting, 5)"
                    ),
                    {"referral": referral_id, "setting": setting_id},
                ),
            ):
                await connection.execute(text(statement), values)
            await connection.execute(
                text(
                    "INSERT INTO alerting.alerts (alert_id, referral_id, vacancy_id, setting_id,"
                    " authority_code, status, placement_type, ofsted_rating, postcode_district,"
                    " beds, distance_miles, local, raised_at)"
                    " VALUES (:alert, :referral, :vacancy, :setting, 'E08000014', 'open',"
                    " 'childrens_home', 'good', 'L1', 1, 1.5, true, now())"
                ),
                {
                    "alert": uuid4(),
                    "referral": referral_id,
                    "vacancy": vacancy_id,
                    "setting": setting_id,
                },
            )
        await asyncio.to_thread(command.upgrade, config, "0008")
        async with engine.connect() as connection:

            async def values(sql: str) -> list[Any]:
                return [tuple(row) for row in (await connection.execute(text(sql))).all()]

            shard = shard_of(referral_id, 6)
            assert await values("SELECT shard FROM alerting.referrals") == [(shard,)]
            assert await values("SELECT shard FROM alerting.alerts") == [(shard,)]
            every = [(n,) for n in range(6)]
            assert await values("SELECT shard FROM alerting.settings ORDER BY shard") == every
            assert await values("SELECT shard FROM alerting.inbox ORDER BY shard") == every
            assert await values(
                "SELECT shard, topic, next_offset FROM alerting.consumer_positions"
                " ORDER BY topic, shard"
            ) == [(n, "p.provider.events", 8) for n in range(6)] + [(4, "p.referral.events", 3)]
            assert await values(
                "SELECT shard, version FROM alerting.aggregate_versions ORDER BY version, shard"
            ) == [(shard, 2)] + [(n, 5) for n in range(6)]
    finally:
        await engine.dispose()
