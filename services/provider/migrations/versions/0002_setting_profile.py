"""A setting's public profile: name, Ofsted URN, referrals e-mail and phone, description.

Create Date: 2026-11-28
"""

import sqlalchemy as sa

from services.platform.migration_ops import SchemaOps

revision = "0002"
down_revision = "0001"

ops = SchemaOps("provider")
PROFILE_COLUMNS = ("name", "ofsted_urn", "referrals_email", "referrals_phone", "description")


def upgrade() -> None:
    # Nullable: settings registered before profiles existed, and foster households, have none.
    for column in PROFILE_COLUMNS:
        ops.add_column("settings", sa.Column(column, sa.Text()))


def downgrade() -> None:
    for column in reversed(PROFILE_COLUMNS):
        ops.drop_column("settings", column)
