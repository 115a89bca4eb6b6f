"""Beds of open vacancies held by offers, or taken by placements started from them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"

SCHEMA = "alerting"


def upgrade() -> None:
    op.create_table(
        "holds",
        sa.Column("request_id", sa.Uuid(), primary_key=True),
        sa.Column("vacancy_id", sa.Uuid(), nullable=False),
        sa.Column("referral_id", sa.Uuid(), nullable=False),
        sa.Column("beds", sa.Integer(), nullable=False),
        sa.Column("taken", sa.Boolean(), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("holds", schema=SCHEMA)
