"""Alerting's part in the exactly-once processor, keeping one shard's in-memory book in step with
commits (services/alerting/shards.py splits the work into shards).

The sharded processor applies a batch through `ShardBooks`: `load` moves the `index_epoch` row of
each shard in the batch on (locking it, and with it the shard's book, until the transaction ends)
and `begin`s each shard's batch, `apply` changes a shard's book for each due event, and `save`
writes every shard's changes and tells each what it `saved`, in one transaction that may still
roll back after `save`. The book in memory is changed by `apply` at once, so it must be thrown
away whenever its batch did not commit. `saved` remembers the epoch the shard's batch wrote; at
the next `begin` (holding the lock, so no other batch is in between) a committed epoch other than
the remembered one means that batch rolled back, or another process changed the state, and the
book is loaded again from the database. A batch that failed before `save` leaves nothing
remembered, which forces the same reload.

Metrics count a batch's alerts only once its epoch is seen committed, and the webhooks a batch
leased to this process's delivery worker are handed to it only once the batch has committed
(`take_committed_deliveries`): a batch rolled back never sends one.
"""

import gc
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import assert_never

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerting import store
from services.alerting.domain import AlertBook, Changes, NoticeKind
from services.alerting.metrics import AlertingMetrics
from services.platform.clock import Clock, utc_now
from services.platform.consumer import TRANSIENT_ERRORS
from services.platform.sequencing import Event
from services.platform.tables import connection_of

logger = logging.getLogger(__name__)

# Records (referrals, vacancies, alerts) a shard's book grows by, beyond a fifth of its size at the
# last freeze, before the next. Small: a shard's book built from empty (a new deployment, or the
# shards of a large instance count) is a few thousand records, and the collector walks everything
# unfrozen in every process's shards (pauses of 130-225 ms measured in bench_e2e with 10,000).
FREEZE_AFTER_GROWING_BY = 1_000


@dataclass
class Batch:
    epoch: int  # the shard's epoch once this batch commits
    changes: Changes = field(default_factory=Changes)


@dataclass(frozen=True, slots=True)
class _Uncounted:
    epoch: int
    raised_local: int
    raised_elsewhere: int
    retracted: dict[str, int]


