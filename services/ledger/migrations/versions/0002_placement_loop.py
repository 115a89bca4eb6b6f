"""The placement loop: requests and their answers, the placement's request, held beds in history.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from services.platform.migration_ops import create_partial_index, timestamp

revision = "0002"
down_revision = "0001"

SCHEMA = "ledger"


def upgrade() -> None:
    op.add_column("placements", sa.Column("request_id", sa.Uuid(), nullable=True), schema=SCHEMA)
    op.add_column("placements", sa.Column("referral_id", sa.Uuid(), nullable=True), schema=SCHEMA)
    create_partial_index(
        SCHEMA, "placements_by_request", "placements", ["request_id"], "request_id IS NOT NULL"
    )
    op.create_table(
        "requests",
        sa.Column("request_id", sa.Uuid(), primary_key=True),
        sa.Column("referral_id", sa.Uuid(), nullable=False),
        sa.Column("authority_code", sa.Text(), nullable=False),
        sa.Column("vacancy_id", sa.Uuid(), nullable=False),
        sa.Column("setting_id", sa.Uuid(), nullable=False),
        timestamp("requested_at"),
        sa.Column("needs", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("home_postcode_district", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        schema=SCHEMA,
    )
    op.create_index("requests_by_setting", "requests", ["setting_id"], schema=SCHEMA)
    op.create_index("requests_by_referral", "requests", ["referral_id"], schema=SCHEMA)
    op.create_table(
        "answers",
        sa.Column("request_id", sa.Uuid(), primary_key=True),
        sa.Column("vacancy_id", sa.Uuid(), nullable=False),
        sa.Column("setting_id", sa.Uuid(), nullable=False),
        sa.Column("authority_code", sa.Text(), nullable=False),
        timestamp("first_answered_at"),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("offered_beds", sa.Integer(), nullable=False),
        sa.Column("decline_reason", sa.Text(), nullable=True),
        schema=SCHEMA,
    )
    op.create_index("answers_by_setting", "answers", ["setting_id"], schema=SCHEMA)
    create_partial_index(SCHEMA, "answers_offered", "answers", ["setting_id"], "status = 'offered'")
    op.add_column(
        "capacity_history",
        sa.Column("held", sa.Integer(), nullable=False, server_default=sa.text("0")),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_column("capacity_history", "held", schema=SCHEMA)
    op.drop_table("answers", schema=SCHEMA)
    op.drop_table("requests", schema=SCHEMA)
    op.drop_index("placements_by_request", table_name="placements", schema=SCHEMA)
    op.drop_column("placements", "referral_id", schema=SCHEMA)
    op.drop_column("placements", "request_id", schema=SCHEMA)
