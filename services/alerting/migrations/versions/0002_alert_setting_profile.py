"""An alert keeps the profile of its setting as it was when the alert was raised.

Create Date: 2026-11-28
"""

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from services.platform.migration_ops import SchemaOps

revision = "0002"
down_revision = "0001"

ops = SchemaOps("alerting")


def upgrade() -> None:
    # Null for the alerts raised before profiles existed, as for a setting without one.
    ops.add_column("alerts", sa.Column("setting_profile", postgresql.JSONB(), nullable=True))


def downgrade() -> None:
    ops.drop_column("alerts", "setting_profile")
