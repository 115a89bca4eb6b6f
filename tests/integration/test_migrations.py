"""Each service's migrations build exactly the tables its code uses, and undo cleanly."""

import asyncio
import importlib
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, inspect
from sqlalchemy.engine import Connection

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
