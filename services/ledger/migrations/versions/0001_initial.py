"""The ledger schema: record state, capacity history, and the consumer's inbox and positions.

Create Date: 2026-11-23
"""

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from services.platform.migration_ops import SchemaOps, serial_key, timestamp, uuid_key

revision = "0001"
down_revision = None

ops = SchemaOps("ledger")


def _records() -> None:
    ops.create_table(
        "settings",
        uuid_key("setting_id"),
        sa.Column("provider_id", sa.Text(), nullable=False),
        sa.Column("placement_type", sa.Text(), nullable=False),
        sa.Column("registered_places", sa.Integer(), nullable=False),
        sa.Column("ofsted_rating", sa.Text(), nullable=False),
        sa.Column("postcode_district", sa.Text(), nullable=False),
        sa.Column("authority_code", sa.Text(), nullable=False),
        sa.Column("is_open", sa.Boolean(), nullable=False),
    )
    ops.create_index("settings_by_council", "settings", ["authority_code", "placement_type"])
    ops.create_table(
        "vacancies",
        uuid_key("vacancy_id"),
        sa.Column("setting_id", sa.Uuid(), nullable=False),
        sa.Column("beds", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        timestamp("posted_at"),
        timestamp("last_confirmed_at"),
    )
    ops.create_index(
        "vacancies_open_by_setting", "vacancies", ["setting_id"], where="status = 'open'"
    )
    ops.create_table(
        "placements",
        uuid_key("placement_id"),
        sa.Column("setting_id", sa.Uuid(), nullable=False),
        sa.Column("placing_authority_code", sa.Text(), nullable=False),
        sa.Column("beds", sa.Integer(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
    )
    ops.create_index(
        "placements_active_by_setting", "placements", ["setting_id"], where="is_active"
    )
    ops.create_table(
        "referrals",
        uuid_key("referral_id"),
        sa.Column("authority_code", sa.Text(), nullable=False),
        sa.Column("placement_types", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("is_open", sa.Boolean(), nullable=False),
    )


def _history() -> None:
    ops.create_table(
        "capacity_history",
        serial_key("id"),
        timestamp("taken_at"),
        sa.Column("authority_code", sa.Text(), nullable=False),
        sa.Column("placement_type", sa.Text(), nullable=False),
        *(
            sa.Column(name, sa.Integer(), nullable=False)
            for name in (
                "registered_places",
                "occupied",
                "vacant",
                "offered",
                "stale_vacancies",
                "open_referrals",
            )
        ),
    )
    ops.create_index(
        "capacity_history_by_key",
        "capacity_history",
        ["authority_code", "placement_type", "taken_at"],
    )
    ops.create_index("capacity_history_by_time", "capacity_history", ["taken_at"])
    ops.create_table(
        "flow_history",
        serial_key("id"),
        timestamp("taken_at"),
        sa.Column("authority_code", sa.Text(), nullable=False),
        sa.Column("placing_authority_code", sa.Text(), nullable=False),
        sa.Column("placement_type", sa.Text(), nullable=False),
        sa.Column("beds", sa.Integer(), nullable=False),
    )
    ops.create_index(
        "flow_history_by_key",
        "flow_history",
        ["authority_code", "placing_authority_code", "placement_type", "taken_at"],
    )
    ops.create_index("flow_history_by_time", "flow_history", ["taken_at"])


def upgrade() -> None:
    _records()
    _history()
    ops.create_consumer_tables_v1()


def downgrade() -> None:
    ops.drop_consumer_tables_v1()
    ops.drop_tables(
        "flow_history", "capacity_history", "referrals", "placements", "vacancies", "settings"
    )
