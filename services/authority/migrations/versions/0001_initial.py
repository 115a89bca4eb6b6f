"""Referrals, the append-only audit log, the outbox and idempotency keys.

Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from services.platform.migration_ops import SchemaOps, serial_key, timestamp, uuid_key

revision = "0001"
down_revision = None

SCHEMA = "authority"
ops = SchemaOps(SCHEMA)


def _create_referrals() -> None:
    ops.create_table(
        "referrals",
        uuid_key("referral_id"),
        sa.Column("authority_code", sa.Text(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("age", sa.SmallInteger(), nullable=False),
        sa.Column("sex", sa.Text(), nullable=False),
        sa.Column("needs", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column("sibling_group_size", sa.Integer(), nullable=False),
        sa.Column("placement_types", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column("home_postcode_district", sa.Text(), nullable=False),
        sa.Column("needed_by", sa.Date(), nullable=False),
        sa.Column("urgency", sa.Text(), nullable=False),
        sa.Column("min_ofsted_rating", sa.Text(), nullable=False),
        sa.Column("accept_not_yet_inspected", sa.Boolean(), nullable=False),
        sa.Column("search_scope", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text()),
        sa.Column("version", sa.Integer(), nullable=False),
        timestamp("opened_at"),
        timestamp("updated_at"),
        timestamp("closed_at", nullable=True),
        sa.Column("chosen_widen_after", sa.Interval()),
        timestamp("widen_at"),
        timestamp("widened_at", nullable=True),
        sa.CheckConstraint("status IN ('open', 'closed')", name="referrals_status_known"),
        sa.CheckConstraint(
            "(status = 'closed') = (outcome IS NOT NULL)", name="referrals_closed_has_outcome"
        ),
    )
    ops.create_index(
        "referrals_by_council",
        "referrals",
        ["authority_code", "status", "opened_at"],
    )
    ops.create_index(
        "referrals_due_to_widen",
        "referrals",
        ["widen_at"],
        where="status = 'open' AND search_scope = 'local' AND widened_at IS NULL",
    )


def _create_audit_log() -> None:
    ops.create_table(
        "audit_log",
        serial_key("id"),
        timestamp("at"),
        sa.Column("actor", sa.Text()),
        sa.Column("role", sa.Text()),
        sa.Column("organisation", sa.Text()),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("referral_id", sa.Uuid()),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("status_code", sa.Integer()),
        sa.Column("request_id", sa.Text()),
    )
    ops.create_index("audit_log_by_referral", "audit_log", ["referral_id"])
    # The service writes as the same role that owns the table, so privileges cannot stop it
    # rewriting history; a trigger can.
    op.execute(
        f"""
        CREATE FUNCTION {SCHEMA}.refuse_audit_log_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER audit_log_append_only
        BEFORE UPDATE OR DELETE ON {SCHEMA}.audit_log
        FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.refuse_audit_log_change()
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER audit_log_no_truncate
        BEFORE TRUNCATE ON {SCHEMA}.audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.refuse_audit_log_change()
        """
    )


def upgrade() -> None:
    _create_referrals()
    _create_audit_log()
    ops.create_outbox_tables_v1()


def downgrade() -> None:
    ops.drop_outbox_tables_v1()
    ops.drop_tables("audit_log")
    op.execute(f"DROP FUNCTION {SCHEMA}.refuse_audit_log_change()")
    ops.drop_tables("referrals")
