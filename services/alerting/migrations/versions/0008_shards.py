"""The book in shards, one per partition of referral.events (services/alerting/shards.py).

Referrals and alerts get the shard of their referral: the partition Kafka's default partitioner
gives the referral's id, of the 6 partitions the catalogue gave referral.events when this ran.
Settings, occupancy, vacancies and holds are copied into every shard, keyed by (shard, id). The
consumer's inbox, positions, versions and parked events are kept per shard too: a referral.events
row goes to the shard of its partition (or of its referral), a provider.events row is copied into
every shard, each of which has applied exactly what the single book had.

A downgrade keeps shard 0's copies and every shard's referrals, alerts and referral.events rows:
the shards' provider positions may differ by then, so stop alerting first and expect the single
book to repeat (idempotently, by event id) what shard 0 had not applied.

Create Date: 2026-11-28
"""

import sqlalchemy as sa
from aiokafka.partitioner import murmur2
from alembic import op

from services.platform.migration_ops import SchemaOps

revision = "0008"
down_revision = "0007"

ops = SchemaOps("alerting")

SHARDS = 6  # the partitions of referral.events in the catalogue when this migration was written
REPLICATED = {
    "settings": "setting_id",
    "setting_occupancy": "setting_id",
    "vacancies": "vacancy_id",
    "holds": "request_id",
}
CONSUMER_KEYS = {
    "inbox": "event_id",
    "consumer_positions": "topic, partition",
    "aggregate_versions": "aggregate_id",
    "parked_events": "event_id",
}


def _shard_of(referral_id: object) -> int:
    partition: int = (murmur2(str(referral_id).encode()) & 0x7FFFFFFF) % SHARDS
    return partition


def _columns(table: str) -> list[str]:
    rows = op.get_bind().execute(
        sa.text(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = 'alerting' AND table_name = :table AND column_name <> 'shard'"
            " ORDER BY ordinal_position"
        ),
        {"table": table},
    )
    return [f'"{row[0]}"' for row in rows]


def _copy_into_every_shard(table: str, where: str = "true") -> None:
    columns = ", ".join(_columns(table))
    op.execute(
        f"INSERT INTO alerting.{table} (shard, {columns})"  # noqa: S608 - names from the catalogue
        f" SELECT s, {columns} FROM alerting.{table}"
        f" CROSS JOIN generate_series(1, {SHARDS - 1}) AS s WHERE shard = 0 AND ({where})"
    )


def _unkey(table: str) -> None:
    """Drop `table`'s key and add its shard column (0 until filled in)."""
    op.execute(f"ALTER TABLE alerting.{table} DROP CONSTRAINT {table}_pkey")
    op.execute(f"ALTER TABLE alerting.{table} ADD COLUMN shard smallint NOT NULL DEFAULT 0")


def _key_by_shard(table: str, key: str) -> None:
    op.execute(f"ALTER TABLE alerting.{table} ALTER COLUMN shard DROP DEFAULT")
    op.execute(
        f"ALTER TABLE alerting.{table} ADD CONSTRAINT {table}_pkey PRIMARY KEY (shard, {key})"
    )


def _shard_by_referral(table: str) -> None:
    """Give every row of `table` the shard of its `referral_id` (computed here: PostgreSQL has no
    murmur2), in chunks of 10,000 referrals."""
    ops.add_column(table, sa.Column("shard", sa.SmallInteger(), nullable=True))
    bind = op.get_bind()
    ids = [
        row[0]
        for row in bind.execute(sa.text(f"SELECT DISTINCT referral_id FROM alerting.{table}"))  # noqa: S608
    ]
    for start in range(0, len(ids), 10_000):
        chunk = ids[start : start + 10_000]
        bind.execute(
            sa.text(
                f"UPDATE alerting.{table} t SET shard = u.shard"  # noqa: S608
                " FROM unnest(CAST(:ids AS uuid[]), CAST(:shards AS smallint[])) AS u(id, shard)"
                " WHERE t.referral_id = u.id"
            ),
            {"ids": chunk, "shards": [_shard_of(i) for i in chunk]},
        )
    ops.alter_column(table, "shard", nullable=False)


def _shard_referrals() -> None:
    _shard_by_referral("referrals")
    ops.create_index("referrals_by_shard", "referrals", ["shard", "is_open"])


def _shard_alerts() -> None:
    _shard_by_referral("alerts")
    op.create_index(
        "alerts_open_by_shard",
        "alerts",
        ["shard"],
        schema="alerting",
        postgresql_where=sa.text("status = 'open'"),
    )


def upgrade() -> None:
    _shard_referrals()
    _shard_alerts()
    for table, key in REPLICATED.items():
        _unkey(table)
        _copy_into_every_shard(table)
        _key_by_shard(table, key)
    referral_topic = "topic LIKE '%referral.events'"
    for table in ("inbox", "consumer_positions"):
        _unkey(table)
        op.execute(f"UPDATE alerting.{table} SET shard = partition WHERE {referral_topic}")  # noqa: S608
        _copy_into_every_shard(table, f"NOT ({referral_topic})")
        _key_by_shard(table, CONSUMER_KEYS[table])
    of_referral = "aggregate_id IN (SELECT referral_id FROM alerting.referrals)"
    for table in ("aggregate_versions", "parked_events"):
        _unkey(table)
        op.execute(
            f"UPDATE alerting.{table} t SET shard = r.shard FROM alerting.referrals r"  # noqa: S608
            " WHERE t.aggregate_id = r.referral_id"
        )
        _copy_into_every_shard(table, f"NOT ({of_referral})")
        _key_by_shard(table, CONSUMER_KEYS[table])


def downgrade() -> None:
    for table, key in {**CONSUMER_KEYS, **REPLICATED}.items():
        op.execute(f"ALTER TABLE alerting.{table} DROP CONSTRAINT {table}_pkey")
        keep = "shard = 0"
        if table in ("inbox", "consumer_positions"):
            keep += " OR topic LIKE '%referral.events'"
        elif table in ("aggregate_versions", "parked_events"):
            keep += " OR aggregate_id IN (SELECT referral_id FROM alerting.referrals)"
        op.execute(f"DELETE FROM alerting.{table} WHERE NOT ({keep})")  # noqa: S608
        ops.drop_column(table, "shard")
        op.execute(f"ALTER TABLE alerting.{table} ADD CONSTRAINT {table}_pkey PRIMARY KEY ({key})")
    ops.drop_index("alerts_open_by_shard", "alerts")
    ops.drop_column("alerts", "shard")
    ops.drop_index("referrals_by_shard", "referrals")
    ops.drop_column("referrals", "shard")
