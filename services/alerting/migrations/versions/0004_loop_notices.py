"""The placement loop's notices: providers' subscriptions, notices keyed by their event's id, and
deliveries of a notice as well as of an alert.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

from services.platform.migration_ops import created_at, timestamp

revision = "0004"
down_revision = "0003"

SCHEMA = "alerting"


def upgrade() -> None:
    op.add_column(
        "subscriptions", sa.Column("provider_id", sa.Text(), nullable=True), schema=SCHEMA
    )
    op.alter_column("subscriptions", "authority_code", nullable=True, schema=SCHEMA)
    op.create_index("subscriptions_by_provider", "subscriptions", ["provider_id"], schema=SCHEMA)
    op.create_check_constraint(
        "subscriptions_one_owner",
        "subscriptions",
        "num_nonnulls(authority_code, provider_id) = 1",
        schema=SCHEMA,
    )
    op.create_table(
        "notices",
        sa.Column("notice_id", sa.Uuid(), primary_key=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("audience", sa.Text(), nullable=False),
        sa.Column("organisation_id", sa.Text(), nullable=False),
        timestamp("occurred_at"),
        created_at(),
        schema=SCHEMA,
    )
    op.add_column("deliveries", sa.Column("notice_id", sa.Uuid(), nullable=True), schema=SCHEMA)
    op.alter_column("deliveries", "alert_id", nullable=True, schema=SCHEMA)
    op.create_check_constraint(
        "deliveries_of_one", "deliveries", "num_nonnulls(alert_id, notice_id) = 1", schema=SCHEMA
    )


def downgrade() -> None:
    # A provider's subscriptions and the notices' deliveries cannot live in the older schema.
    op.execute("DELETE FROM alerting.deliveries WHERE alert_id IS NULL")
    op.drop_constraint("deliveries_of_one", "deliveries", schema=SCHEMA)
    op.alter_column("deliveries", "alert_id", nullable=False, schema=SCHEMA)
    op.drop_column("deliveries", "notice_id", schema=SCHEMA)
    op.drop_table("notices", schema=SCHEMA)
    op.execute("DELETE FROM alerting.subscriptions WHERE authority_code IS NULL")
    op.drop_constraint("subscriptions_one_owner", "subscriptions", schema=SCHEMA)
    op.drop_index("subscriptions_by_provider", "subscriptions", schema=SCHEMA)
    op.alter_column("subscriptions", "authority_code", nullable=False, schema=SCHEMA)
    op.drop_column("subscriptions", "provider_id", schema=SCHEMA)
