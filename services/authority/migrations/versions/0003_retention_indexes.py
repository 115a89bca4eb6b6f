"""Indexes for retention: it finds the rows past its horizons by when they were sent, claimed or
received, instead of reading whole tables.

Create Date: 2026-11-27
"""

from services.platform.migration_ops import SchemaOps

revision = "0003"
down_revision = "0002"

upgrade, downgrade = SchemaOps("authority").retention_indexes_steps_v1(outbox=True, inbox=True)
