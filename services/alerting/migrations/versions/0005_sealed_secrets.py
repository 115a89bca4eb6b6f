"""Subscription secrets encrypted at rest: the ciphertext and the id of the key that sealed it.

The plain `secret` column stays, nullable, for the rows stored before: they keep delivering, and
the service seals them (and clears the plain text) on start once it has a key.

Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

from services.platform.migration_ops import SchemaOps

revision = "0005"
down_revision = "0004"

ops = SchemaOps("alerting")


def upgrade() -> None:
    ops.add_column("subscriptions", sa.Column("secret_ciphertext", sa.LargeBinary(), nullable=True))
    ops.add_column("subscriptions", sa.Column("secret_key_id", sa.Text(), nullable=True))
    ops.alter_column("subscriptions", "secret", nullable=True)
    ops.create_check_constraint(
        "subscriptions_secret_kept",
        "subscriptions",
        "secret_ciphertext IS NOT NULL AND secret_key_id IS NOT NULL OR secret IS NOT NULL",
    )


def downgrade() -> None:
    # A sealed secret cannot be kept in the older schema without its key: those webhooks go.
    op.execute("DELETE FROM alerting.subscriptions WHERE secret IS NULL")
    ops.drop_constraint("subscriptions_secret_kept", "subscriptions")
    ops.alter_column("subscriptions", "secret", nullable=False)
    ops.drop_column("subscriptions", "secret_key_id")
    ops.drop_column("subscriptions", "secret_ciphertext")
