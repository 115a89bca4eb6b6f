"""The alerting schema: records, alerts, subscriptions and deliveries, the index epoch, the outbox,
idempotency keys, and the consumer's inbox and positions.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from services.platform.migration_ops import (
    CONSUMER_TABLES_V1,
    OUTBOX_TABLES_V1,
    create_consumer_tables_v1,
    create_outbox_tables_v1,
    create_partial_index,
    created_at,
    drop_tables,
    timestamp,
)

revision = "0001"
down_revision = None

SCHEMA = "alerting"


def _records() -> None:
    op.create_table(
        "settings",
        sa.Column("setting_id", sa.Uuid(), primary_key=True),
        sa.Column("state", postgresql.JSONB(), nullable=False),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "setting_occupancy",
        sa.Column("setting_id", sa.Uuid(), primary_key=True),
        sa.Column("occupied_beds", sa.Integer(), nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "vacancies",
        sa.Column("vacancy_id", sa.Uuid(), primary_key=True),
        sa.Column("setting_id", sa.Uuid(), nullable=False),
        sa.Column("state", postgresql.JSONB(), nullable=False),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        schema=SCHEMA,
    )
    op.create_index("vacancies_by_setting", "vacancies", ["setting_id"], schema=SCHEMA)
    op.create_table(
        "referrals",
        sa.Column("referral_id", sa.Uuid(), primary_key=True),
        sa.Column("authority_code", sa.Text(), nullable=False),
        sa.Column("state", postgresql.JSONB(), nullable=False),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "index_epoch",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        schema=SCHEMA,
    )
    op.bulk_insert(
        sa.table("index_epoch", sa.column("id"), sa.column("epoch"), schema=SCHEMA),
        [{"id": 1, "epoch": 0}],
    )


def _alerts() -> None:
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.Uuid(), primary_key=True),
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
        schema=SCHEMA,
    )
    op.create_index(
        "alerts_one_open_per_pair",
        "alerts",
        ["referral_id", "vacancy_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_index("alerts_by_council", "alerts", ["authority_code", "status"], schema=SCHEMA)
    op.create_index("alerts_by_referral", "alerts", ["referral_id"], schema=SCHEMA)


def _deliveries() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("subscription_id", sa.Uuid(), primary_key=True),
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
        schema=SCHEMA,
    )
    op.create_index("subscriptions_by_council", "subscriptions", ["authority_code"], schema=SCHEMA)
    op.create_table(
        "deliveries",
        sa.Column("delivery_id", sa.BigInteger(), primary_key=True, autoincrement=True),
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
        schema=SCHEMA,
    )
    create_partial_index(
        SCHEMA,
        "deliveries_due_by_subscription",
        "deliveries",
        ["subscription_id", "next_attempt_at", "delivery_id"],
        "status = 'pending'",
    )
    op.create_index(
        "deliveries_by_alert", "deliveries", ["alert_id", "subscription_id"], schema=SCHEMA
    )


def upgrade() -> None:
    _records()
    _alerts()
    _deliveries()
    create_outbox_tables_v1(SCHEMA)
    create_consumer_tables_v1(SCHEMA)


def downgrade() -> None:
    drop_tables(
        SCHEMA,
        *CONSUMER_TABLES_V1,
        *OUTBOX_TABLES_V1,
        "deliveries",
        "subscriptions",
        "alerts",
        "index_epoch",
        "referrals",
        "vacancies",
        "setting_occupancy",
        "settings",
    )
