"""Placement requests sent to the provider, and the referral.events consumer's tables.

Create Date: 2026-11-28
"""

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from services.platform.migration_ops import SchemaOps, timestamp, uuid_key

revision = "0003"
down_revision = "0002"

ops = SchemaOps("provider")


def upgrade() -> None:
    ops.create_table(
        "requests",
        uuid_key("request_id"),
        sa.Column("referral_id", sa.Uuid(), nullable=False),
        sa.Column("authority_code", sa.Text(), nullable=False),
        ops.reference("vacancies", "vacancy_id"),
        ops.reference("settings", "setting_id"),
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
    )
    ops.create_index("requests_by_provider", "requests", ["provider_id", "requested_at"])
    ops.create_index("requests_by_vacancy", "requests", ["vacancy_id", "status"])
    ops.create_index(
        "offers_open_by_expiry", "requests", ["offer_expires_at"], where="status = 'offered'"
    )
    ops.create_consumer_tables_v1()


def downgrade() -> None:
    ops.drop_consumer_tables_v1()
    ops.drop_tables("requests")
