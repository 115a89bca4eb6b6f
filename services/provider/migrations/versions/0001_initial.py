"""The provider schema: settings, vacancies, placements, the outbox and idempotency keys.

Create Date: 2026-11-23
"""

import sqlalchemy as sa

from services.platform.migration_ops import SchemaOps, match_terms_v1, timestamp, uuid_key

revision = "0001"
down_revision = None

ops = SchemaOps("provider")


def _settings() -> None:
    ops.create_table(
        "settings",
        uuid_key("setting_id"),
        sa.Column("provider_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("placement_type", sa.Text(), nullable=False),
        sa.Column("registered_places", sa.Integer(), nullable=False),
        sa.Column("ofsted_rating", sa.Text(), nullable=False),
        *match_terms_v1(sa.Integer, nullable=False),
        sa.Column("postcode_district", sa.Text(), nullable=False),
        sa.Column("authority_code", sa.Text(), nullable=False),
        sa.Column("closed_on", sa.Date()),
        sa.Column("version", sa.Integer(), nullable=False),
        timestamp("registered_at"),
        timestamp("updated_at"),
    )
    ops.create_index("settings_by_provider", "settings", ["provider_id", "registered_at"])


def _setting_record(table: str, key: str, *columns: sa.Column[object], listed_by: str) -> None:
    """A record a provider keeps of one of its settings (a vacancy or a placement): its key, the
    setting, the provider and a status, then `columns`, then its version; indexed by setting and
    status, and by provider and `listed_by`."""
    ops.create_table(
        table,
        uuid_key(key),
        ops.reference("settings", "setting_id"),
        sa.Column("provider_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        *columns,
        sa.Column("version", sa.Integer(), nullable=False),
    )
    ops.create_index(f"{table}_by_setting", table, ["setting_id", "status"])
    ops.create_index(f"{table}_by_provider", table, ["provider_id", listed_by])


def upgrade() -> None:
    _settings()
    _setting_record(
        "vacancies",
        "vacancy_id",
        sa.Column("beds", sa.Integer(), nullable=False),
        sa.Column("available_from", sa.Date(), nullable=False),
        *match_terms_v1(sa.Integer, nullable=True),
        sa.Column("withdrawal_reason", sa.Text()),
        timestamp("posted_at"),
        timestamp("last_confirmed_at"),
        timestamp("ended_at", nullable=True),
        listed_by="posted_at",
    )
    ops.create_index(
        "vacancies_open_by_confirmation",
        "vacancies",
        ["last_confirmed_at"],
        where="status = 'open'",
    )
    _setting_record(
        "placements",
        "placement_id",
        sa.Column("placing_authority_code", sa.Text(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("beds", sa.Integer(), nullable=False),
        sa.Column("vacancy_id", sa.Uuid()),
        sa.Column("end_date", sa.Date()),
        sa.Column("end_reason", sa.Text()),
        timestamp("recorded_at"),
        timestamp("ended_at", nullable=True),
        listed_by="recorded_at",
    )
    ops.create_outbox_tables_v1()


def downgrade() -> None:
    ops.drop_outbox_tables_v1()
    ops.drop_tables("placements", "vacancies", "settings")
