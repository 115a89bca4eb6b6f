"""An alert keeps the profile of its setting as it was when the alert was raised.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"

SCHEMA = "alerting"


def upgrade() -> None:
    # Null for the alerts raised before profiles existed, as for a setting without one.
    op.add_column(
        "alerts", sa.Column("setting_profile", postgresql.JSONB(), nullable=True), schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_column("alerts", "setting_profile", schema=SCHEMA)
