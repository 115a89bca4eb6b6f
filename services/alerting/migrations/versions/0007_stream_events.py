"""The alert stream's events, kept so that a client resuming with `Last-Event-ID` gets what it
missed: numbered by an increasing position (the event's id on the stream), with the council or
provider whose stream each is on, its name and its data.

Create Date: 2026-11-27
"""

import sqlalchemy as sa

from services.platform.migration_ops import SchemaOps, created_at

revision = "0007"
down_revision = "0006"

ops = SchemaOps("alerting")


def upgrade() -> None:
    ops.create_table(
        "stream_events",
        sa.Column("position", sa.BigInteger(), sa.Identity(always=True), primary_key=True),
        sa.Column("audience", sa.Text(), nullable=False),
        sa.Column("organisation_id", sa.Text(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        created_at(),
    )
    ops.create_index(
        "stream_events_by_recipient",
        "stream_events",
        ["audience", "organisation_id", "position"],
    )
    ops.create_index("stream_events_by_age", "stream_events", ["created_at"])


def downgrade() -> None:
    ops.drop_tables("stream_events")
