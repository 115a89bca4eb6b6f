"""Placement requests, the view of the provider side, and the consumer's inbox and positions.

Create Date: 2026-11-28
"""

import sqlalchemy as sa

from services.platform.migration_ops import SchemaOps, match_terms_v1, timestamp, uuid_key

revision = "0002"
down_revision = "0001"

ops = SchemaOps("authority")


def _create_placement_requests() -> None:
    ops.create_table(
        "placement_requests",
        uuid_key("request_id"),
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
    )
    ops.create_index(
        "placement_requests_by_referral",
        "placement_requests",
        ["referral_id", "requested_at"],
    )
    ops.create_index(
        "placement_requests_one_open_per_vacancy",
        "placement_requests",
        ["referral_id", "vacancy_id"],
        unique=True,
        where="status IN ('requested', 'offered', 'accepted')",
    )


def _create_provider_view() -> None:
    ops.create_table(
        "provider_settings",
        uuid_key("setting_id"),
        sa.Column("provider_id", sa.Text(), nullable=False),
        sa.Column("placement_type", sa.Text(), nullable=False),
        sa.Column("registered_places", sa.Integer(), nullable=False),
        sa.Column("ofsted_rating", sa.Text(), nullable=False),
        *match_terms_v1(sa.SmallInteger, nullable=False),
        sa.Column("postcode_district", sa.Text(), nullable=False),
        sa.Column("authority_code", sa.Text(), nullable=False),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        sa.Column("name", sa.Text()),
        sa.Column("ofsted_urn", sa.Text()),
        sa.Column("referrals_email", sa.Text()),
        sa.Column("referrals_phone", sa.Text()),
        sa.Column("description", sa.Text()),
    )
    ops.create_table(
        "setting_occupancy",
        uuid_key("setting_id"),
        sa.Column("occupied_beds", sa.Integer(), nullable=False),
    )
    ops.create_table(
        "provider_vacancies",
        uuid_key("vacancy_id"),
        sa.Column("setting_id", sa.Uuid(), nullable=False),
        sa.Column("provider_id", sa.Text(), nullable=False),
        sa.Column("beds", sa.Integer(), nullable=False),
        sa.Column("available_from", sa.Date(), nullable=False),
        *match_terms_v1(sa.SmallInteger, nullable=True),
        sa.Column("is_open", sa.Boolean(), nullable=False),
    )


def upgrade() -> None:
    _create_placement_requests()
    _create_provider_view()
    ops.create_consumer_tables_v1()


def downgrade() -> None:
    ops.drop_consumer_tables_v1()
    ops.drop_tables(
        "provider_vacancies", "setting_occupancy", "provider_settings", "placement_requests"
    )
