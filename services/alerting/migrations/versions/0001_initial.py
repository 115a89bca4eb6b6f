"""The alerting schema: records, alerts, subscriptions and deliveries, the index epoch, the outbox,
idempotency keys, and the consumer's inbox and positions.

Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from services.platform.migration_ops import SchemaOps, created_at, serial_key, timestamp, uuid_key

revision = "0001"
down_revision = None

SCHEMA = "alerting"
ops = SchemaOps(SCHEMA)


def _record_table(name: str, *columns: sa.Column[object]) -> None:
    """A record (setting, vacancy or referral) as its JSON state, and whether it is open."""
    ops.create_table(
        name,
        *columns,
        sa.Column("state", postgresql.JSONB(), nullable=False),
        sa.Column("is_open", sa.Boolean(), nullable=False),
    )


def _records() -> None:
    _record_table("settings", uuid_key("setting_id"))
    ops.create_table(
        "setting_occupancy",
        uuid_key("setting_id"),
        sa.Column("occupied_beds", sa.Integer(), nullable=False),
    )
    _record_table(
        "vacancies", uuid_key("vacancy_id"), sa.Column("setting_id", sa.Uuid(), nullable=False)
    )
    ops.create_index("vacancies_by_setting", "vacancies", ["setting_id"])
    _record_table(
        "referrals", uuid_key("referral_id"), sa.Column("authority_code", sa.Text(), nullable=False)
    )
    ops.create_table(
        "index_epoch",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(
        sa.table("index_epoch", sa.column("id"), sa.column("epoch"), schema=SCHEMA),
        [{"id": 1, "epoch": 0}],
    )


def _alerts() -> None:
    ops.create_table(
        "alerts",
        uuid_key("alert_id"),
        sa.Column("referral_id", sa.Uuid(), nullable=False),
        sa.Column("vacancy_id", sa.Uuid(), nullable=False),
        sa.Column("setting_id", sa.Uuid(), nullable=False),
        sa.Column("authority_code", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("distance_miles", sa.Float(), nullable=False),
        sa.Column("local", sa.Boolean(), nullable=False),
        sa.Column("placement_type", sa.Text(), nullable=False),
        sa.Column("ofsted_rating", sa.Text(), nullable=False),
        sa.Column("postcode_district", sa.Text(), nullable=False),
        sa.Column("beds", sa.Integer(), nullable=False),
        timestamp("raised_at"),
        timestamp("retracted_at", nullable=True),
        sa.Column("retraction_reason", sa.Text()),
    )
    ops.create_index(
        "alerts_one_open_per_pair",
        "alerts",
        ["referral_id", "vacancy_id"],
        unique=True,
        where="status = 'open'",
    )
    ops.create_index("alerts_by_council", "alerts", ["authority_code", "status"])
    ops.create_index("alerts_by_referral", "alerts", ["referral_id"])


def _deliveries() -> None:
    ops.create_table(
        "subscriptions",
        uuid_key("subscription_id"),
        sa.Column("authority_code", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        timestamp("created_at"),
        sa.Column("delivered", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("failed_attempts", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("dead", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text()),
        timestamp("last_error_at", nullable=True),
        timestamp("last_success_at", nullable=True),
    )
    ops.create_index("subscriptions_by_council", "subscriptions", ["authority_code"])
    ops.create_table(
        "deliveries",
        serial_key("delivery_id"),
        sa.Column(
            "subscription_id",
            sa.Uuid(),
            sa.ForeignKey(f"{SCHEMA}.subscriptions.subscription_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("alert_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        timestamp("next_attempt_at"),
        timestamp("lease_until", nullable=True),
        sa.Column("last_error", sa.Text()),
        timestamp("last_attempt_at", nullable=True),
        timestamp("delivered_at", nullable=True),
        timestamp("source_occurred_at"),
        created_at(),
    )
    ops.create_index(
        "deliveries_due_by_subscription",
        "deliveries",
        ["subscription_id", "next_attempt_at", "delivery_id"],
        where="status = 'pending'",
    )
    ops.create_index("deliveries_by_alert", "deliveries", ["alert_id", "subscription_id"])


def upgrade() -> None:
    _records()
    _alerts()
    _deliveries()
    ops.create_outbox_tables_v1()
    ops.create_consumer_tables_v1()


def downgrade() -> None:
    ops.drop_consumer_tables_v1()
    ops.drop_outbox_tables_v1()
    ops.drop_tables(
        "deliveries",
        "subscriptions",
        "alerts",
        "index_epoch",
        "referrals",
        "vacancies",
        "setting_occupancy",
        "settings",
    )
