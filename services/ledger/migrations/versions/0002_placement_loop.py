"""The placement loop: requests and their answers, the placement's request, held beds in history.

Create Date: 2026-11-28
"""

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from services.platform.migration_ops import SchemaOps, timestamp, uuid_key

revision = "0002"
down_revision = "0001"

ops = SchemaOps("ledger")


def upgrade() -> None:
    ops.add_column("placements", sa.Column("request_id", sa.Uuid(), nullable=True))
    ops.add_column("placements", sa.Column("referral_id", sa.Uuid(), nullable=True))
    ops.create_index(
        "placements_by_request", "placements", ["request_id"], where="request_id IS NOT NULL"
    )
    ops.create_table(
        "requests",
        uuid_key("request_id"),
        sa.Column("referral_id", sa.Uuid(), nullable=False),
        sa.Column("authority_code", sa.Text(), nullable=False),
        sa.Column("vacancy_id", sa.Uuid(), nullable=False),
        sa.Column("setting_id", sa.Uuid(), nullable=False),
        timestamp("requested_at"),
        sa.Column("needs", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("home_postcode_district", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
    )
    ops.create_index("requests_by_setting", "requests", ["setting_id"])
    ops.create_index("requests_by_referral", "requests", ["referral_id"])
    ops.create_table(
        "answers",
        uuid_key("request_id"),
        sa.Column("vacancy_id", sa.Uuid(), nullable=False),
        sa.Column("setting_id", sa.Uuid(), nullable=False),
        sa.Column("authority_code", sa.Text(), nullable=False),
        timestamp("first_answered_at"),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("offered_beds", sa.Integer(), nullable=False),
        sa.Column("decline_reason", sa.Text(), nullable=True),
    )
    ops.create_index("answers_by_setting", "answers", ["setting_id"])
    ops.create_index("answers_offered", "answers", ["setting_id"], where="status = 'offered'")
    ops.add_column(
        "capacity_history",
        sa.Column("held", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )


def downgrade() -> None:
    ops.drop_column("capacity_history", "held")
    ops.drop_tables("answers", "requests")
    ops.drop_index("placements_by_request", "placements")
    ops.drop_column("placements", "referral_id")
    ops.drop_column("placements", "request_id")
