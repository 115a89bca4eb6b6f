"""The platform's own tables as Alembic operations, for each service's migrations to call.

These are history, not models: each function creates the tables as they first shipped. Never edit
one; a change to a platform table is a new function here and a new migration in every service that
has the table. `tests/integration/test_migrations.py` fails when a service's tables in the code and
in a migrated database differ.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# For downgrades: dropped in this order (the reverse of creation).
OUTBOX_TABLES_V1 = ("idempotency_keys", "outbox")
CONSUMER_TABLES_V1 = ("parked_events", "aggregate_versions", "consumer_positions", "inbox")


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
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        schema=schema,
    )
    op.create_index(
        "outbox_unsent",
        "outbox",
        ["id"],
        schema=schema,
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("organisation_id", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.Text(), nullable=False),
        sa.Column("status_code", sa.Integer()),
        sa.Column("response", postgresql.JSONB()),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
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
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
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
        sa.Column("parked_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        schema=schema,
    )
    op.create_index(
        "parked_events_by_aggregate", "parked_events", ["aggregate_id", "sequence"], schema=schema
    )


def drop_tables(schema: str, *tables: str) -> None:
    for table in tables:
        op.drop_table(table, schema=schema)
