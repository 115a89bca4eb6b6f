"""Beds of open vacancies held by offers, or taken by placements started from them.

Create Date: 2026-11-28
"""

import sqlalchemy as sa

from services.platform.migration_ops import SchemaOps, uuid_key

revision = "0003"
down_revision = "0002"

ops = SchemaOps("alerting")


def upgrade() -> None:
    ops.create_table(
        "holds",
        uuid_key("request_id"),
        sa.Column("vacancy_id", sa.Uuid(), nullable=False),
        sa.Column("referral_id", sa.Uuid(), nullable=False),
        sa.Column("beds", sa.Integer(), nullable=False),
        sa.Column("taken", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    ops.drop_tables("holds")
