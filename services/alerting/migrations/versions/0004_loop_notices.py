"""The placement loop's notices: providers' subscriptions, notices keyed by their event's id, and
deliveries of a notice as well as of an alert.

Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

from services.platform.migration_ops import SchemaOps, created_at, timestamp, uuid_key

revision = "0004"
down_revision = "0003"

ops = SchemaOps("alerting")


def upgrade() -> None:
    ops.add_column("subscriptions", sa.Column("provider_id", sa.Text(), nullable=True))
    ops.alter_column("subscriptions", "authority_code", nullable=True)
    ops.create_index("subscriptions_by_provider", "subscriptions", ["provider_id"])
    ops.create_check_constraint(
        "subscriptions_one_owner",
        "subscriptions",
        "num_nonnulls(authority_code, provider_id) = 1",
    )
    ops.create_table(
        "notices",
        uuid_key("notice_id"),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("audience", sa.Text(), nullable=False),
        sa.Column("organisation_id", sa.Text(), nullable=False),
        timestamp("occurred_at"),
        created_at(),
    )
    ops.add_column("deliveries", sa.Column("notice_id", sa.Uuid(), nullable=True))
    ops.alter_column("deliveries", "alert_id", nullable=True)
    ops.create_check_constraint(
        "deliveries_of_one", "deliveries", "num_nonnulls(alert_id, notice_id) = 1"
    )


def downgrade() -> None:
    # A provider's subscriptions and the notices' deliveries cannot live in the older schema.
    op.execute("DELETE FROM alerting.deliveries WHERE alert_id IS NULL")
    ops.drop_constraint("deliveries_of_one", "deliveries")
    ops.alter_column("deliveries", "alert_id", nullable=False)
    ops.drop_column("deliveries", "notice_id")
    ops.drop_tables("notices")
    op.execute("DELETE FROM alerting.subscriptions WHERE authority_code IS NULL")
    ops.drop_constraint("subscriptions_one_owner", "subscriptions")
    ops.drop_index("subscriptions_by_provider", "subscriptions")
    ops.alter_column("subscriptions", "authority_code", nullable=False)
    ops.drop_column("subscriptions", "provider_id")
