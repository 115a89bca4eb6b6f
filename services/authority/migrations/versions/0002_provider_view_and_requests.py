"""Placement requests, the view of the provider side, and the consumer's inbox and positions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

from services.platform.migration_ops import (
    CONSUMER_TABLES_V1,
    create_consumer_tables_v1,
    drop_tables,
    timestamp,
)

revision = "0002"
down_revision = "0001"

SCHEMA = "authority"


def _create_placement_requests() -> None:
    op.create_table(
        "placement_requests",
        sa.Column("request_id", sa.Uuid(), primary_key=True),
        sa.Column("referral_id", sa.Uuid(), nullable=False),
        sa.Column("authority_code", sa.Text(), nullable=False),
        sa.Column("vacancy_id", sa.Uuid(), nullable=False),
        sa.Column("setting_id", sa.Uuid(), nullable=False),
        sa.Column("provider_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        timestamp("requested_at"),
        timestamp("updated_at"),
        sa.Column("offered_beds", sa.Integer()),
        timestamp("offer_expires_at", nullable=True),
        sa.Column("weekly_fee_gbp", sa.Float()),
        sa.Column("decline_reason", sa.Text()),
        sa.Column("offer_withdrawal_reason", sa.Text()),
        sa.Column("withdrawal_reason", sa.Text()),
        sa.Column("placement_id", sa.Uuid()),
        schema=SCHEMA,
    )
    op.create_index(
        "placement_requests_by_referral",
        "placement_requests",
        ["referral_id", "requested_at"],
        schema=SCHEMA,
    )
    op.create_index(
        "placement_requests_one_open_per_vacancy",
        "placement_requests",
        ["referral_id", "vacancy_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("status IN ('requested', 'offered', 'accepted')"),
    )


def _create_provider_view() -> None:
    op.create_table(
        "provider_settings",
        sa.Column("setting_id", sa.Uuid(), primary_key=True),
        sa.Column("provider_id", sa.Text(), nullable=False),
        sa.Column("placement_type", sa.Text(), nullable=False),
        sa.Column("registered_places", sa.Integer(), nullable=False),
        sa.Column("ofsted_rating", sa.Text(), nullable=False),
        sa.Column("age_min", sa.SmallInteger(), nullable=False),
        sa.Column("age_max", sa.SmallInteger(), nullable=False),
        sa.Column("sexes_accepted", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column("needs_met", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column("postcode_district", sa.Text(), nullable=False),
        sa.Column("authority_code", sa.Text(), nullable=False),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        sa.Column("name", sa.Text()),
        sa.Column("ofsted_urn", sa.Text()),
        sa.Column("referrals_email", sa.Text()),
        sa.Column("referrals_phone", sa.Text()),
        sa.Column("description", sa.Text()),
        schema=SCHEMA,
    )
    op.create_table(
        "setting_occupancy",
        sa.Column("setting_id", sa.Uuid(), primary_key=True),
        sa.Column("occupied_beds", sa.Integer(), nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "provider_vacancies",
        sa.Column("vacancy_id", sa.Uuid(), primary_key=True),
        sa.Column("setting_id", sa.Uuid(), nullable=False),
        sa.Column("provider_id", sa.Text(), nullable=False),
        sa.Column("beds", sa.Integer(), nullable=False),
        sa.Column("available_from", sa.Date(), nullable=False),
        sa.Column("age_min", sa.SmallInteger()),
        sa.Column("age_max", sa.SmallInteger()),
        sa.Column("sexes_accepted", sa.ARRAY(sa.Text())),
        sa.Column("needs_met", sa.ARRAY(sa.Text())),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        schema=SCHEMA,
    )


def upgrade() -> None:
    _create_placement_requests()
    _create_provider_view()
    create_consumer_tables_v1(SCHEMA)


def downgrade() -> None:
    drop_tables(
        SCHEMA,
        *CONSUMER_TABLES_V1,
        "provider_vacancies",
        "setting_occupancy",
        "provider_settings",
        "placement_requests",
    )
