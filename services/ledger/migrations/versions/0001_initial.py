"""The ledger schema: record state, capacity history, and the consumer's inbox and positions.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from services.platform.migration_ops import (
    CONSUMER_TABLES_V1,
    create_consumer_tables_v1,
    create_partial_index,
    drop_tables,
    timestamp,
)

revision = "0001"
down_revision = None

SCHEMA = "ledger"


def _records() -> None:
    op.create_table(
        "settings",
        sa.Column("setting_id", sa.Uuid(), primary_key=True),
        sa.Column("provider_id", sa.Text(), nullable=False),
        sa.Column("placement_type", sa.Text(), nullable=False),
        sa.Column("registered_places", sa.Integer(), nullable=False),
        sa.Column("ofsted_rating", sa.Text(), nullable=False),
        sa.Column("postcode_district", sa.Text(), nullable=False),
        sa.Column("authority_code", sa.Text(), nullable=False),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "settings_by_council", "settings", ["authority_code", "placement_type"], schema=SCHEMA
    )
    op.create_table(
        "vacancies",
        sa.Column("vacancy_id", sa.Uuid(), primary_key=True),
        sa.Column("setting_id", sa.Uuid(), nullable=False),
        sa.Column("beds", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        timestamp("posted_at"),
        timestamp("last_confirmed_at"),
        schema=SCHEMA,
    )
    create_partial_index(
        SCHEMA, "vacancies_open_by_setting", "vacancies", ["setting_id"], "status = 'open'"
    )
    op.create_table(
        "placements",
        sa.Column("placement_id", sa.Uuid(), primary_key=True),
        sa.Column("setting_id", sa.Uuid(), nullable=False),
        sa.Column("placing_authority_code", sa.Text(), nullable=False),
        sa.Column("beds", sa.Integer(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        schema=SCHEMA,
    )
    create_partial_index(
        SCHEMA, "placements_active_by_setting", "placements", ["setting_id"], "is_active"
    )
    op.create_table(
        "referrals",
        sa.Column("referral_id", sa.Uuid(), primary_key=True),
        sa.Column("authority_code", sa.Text(), nullable=False),
        sa.Column("placement_types", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        schema=SCHEMA,
    )


def _history() -> None:
    op.create_table(
        "capacity_history",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        timestamp("taken_at"),
        sa.Column("authority_code", sa.Text(), nullable=False),
        sa.Column("placement_type", sa.Text(), nullable=False),
        *(
            sa.Column(name, sa.Integer(), nullable=False)
            for name in (
                "registered_places",
                "occupied",
                "vacant",
                "offered",
                "stale_vacancies",
                "open_referrals",
            )
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "capacity_history_by_key",
        "capacity_history",
        ["authority_code", "placement_type", "taken_at"],
        schema=SCHEMA,
    )
    op.create_index("capacity_history_by_time", "capacity_history", ["taken_at"], schema=SCHEMA)
    op.create_table(
        "flow_history",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        timestamp("taken_at"),
        sa.Column("authority_code", sa.Text(), nullable=False),
        sa.Column("placing_authority_code", sa.Text(), nullable=False),
        sa.Column("placement_type", sa.Text(), nullable=False),
        sa.Column("beds", sa.Integer(), nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "flow_history_by_key",
        "flow_history",
        ["authority_code", "placing_authority_code", "placement_type", "taken_at"],
        schema=SCHEMA,
    )
    op.create_index("flow_history_by_time", "flow_history", ["taken_at"], schema=SCHEMA)


def upgrade() -> None:
    _records()
    _history()
    create_consumer_tables_v1(SCHEMA)


def downgrade() -> None:
    drop_tables(
        SCHEMA,
        *CONSUMER_TABLES_V1,
        "flow_history",
        "capacity_history",
        "referrals",
        "placements",
        "vacancies",
        "settings",
    )
