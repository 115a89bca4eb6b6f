"""Indexes for retention: it finds the rows past its horizons by when they were sent, claimed or
received, instead of reading whole tables.

Create Date: 2026-11-27
"""

from services.platform.migration_ops import SchemaOps

revision = "0006"
down_revision = "0005"

ops = SchemaOps("alerting")


def upgrade() -> None:
    ops.create_retention_indexes_v1(outbox=True, inbox=True)
    ops.create_index(
        "deliveries_delivered_at", "deliveries", ["delivered_at"], where="status = 'delivered'"
    )


def downgrade() -> None:
    ops.drop_index("deliveries_delivered_at", "deliveries")
    ops.drop_retention_indexes_v1(outbox=True, inbox=True)
