"""Placement requests sent to the provider, and the referral.events consumer's tables.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
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

revision = "0003"
down_revision = "0002"

SCHEMA = "provider"


def _reference(table: str, column: str) -> sa.Column[object]:
    """A required column naming a row of this schema's `table` by its key of the same name."""
    return sa.Column(column, sa.Uuid(), sa.ForeignKey(f"{SCHEMA}.{table}.{column}"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column("request_id", sa.Uuid(), primary_key=True),
        sa.Column("referral_id", sa.Uuid(), nullable=False),
        sa.Column("authority_code", sa.Text(), nullable=False),
        _reference("vacancies", "vacancy_id"),
        _reference("settings", "setting_id"),
        sa.Column("provider_id", sa.Text(), nullable=False),
        sa.Column("age", sa.Integer(), nullable=False),
        sa.Column("sex", sa.Text(), nullable=False),
        sa.Column("sibling_group_size", sa.Integer(), nullable=False),
        sa.Column("needs", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("home_postcode_district", sa.Text(), nullable=False),
        sa.Column("needed_by", sa.Date(), nullable=False),
        sa.Column("urgency", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        timestamp("requested_at"),
        sa.Column("offered_beds", sa.Integer()),
        timestamp("offer_expires_at", nullable=True),
        sa.Column("weekly_fee_gbp", sa.Float()),
        sa.Column("decline_reason", sa.Text()),
        sa.Column("withdrawal_reason", sa.Text()),
        sa.Column("offer_withdrawal_reason", sa.Text()),
        timestamp("answered_at", nullable=True),
        sa.Column("placement_id", sa.Uuid()),
        timestamp("updated_at"),
        schema=SCHEMA,
    )
    op.create_index(
        "requests_by_provider", "requests", ["provider_id", "requested_at"], schema=SCHEMA
    )
    op.create_index("requests_by_vacancy", "requests", ["vacancy_id", "status"], schema=SCHEMA)
    create_partial_index(
        SCHEMA, "offers_open_by_expiry", "requests", ["offer_expires_at"], "status = 'offered'"
    )
    create_consumer_tables_v1(SCHEMA)


def downgrade() -> None:
    drop_tables(SCHEMA, *CONSUMER_TABLES_V1, "requests")
