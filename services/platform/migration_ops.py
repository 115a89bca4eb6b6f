"""Alembic operations shared by the services' migrations.

These are history, not models: every function here is called by migrations that have already run
somewhere, so what it emits is part of that history. Never change what an existing function
emits (no new column, type, default, name or argument meaning), not even to follow a change of the
code's tables: a change to a schema is a new migration, and a changed platform table is a new
`_v2` function here called by a new migration in every service that has the table. Refactoring
one is allowed only when a migrated database's `pg_dump --schema-only` stays byte-identical.
`tests/integration/test_migrations.py` fails when a service's tables in the code and in a migrated
database differ.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# For downgrades: dropped in this order (the reverse of creation).
OUTBOX_TABLES_V1 = ("idempotency_keys", "outbox")
CONSUMER_TABLES_V1 = ("parked_events", "aggregate_versions", "consumer_positions", "inbox")


def timestamp(
    name: str, *, nullable: bool = False, now_by_default: bool = False
) -> sa.Column[object]:
    """A `timestamp with time zone` column, required unless `nullable`, defaulting to `now()` in
    the database if `now_by_default`.

    Frozen: historical migrations build their columns with it, so it must keep emitting exactly
    this column for the same arguments.
    """
    server_default = sa.func.now() if now_by_default else None
    return sa.Column(
        name, sa.DateTime(timezone=True), nullable=nullable, server_default=server_default
    )


def created_at() -> sa.Column[object]:
    """A required `created_at` set by the database when the row is inserted (frozen, as above)."""
    return timestamp("created_at", now_by_default=True)


def create_partial_index(
    schema: str, name: str, table: str, columns: list[str], where: str
) -> None:
    """An index of the rows of `table` for which the SQL condition `where` holds.

    Frozen: historical migrations create their partial indexes with it, so it must keep emitting
    exactly this index for the same arguments.
    """
    op.create_index(name, table, columns, schema=schema, postgresql_where=sa.text(where))


def create_outbox_tables_v1(schema: str) -> None:
    """`outbox_table` (events written with the change that caused them) and `idempotency_table`."""
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.Uuid(), nullable=False, unique=True),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("message_key", sa.LargeBinary(), nullable=False),
        sa.Column("aggregate_id", sa.Uuid(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        created_at(),
        timestamp("published_at", nullable=True),
        schema=schema,
    )
    create_partial_index(schema, "outbox_unsent", "outbox", ["id"], "published_at IS NULL")
    op.create_table(
        "idempotency_keys",
        sa.Column("organisation_id", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.Text(), nullable=False),
        sa.Column("status_code", sa.Integer()),
        sa.Column("response", postgresql.JSONB()),
        created_at(),
        sa.PrimaryKeyConstraint("organisation_id", "idempotency_key"),
        schema=schema,
    )


def create_consumer_tables_v1(schema: str) -> None:
    """`consumer_tables`: the inbox, stored positions, aggregate versions and parked events."""
    op.create_table(
        "inbox",
        sa.Column("event_id", sa.Uuid(), primary_key=True),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        timestamp("received_at", nullable=True, now_by_default=True),
        schema=schema,
    )
    op.create_table(
        "consumer_positions",
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("topic", "partition"),
        schema=schema,
    )
    op.create_table(
        "aggregate_versions",
        sa.Column("aggregate_id", sa.Uuid(), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        schema=schema,
    )
    op.create_table(
        "parked_events",
        sa.Column("event_id", sa.Uuid(), primary_key=True),
        sa.Column("aggregate_id", sa.Uuid(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        timestamp("parked_at", nullable=True, now_by_default=True),
        schema=schema,
    )
    op.create_index(
        "parked_events_by_aggregate", "parked_events", ["aggregate_id", "sequence"], schema=schema
    )


def drop_tables(schema: str, *tables: str) -> None:
    """Drop `tables` of `schema` in the order given (frozen, as above)."""
    for table in tables:
        op.drop_table(table, schema=schema)
