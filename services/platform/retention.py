"""Retention: the platform's bookkeeping tables are pruned on a schedule, past configured horizons.

What is pruned, each in batches of `retention_batch_size` rows (one short transaction a batch):

* **sent outbox rows**, published longer ago than `NEARHOME_RETAIN_SENT_OUTBOX` (an unsent row is
  never touched: it is the relay's work);
* **idempotency keys**, claimed longer ago than `NEARHOME_RETAIN_IDEMPOTENCY_KEYS`: a retry with
  the same key after that is a new request;
* **inbox ids** of the exactly-once consumers, under the rule below
  (`NEARHOME_RETAIN_INBOX_IDS`);
* alerting's **delivered webhook rows** (`NEARHOME_RETAIN_DELIVERED_WEBHOOKS`): only accepted
  ones; pending and dead ones stay, and the subscription's counts are kept on its own row;
* alerting's **stream events** (`NEARHOME_RETAIN_STREAM_EVENTS`), kept for clients that resume the
  alert stream with `Last-Event-ID`: one that comes back later misses what was pruned.

The audit log is never pruned: it is append-only, and nothing here names it.

Why pruning the inbox keeps exactly-once
----------------------------------------
A consumer applies a record only if its event id is not in the inbox *and* its offset is at or
past the position stored for its partition (`ExactlyOnceProcessor` checks both, in the same
transaction that stores the new position). A duplicate can reach a consumer in two ways:

1. *the same record read again* (a restart, a rebalance, a group offset reset): its offset lies
   below the stored position, so it is refused by position, whatever the inbox holds;
2. *the same event published again at a new offset*: the outbox relay died after the broker
   acknowledged and before it marked the row sent, and publishes it once more when it comes
   back. The copy is appended to the same partition (same key) after the original.

An inbox id is pruned only once the stored position of its partition is past its offset (so case
1 cannot need it any more) **and** it was received longer ago than the horizon. Case 2 needs the
id only until the re-published copy has been read: the relay re-publishes as soon as it runs
again, and the consumer reads the copy a few records after the original. The horizon (30 days by
default) must exceed the longest a writing service may stay down after a crash plus the longest a
consumer may lag; a copy older than the topics' own retention cannot be delivered at all.
"""

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Annotated, Any, Protocol

from pydantic import AliasChoices, BeforeValidator, Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import ColumnElement, MetaData, Table, and_, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.platform.clock import Clock, utc_now


def _seconds_if_a_number(value: object) -> object:
    """pydantic reads a number as seconds, but the environment gives a string of digits."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return float(value)
    return value


# A duration from the environment: seconds ("1209600") or an ISO 8601 duration ("P14D").
Duration = Annotated[timedelta, BeforeValidator(_seconds_if_a_number)]


def _env(name: str) -> Any:  # noqa: ANN401 - pydantic's AliasChoices
    return AliasChoices(f"NEARHOME_{name.upper()}", name)


class RetentionSettings(BaseSettings):
    """How long each bookkeeping table keeps its rows, and how the pruning runs."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    retain_sent_outbox: Duration = Field(
        default=timedelta(days=7), gt=timedelta(0), validation_alias=_env("retain_sent_outbox")
    )
    retain_inbox_ids: Duration = Field(
        default=timedelta(days=30), gt=timedelta(0), validation_alias=_env("retain_inbox_ids")
    )
    retain_idempotency_keys: Duration = Field(
        default=timedelta(days=7),
        gt=timedelta(0),
        validation_alias=_env("retain_idempotency_keys"),
    )
    retain_delivered_webhooks: Duration = Field(
        default=timedelta(days=30),
        gt=timedelta(0),
        validation_alias=_env("retain_delivered_webhooks"),
    )
    retain_stream_events: Duration = Field(
        default=timedelta(days=1),
        gt=timedelta(0),
        validation_alias=_env("retain_stream_events"),
    )
    # How often the pruning runs (seconds), and how many rows one batch (transaction) deletes.
    retention_interval: float = Field(
        default=3600.0, gt=0, validation_alias=_env("retention_interval")
    )
    retention_batch_size: int = Field(
        default=1000, ge=1, validation_alias=_env("retention_batch_size")
    )


# A job the lifespan runs now and every so many seconds: (seconds, job, name for the logs).
Scheduled = tuple[float, Callable[[], Awaitable[object]], str]


async def _delete_in_batches(
    engine: AsyncEngine, table: Table, where: ColumnElement[bool], batch_size: int
) -> int:
    """Delete the rows of `table` that `where` picks, `batch_size` at a time; how many went."""
    keys = list(table.primary_key.columns)
    assert len(keys) == 1, f"{table.name} is pruned by a one-column key"
    key = keys[0]
    deleted = 0
    while True:
        chosen = select(key).where(where).order_by(key).limit(batch_size)
        async with engine.begin() as connection:
            result = await connection.execute(
                delete(table).where(key.in_(chosen.scalar_subquery()))
            )
        deleted += result.rowcount
        if result.rowcount < batch_size:
            return deleted


async def _delete_by_pair_in_batches(
    engine: AsyncEngine, table: Table, where: ColumnElement[bool], batch_size: int
) -> int:
    """As `_delete_in_batches`, for a table keyed by two columns (the idempotency keys, a sharded
    inbox)."""
    first, second = table.primary_key.columns
    deleted = 0
    while True:
        chosen = select(first, second).where(where).limit(batch_size).subquery()
        statement = delete(table).where(
            and_(first == chosen.c[first.name], second == chosen.c[second.name])
        )
        async with engine.begin() as connection:
            result = await connection.execute(statement)
        deleted += result.rowcount
        if result.rowcount < batch_size:
            return deleted


