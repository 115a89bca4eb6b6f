"""A setting's public profile: name, Ofsted URN, referrals e-mail and phone, description.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

SCHEMA = "provider"
PROFILE_COLUMNS = ("name", "ofsted_urn", "referrals_email", "referrals_phone", "description")


def upgrade() -> None:
    # Nullable: settings registered before profiles existed, and foster households, have none.
    for column in PROFILE_COLUMNS:
        op.add_column("settings", sa.Column(column, sa.Text()), schema=SCHEMA)


def downgrade() -> None:
    for column in reversed(PROFILE_COLUMNS):
        op.drop_column("settings", column, schema=SCHEMA)