class AlertingProjection:
    """Loads (or reuses) the book, applies events to it, and saves each batch's changes."""

    def __init__(
        self,
        metrics: AlertingMetrics,
        clock: Clock = utc_now,
        *,
        shard: int = 0,
        freeze_gc: bool = False,
    ) -> None:
        self.shard = shard
        # The webhooks leased by the last save, until its commit is known; those of saves known
        # to have committed, until the worker takes them; whether any other was queued.
        self._handed_unconfirmed: list[store.HandedDelivery] = []
        self._handed: list[store.HandedDelivery] = []
        self._others_unconfirmed = False
        self._others = False
        self._metrics = metrics
        self._clock = clock
        self._freeze_gc = freeze_gc
        self._frozen_size = 0
        self._book: AlertBook | None = None
        self._expected_epoch: int | None = None  # None: the book may not match committed state
        self._uncounted: list[_Uncounted] = []

    @property
    def book(self) -> AlertBook:
        if self._book is None:
            raise RuntimeError("the alert book is not loaded yet")
        return self._book

    @property
    def loaded_book(self) -> AlertBook | None:
        """The book, or None before its first load."""
        return self._book

    async def warm_up(self, engine: AsyncEngine) -> None:
        """Load the book at start-up, so that the first batch matches at once."""
        async with connection_of(engine) as connection, connection.transaction():
            epoch = await store.lock_book(connection, self.shard)
            self._confirm_deliveries(epoch)
            await self._reload(connection, epoch)
        if self._freeze_gc:
            gc.collect()
            self._freeze()

    async def begin(self, connection: asyncpg.Connection, batch_epoch: int) -> Batch:
        """A batch of the shard, whose book the transaction has locked and whose epoch it has moved
        on to `batch_epoch`: the book as committed, loaded again if it may not be."""
        epoch = batch_epoch - 1  # as committed
        # Holding the lock, no batch is in flight: one that saved a later epoch rolled back.
        self._count_committed(epoch, forget_later=True)
        self._confirm_deliveries(epoch)
        if self._book is None or self._expected_epoch != epoch:
            await self._reload(connection, epoch)
        self._expected_epoch = None  # until this batch's save says which epoch it wrote
        return Batch(batch_epoch)

    def apply(self, batch: Batch, event: Event) -> None:
        self.book.apply(event, batch.changes)

    def saved(self, batch: Batch, saved: store.Saved) -> None:
        """Remember what the batch's save wrote, until its commit is known."""
        self._expected_epoch = batch.epoch
        self._handed_unconfirmed = saved.handed
        self._others_unconfirmed = saved.others
        self._uncounted.append(_count(batch.epoch, batch.changes))
        book = self.book
        if self._freeze_gc and _size(book) > 1.2 * self._frozen_size + FREEZE_AFTER_GROWING_BY:
            self._freeze()

    def _freeze(self) -> None:
        """Move every object alive now out of the collector's sight.

        The book is long-lived and large (at national scale a million objects); a full
        collection walks all of it, pausing the service for hundreds of milliseconds, and
        happens more often the faster the book grows. Frozen objects are still freed when
        their last reference goes; only cyclic garbage alive at the moment of a freeze is never
        collected, which is why it happens after the start-up load and then only each time the
        book has grown by a fifth.
        """
        gc.freeze()
        self._frozen_size = _size(self.book)

    def _confirm_deliveries(self, epoch: int) -> None:
        """Keep the last save's leased webhooks if it committed (its epoch is the current one),
        and forget them if it rolled back (another process's epoch would also differ: then they
        wait out their lease, and are claimed from the table)."""
        if self._expected_epoch == epoch:
            self._handed.extend(self._handed_unconfirmed)
            self._others = self._others or self._others_unconfirmed
        self._handed_unconfirmed = []
        self._others_unconfirmed = False

    def take_committed_deliveries(self) -> tuple[list[store.HandedDelivery], bool]:
        """Once a batch's handling has returned (its last transaction committed): the webhooks
        leased to this process's worker by committed batches, and whether those batches queued
        others (retractions, loop notices) for the worker to claim."""
        if self._expected_epoch is not None:
            self._confirm_deliveries(self._expected_epoch)
        handed, others = self._handed, self._others
        self._handed, self._others = [], False
        return handed, others

    async def settle_metrics(self, engine: AsyncEngine) -> None:
        """Count the alerts of batches that have committed (called after each batch's handling,
        which has returned: its last save committed, so no query is needed to know its epoch)."""
        if not self._uncounted:
            return
        if self._expected_epoch is not None:
            self._count_committed(self._expected_epoch, forget_later=False)
            return
        try:
            async with connection_of(engine) as connection:
                epoch = await store.current_epoch(connection, self.shard)
        except TRANSIENT_ERRORS:
            logger.warning("shard %s's alerts are counted after its next batch", self.shard)
            return
        self._count_committed(epoch, forget_later=False)

    async def _reload(self, connection: asyncpg.Connection, epoch: int) -> None:
        logger.info("loading the alert book of shard %s (epoch %s)", self.shard, epoch)
        self._book = await store.load_book(connection, self._clock, self.shard)
        self._expected_epoch = epoch
        self._metrics.book_loads.inc()

    def _count_committed(self, epoch: int, *, forget_later: bool) -> None:
        for uncounted in self._uncounted:
            if uncounted.epoch <= epoch:
                self._metrics.alerts_raised.labels("true").inc(uncounted.raised_local)
                self._metrics.alerts_raised.labels("false").inc(uncounted.raised_elsewhere)
                for reason, count in uncounted.retracted.items():
                    self._metrics.alerts_retracted.labels(reason).inc(count)
        self._uncounted = [] if forget_later else [u for u in self._uncounted if u.epoch > epoch]


def _size(book: AlertBook) -> int:
    return len(book.referrals) + len(book.vacancies) + len(book.alerts)


def _count(epoch: int, changes: Changes) -> _Uncounted:
    local = elsewhere = 0
    retracted: dict[str, int] = {}
    for notice in changes.notices:
        match notice.kind:
            case NoticeKind.RAISED if notice.alert.fit.local:
                local += 1
            case NoticeKind.RAISED:
                elsewhere += 1
            case NoticeKind.RETRACTED:
                reason = notice.retraction_reason().value
                retracted[reason] = retracted.get(reason, 0) + 1
            case _:
                assert_never(notice.kind)
    return _Uncounted(epoch, local, elsewhere, retracted)


@dataclass(eq=False)
class ShardBooks:
    """The books of the shards an instance owns, as the sharded processor applies them: every
    shard's batch in one transaction, its books locked and their changes written by one statement
    each, however many shards there are."""

    owned: Mapping[int, AlertingProjection]
    # How long a batch's raised alerts' webhooks are leased to this process's delivery worker
    # (None: none is, and the worker claims them all from the table).
    lease_s: float | None = None

    async def load(
        self, connection: asyncpg.Connection, due: Mapping[int, Sequence[Event]]
    ) -> dict[int, Batch]:
        epochs = await store.lock_books_for_a_batch(connection, due)
        return {
            shard: await self.owned[shard].begin(connection, epoch)
            for shard, epoch in sorted(epochs.items())
        }

    def apply(self, state: dict[int, Batch], shard: int, event: Event) -> None:
        self.owned[shard].apply(state[shard], event)

    async def save(self, connection: asyncpg.Connection, state: dict[int, Batch]) -> None:
        saved = await store.save_changes(
            connection,
            [(shard, batch.changes) for shard, batch in state.items()],
            lease_s=self.lease_s,
        )
        for shard, batch in state.items():
            self.owned[shard].saved(batch, saved[shard])