async def prune_sent_outbox(
    engine: AsyncEngine, outbox: Table, *, older_than: timedelta, batch_size: int, now: Clock
) -> int:
    """Delete outbox rows published before `now() - older_than`; unsent rows are kept."""
    cutoff = now() - older_than
    where = and_(outbox.c.published_at.is_not(None), outbox.c.published_at < cutoff)
    return await _delete_in_batches(engine, outbox, where, batch_size)


async def prune_idempotency_keys(
    engine: AsyncEngine, keys: Table, *, older_than: timedelta, batch_size: int, now: Clock
) -> int:
    """Delete idempotency keys claimed before `now() - older_than`."""
    where = keys.c.created_at < now() - older_than
    return await _delete_by_pair_in_batches(engine, keys, where, batch_size)


async def prune_inbox(  # noqa: PLR0913 - the two tables, the horizon, the batch and the clock
    engine: AsyncEngine,
    inbox: Table,
    positions: Table,
    *,
    older_than: timedelta,
    batch_size: int,
    now: Clock,
) -> int:
    """Delete inbox ids received before `now() - older_than` whose partition's stored position is
    past their offset (see the module's docstring for why both)."""
    same_partition = [
        positions.c.topic == inbox.c.topic,
        positions.c.partition == inbox.c.partition,
    ]
    sharded = "shard" in inbox.c  # each shard's ids against its own positions (alerting)
    if sharded:
        same_partition.append(positions.c.shard == inbox.c.shard)
    read_past = (
        select(positions.c.next_offset)
        .where(*same_partition)
        .where(positions.c.next_offset > inbox.c.offset)
        .exists()
    )
    where = and_(inbox.c.received_at < now() - older_than, read_past)
    delete_batches = _delete_by_pair_in_batches if sharded else _delete_in_batches
    return await delete_batches(engine, inbox, where, batch_size)


async def prune_delivered_webhooks(
    engine: AsyncEngine, deliveries: Table, *, older_than: timedelta, batch_size: int, now: Clock
) -> int:
    """Delete webhook deliveries the receiver accepted before `now() - older_than`."""
    where = and_(
        deliveries.c.status == "delivered",
        deliveries.c.delivered_at.is_not(None),
        deliveries.c.delivered_at < now() - older_than,
    )
    return await _delete_in_batches(engine, deliveries, where, batch_size)


async def prune_stream_events(
    engine: AsyncEngine, events: Table, *, older_than: timedelta, batch_size: int, now: Clock
) -> int:
    """Delete the alert stream's events kept since before `now() - older_than`."""
    where = events.c.created_at < now() - older_than
    return await _delete_in_batches(engine, events, where, batch_size)


class _Prune(Protocol):
    """A pruning of one table by age (`prune_sent_outbox`, ...)."""

    async def __call__(
        self,
        engine: AsyncEngine,
        table: Table,
        /,
        *,
        older_than: timedelta,
        batch_size: int,
        now: Clock,
    ) -> int: ...


@dataclass(frozen=True, slots=True)
class Retention:
    """The pruning jobs of one service's schema, built from its tables' metadata."""

    engine: AsyncEngine
    metadata: MetaData
    settings: RetentionSettings
    now: Clock = utc_now

    def _table(self, name: str) -> Table | None:
        return self.metadata.tables.get(f"{self.metadata.schema}.{name}")

    def jobs(
        self, *, delivered_webhooks: Table | None = None, stream_events: Table | None = None
    ) -> list[Scheduled]:
        """A job for each of the platform's tables the schema has (outbox, idempotency keys,
        inbox), and for `delivered_webhooks` and `stream_events` if given; each runs every
        `retention_interval`."""
        s = self.settings
        every = s.retention_interval
        batch = s.retention_batch_size
        schema = self.metadata.schema
        engine, now = self.engine, self.now
        pruned_by_age: list[tuple[Table | None, _Prune, timedelta, str]] = [
            (self._table("outbox"), prune_sent_outbox, s.retain_sent_outbox, "outbox"),
            (
                self._table("idempotency_keys"),
                prune_idempotency_keys,
                s.retain_idempotency_keys,
                "idempotency key",
            ),
            (
                delivered_webhooks,
                prune_delivered_webhooks,
                s.retain_delivered_webhooks,
                "delivered webhook",
            ),
            (stream_events, prune_stream_events, s.retain_stream_events, "stream event"),
        ]
        jobs: list[Scheduled] = [
            (
                every,
                partial(prune, engine, table, older_than=horizon, batch_size=batch, now=now),
                f"{schema} {what} retention",
            )
            for table, prune, horizon, what in pruned_by_age
            if table is not None
        ]
        inbox, positions = self._table("inbox"), self._table("consumer_positions")
        if inbox is not None and positions is not None:
            jobs.append(
                (
                    every,
                    partial(
                        prune_inbox,
                        engine,
                        inbox,
                        positions,
                        older_than=s.retain_inbox_ids,
                        batch_size=batch,
                        now=now,
                    ),
                    f"{schema} inbox retention",
                )
            )
        return jobs
