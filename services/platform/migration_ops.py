"""Alembic operations shared by the services' migrations.

These are history, not models: every function and `SchemaOps` method here is called by migrations
that have already run somewhere, so what it emits is part of that history. Never change what an
existing one emits (no new column, type, default, name or argument meaning), not even to follow a
change of the code's tables: a change to a schema is a new migration, and a changed platform table
is a new `_v2` method here called by a new migration in every service that has the table.
Refactoring one is allowed only when a migrated database's `pg_dump --schema-only` stays
byte-identical. `tests/integration/test_migrations.py` fails when a service's tables in the code
and in a migrated database differ.
"""

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# For downgrades: dropped in this order (the reverse of creation).
OUTBOX_TABLES_V1 = ("idempotency_keys", "outbox")
CONSUMER_TABLES_V1 = ("parked_events", "aggregate_versions", "consumer_positions", "inbox")


class SchemaOps:
    """Alembic's operations on the tables of one schema, so that no call has to name it.

    Frozen, as above: each method emits exactly the `op` call it wraps, with `schema` set to this
    schema; historical migrations build their schema through it.
    """

    def __init__(self, schema: str) -> None:
        self.schema = schema

    def create_table(self, name: str, *items: sa.schema.SchemaItem) -> None:
        op.create_table(name, *items, schema=self.schema)

    def create_index(
        self,
        name: str,
        table: str,
        columns: list[str],
        *,
        unique: bool = False,
        where: str | None = None,
    ) -> None:
        """An index of `table`; if `where` is given, of the rows for which that SQL holds."""
        condition = None if where is None else sa.text(where)
        op.create_index(
            name, table, columns, unique=unique, schema=self.schema, postgresql_where=condition
        )

    def add_column(self, table: str, column: sa.Column[object]) -> None:
        op.add_column(table, column, schema=self.schema)

    def alter_column(self, table: str, column: str, *, nullable: bool) -> None:
        op.alter_column(table, column, nullable=nullable, schema=self.schema)

    def create_check_constraint(self, name: str, table: str, condition: str) -> None:
        op.create_check_constraint(name, table, condition, schema=self.schema)

    def drop_constraint(self, name: str, table: str) -> None:
        op.drop_constraint(name, table, schema=self.schema)

    def drop_index(self, name: str, table: str) -> None:
        op.drop_index(name, table_name=table, schema=self.schema)

    def drop_column(self, table: str, column: str) -> None:
        op.drop_column(table, column, schema=self.schema)

    def drop_tables(self, *tables: str) -> None:
        """Drop `tables` in the order given."""
        for table in tables:
            op.drop_table(table, schema=self.schema)

    def reference(self, table: str, column: str) -> sa.Column[object]:
        """A required column naming a row of this schema's `table` by its key of the same name."""
        return sa.Column(
            column, sa.Uuid(), sa.ForeignKey(f"{self.schema}.{table}.{column}"), nullable=False
        )

    def create_outbox_tables_v1(self) -> None:
        """`outbox_table` (events written with the change that caused them), `idempotency_table`."""
        self.create_table(
            "outbox",
            serial_key("id"),
            sa.Column("event_id", sa.Uuid(), nullable=False, unique=True),
            sa.Column("event_type", sa.Text(), nullable=False),
            sa.Column("topic", sa.Text(), nullable=False),
            sa.Column("message_key", sa.LargeBinary(), nullable=False),
            sa.Column("aggregate_id", sa.Uuid(), nullable=False),
            sa.Column("sequence", sa.Integer(), nullable=False),
            sa.Column("body", sa.LargeBinary(), nullable=False),
            created_at(),
            timestamp("published_at", nullable=True),
        )
        self.create_index("outbox_unsent", "outbox", ["id"], where="published_at IS NULL")
        self.create_table(
            "idempotency_keys",
            sa.Column("organisation_id", sa.Text(), nullable=False),
            sa.Column("idempotency_key", sa.Text(), nullable=False),
            sa.Column("request_hash", sa.Text(), nullable=False),
            sa.Column("status_code", sa.Integer()),
            sa.Column("response", postgresql.JSONB()),
            created_at(),
            sa.PrimaryKeyConstraint("organisation_id", "idempotency_key"),
        )

    def drop_outbox_tables_v1(self) -> None:
        """Undo `create_outbox_tables_v1`."""
        self.drop_tables(*OUTBOX_TABLES_V1)

    def create_consumer_tables_v1(self) -> None:
        """`consumer_tables`: the inbox, stored positions, aggregate versions and parked events."""
        self.create_table(
            "inbox",
            uuid_key("event_id"),
            sa.Column("topic", sa.Text(), nullable=False),
            sa.Column("partition", sa.Integer(), nullable=False),
            sa.Column("offset", sa.BigInteger(), nullable=False),
            timestamp("received_at", nullable=True, now_by_default=True),
        )
        self.create_table(
            "consumer_positions",
            sa.Column("topic", sa.Text(), nullable=False),
            sa.Column("partition", sa.Integer(), nullable=False),
            sa.Column("next_offset", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("topic", "partition"),
        )
        self.create_table(
            "aggregate_versions",
            uuid_key("aggregate_id"),
            sa.Column("version", sa.Integer(), nullable=False),
        )
        self.create_table(
            "parked_events",
            uuid_key("event_id"),
            sa.Column("aggregate_id", sa.Uuid(), nullable=False),
            sa.Column("sequence", sa.Integer(), nullable=False),
            sa.Column("body", sa.LargeBinary(), nullable=False),
            timestamp("parked_at", nullable=True, now_by_default=True),
        )
        self.create_index(
            "parked_events_by_aggregate", "parked_events", ["aggregate_id", "sequence"]
        )

    def create_retention_indexes_v1(self, *, outbox: bool, inbox: bool) -> None:
        """The indexes retention prunes by: of the outbox tables' (sent rows by when they were
        sent, idempotency keys by when they were claimed) if `outbox`, of the inbox's if
        `inbox`."""
        if outbox:
            self.create_index(
                "outbox_sent_at", "outbox", ["published_at"], where="published_at IS NOT NULL"
            )
            self.create_index("idempotency_keys_created_at", "idempotency_keys", ["created_at"])
        if inbox:
            self.create_index("inbox_received_at", "inbox", ["received_at"])

    def drop_retention_indexes_v1(self, *, outbox: bool, inbox: bool) -> None:
        """Undo `create_retention_indexes_v1`."""
        if outbox:
            self.drop_index("outbox_sent_at", "outbox")
            self.drop_index("idempotency_keys_created_at", "idempotency_keys")
        if inbox:
            self.drop_index("inbox_received_at", "inbox")

    def retention_indexes_steps_v1(
        self, *, outbox: bool, inbox: bool
    ) -> tuple[Callable[[], None], Callable[[], None]]:
        """A migration's `upgrade` and `downgrade` that only create and drop the retention
        indexes (`create_retention_indexes_v1`)."""
        return (
            lambda: self.create_retention_indexes_v1(outbox=outbox, inbox=inbox),
            lambda: self.drop_retention_indexes_v1(outbox=outbox, inbox=inbox),
        )

    def drop_consumer_tables_v1(self) -> None:
        """Undo `create_consumer_tables_v1`."""
        self.drop_tables(*CONSUMER_TABLES_V1)


def uuid_key(name: str) -> sa.Column[object]:
    """A `uuid` primary key column (frozen, as above)."""
    return sa.Column(name, sa.Uuid(), primary_key=True)


def serial_key(name: str) -> sa.Column[object]:
    """A `bigint` primary key the database numbers (`bigserial`; frozen, as above)."""
    return sa.Column(name, sa.BigInteger(), primary_key=True, autoincrement=True)


def match_terms_v1(age: type[sa.Integer], *, nullable: bool) -> tuple[sa.Column[object], ...]:
    """The terms a setting or vacancy is matched on, in this order: `age_min`, `age_max` (of type
    `age`), `sexes_accepted` and `needs_met` (text arrays); required unless `nullable`.

    Frozen, as above: provider's and authority's settings and vacancies were created with them.
    """
    return (
        sa.Column("age_min", age(), nullable=nullable),
        sa.Column("age_max", age(), nullable=nullable),
        sa.Column("sexes_accepted", postgresql.ARRAY(sa.Text()), nullable=nullable),
        sa.Column("needs_met", postgresql.ARRAY(sa.Text()), nullable=nullable),
    )


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
