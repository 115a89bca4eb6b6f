"""The provider schema: settings, vacancies, placements, the outbox and idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from services.platform.migration_ops import (
    OUTBOX_TABLES_V1,
    create_outbox_tables_v1,
    create_partial_index,
    drop_tables,
    timestamp,
)

revision = "0001"
down_revision = None

SCHEMA = "provider"


def upgrade() -> None:
    op.create_table(
        "settings",
        sa.Column("setting_id", sa.Uuid(), primary_key=True),
        sa.Column("provider_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("placement_type", sa.Text(), nullable=False),
        sa.Column("registered_places", sa.Integer(), nullable=False),
        sa.Column("ofsted_rating", sa.Text(), nullable=False),
        sa.Column("age_min", sa.Integer(), nullable=False),
        sa.Column("age_max", sa.Integer(), nullable=False),
        sa.Column("sexes_accepted", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("needs_met", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("postcode_district", sa.Text(), nullable=False),
        sa.Column("authority_code", sa.Text(), nullable=False),
        sa.Column("closed_on", sa.Date()),
        sa.Column("version", sa.Integer(), nullable=False),
        timestamp("registered_at"),
        timestamp("updated_at"),
        schema=SCHEMA,
    )
    op.create_index(
        "settings_by_provider", "settings", ["provider_id", "registered_at"], schema=SCHEMA
    )

    op.create_table(
        "vacancies",
        sa.Column("vacancy_id", sa.Uuid(), primary_key=True),
        sa.Column(
            "setting_id",
            sa.Uuid(),
            sa.ForeignKey(f"{SCHEMA}.settings.setting_id"),
            nullable=False,
        ),
        sa.Column("provider_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("beds", sa.Integer(), nullable=False),
        sa.Column("available_from", sa.Date(), nullable=False),
        sa.Column("age_min", sa.Integer()),
        sa.Column("age_max", sa.Integer()),
        sa.Column("sexes_accepted", postgresql.ARRAY(sa.Text())),
        sa.Column("needs_met", postgresql.ARRAY(sa.Text())),
        sa.Column("withdrawal_reason", sa.Text()),
        timestamp("posted_at"),
        timestamp("last_confirmed_at"),
        timestamp("ended_at", nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        schema=SCHEMA,
    )
    op.create_index("vacancies_by_setting", "vacancies", ["setting_id", "status"], schema=SCHEMA)
    op.create_index(
        "vacancies_by_provider", "vacancies", ["provider_id", "posted_at"], schema=SCHEMA
    )
    create_partial_index(
        SCHEMA,
        "vacancies_open_by_confirmation",
        "vacancies",
        ["last_confirmed_at"],
        "status = 'open'",
    )

    op.create_table(
        "placements",
        sa.Column("placement_id", sa.Uuid(), primary_key=True),
        sa.Column(
            "setting_id",
            sa.Uuid(),
            sa.ForeignKey(f"{SCHEMA}.settings.setting_id"),
            nullable=False,
        ),
        sa.Column("provider_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("placing_authority_code", sa.Text(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("beds", sa.Integer(), nullable=False),
        sa.Column("vacancy_id", sa.Uuid()),
        sa.Column("end_date", sa.Date()),
        sa.Column("end_reason", sa.Text()),
        timestamp("recorded_at"),
        timestamp("ended_at", nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        schema=SCHEMA,
    )
    op.create_index("placements_by_setting", "placements", ["setting_id", "status"], schema=SCHEMA)
    op.create_index(
        "placements_by_provider", "placements", ["provider_id", "recorded_at"], schema=SCHEMA
    )

    create_outbox_tables_v1(SCHEMA)


def downgrade() -> None:
    drop_tables(SCHEMA, *OUTBOX_TABLES_V1, "placements", "vacancies", "settings")
