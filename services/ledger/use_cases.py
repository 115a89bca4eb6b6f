"""The ledger's reads and its history snapshots: one method per question the API answers."""

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import BaseModel, TypeAdapter
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import geography
from contracts.geography import Footprint, FootprintKind
from services.ledger import store
from services.ledger.domain import (
    CouncilCapacity,
    CountedBy,
    LedgerState,
    TypeCapacity,
    changed_since,
    footprint_capacity,
    footprint_flows,
    footprint_responses,
    footprint_sufficiency,
    history_points,
    may_read,
)
from services.ledger.models import (
    CapacityView,
    FlowsView,
    HistoryView,
    ResponsesView,
    SufficiencyView,
)
from services.platform.auth import Principal
from services.platform.clock import Clock, utc_now
from services.platform.errors import ForbiddenError, NotFoundError
from services.platform.tables import connection_of

logger = logging.getLogger(__name__)

DEFAULT_HISTORY_SPAN = timedelta(hours=24)
# Every transaction of the ledger's consumer (any instance's) sends a notice here; PostgreSQL
# delivers it to every listener when, and only if, the transaction commits.
COMMITS_CHANNEL = "nearhome_ledger_commits"
LISTEN_AGAIN_AFTER_S = 1.0
# How long a count is trusted on the notices alone: a batch committed by a writer that sends
# none (an instance of an earlier version, during an upgrade) is shown at most this late.
TRUSTED_UNASKED_S = 1.0


class LedgerMetrics:
    """Capacity gauges for the regions and collaboratives (never per council: 153 is too many)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.capacity = Gauge(
            "nearhome_ledger_capacity",
            "Capacity by footprint (regions and collaboratives), placement type and figure",
            ["footprint", "placement_type", "figure"],
            registry=registry,
        )
        self.history_rows = Counter(
            "nearhome_ledger_history_rows",
            "Council-level rows the history snapshots recorded (only rows that changed)",
            registry=registry,
        )
        self.last_snapshot = Gauge(
            "nearhome_ledger_last_snapshot_timestamp_seconds",
            "When the last capacity snapshot was taken",
            registry=registry,
        )
        self.capacity_reads = Counter(
            "nearhome_ledger_capacity_reads",
            "Capacity and flows reads, by whether they counted the councils again (`counted`) or"
            " were answered from the last count (`reused`: no batch committed and no vacancy"
            " turned stale since)",
            ["answered"],
            registry=registry,
        )
        self.counting = Histogram(
            "nearhome_ledger_capacity_count_seconds",
            "Time to count every council's capacity for the reads",
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, float("inf")),
        )

    def show(self, capacity: CouncilCapacity) -> None:
        for footprint in geography.footprints():
            if footprint.kind == "council":
                continue
            rolled = footprint_capacity(footprint.member_councils, capacity)
            for placement_type, figures in rolled.by_type.items():
                for figure in fields(TypeCapacity):
                    self.capacity.labels(footprint.id, placement_type.value, figure.name).set(
                        getattr(figures, figure.name)
                    )


@functools.cache
def _footprints_by_id() -> dict[str, Footprint]:
    return {footprint.id: footprint for footprint in geography.footprints()}


class CommittingProjection(store.LedgerProjection):
    """The ledger's projection, each batch's transaction also notifying COMMITS_CHANNEL: the
    notice reaches every instance's `CommitNotices` as the batch commits (never for one rolled
    back), so a reader learns of a commit without asking the database."""

    async def save(self, connection: asyncpg.Connection, state: LedgerState) -> None:
        await super().save(connection, state)
        await connection.execute(f"NOTIFY {COMMITS_CHANNEL}")


class CommitNotices:
    """The notices of the ledger's commits, heard on a connection of their own.

    `heard()` numbers what has been heard: it changes with every notice, and whenever listening
    starts again, and is None while nothing listens (not yet connected, or the connection lost).
    A count made after `heard()` said n includes every batch committed while it still says n."""

    def __init__(self) -> None:
        self._heard = 0
        self._listening = False

    def heard(self) -> int | None:
        return self._heard if self._listening else None

    async def listen(self, engine: AsyncEngine) -> None:
        """Listen until cancelled, listening again after LISTEN_AGAIN_AFTER_S whenever the
        connection is lost or cannot be made (reads ask the database meanwhile)."""
        while True:
            try:
                await self._listen_until_lost(engine)
            except Exception:  # not fatal: reads check the positions meanwhile
                logger.warning("not hearing the ledger's commits; trying again", exc_info=True)
            await asyncio.sleep(LISTEN_AGAIN_AFTER_S)

    async def _listen_until_lost(self, engine: AsyncEngine) -> None:
        lost = asyncio.Event()

        def on_lost(_: object) -> None:
            lost.set()

        async with connection_of(engine) as connection:
            connection.add_termination_listener(on_lost)
            try:
                await connection.add_listener(COMMITS_CHANNEL, self._on_notice)
                self._heard += 1  # a count made before now may have missed a commit meanwhile
                self._listening = True
                await lost.wait()
            finally:
                self._listening = False
                connection.remove_termination_listener(on_lost)
                with contextlib.suppress(Exception):  # the connection may be the lost one
                    await connection.remove_listener(COMMITS_CHANNEL, self._on_notice)

    def _on_notice(self, *_: object) -> None:
        self._heard += 1


@dataclass(frozen=True, slots=True)
class _Heard:
    """What the `CommitNotices` had heard (`CommitNotices.heard`), and when (`time.monotonic`)."""

    notices: int | None
    at: float

    @classmethod
    def now(cls, notices: "CommitNotices") -> "_Heard":
        return cls(notices.heard(), time.monotonic())

    def same_as(self, earlier: "_Heard") -> bool:
        """Whether nothing has been heard since `earlier`, and it is recent enough to trust."""
        return (
            self.notices is not None
            and self.notices == earlier.notices
            and self.at - earlier.at < TRUSTED_UNASKED_S
        )


@dataclass(slots=True)
class _Counted:
    """Every council's capacity, the consumer's positions in the snapshot counted, what had been
    heard when it was last known to include every committed batch, and the footprints' answers
    from it as they are asked for."""

    positions: store.Positions
    counted: store.CountedCapacity
    whole: _Heard
    # Each answer written from the count: (answer, footprint id) -> its JSON around its `as_of`.
    answers: dict[tuple[str, str], tuple[bytes, bytes]] = field(default_factory=dict)

    def unchanged(self, heard: _Heard, now: datetime) -> bool:
        """Whether no commit has been heard of since the count was known to be whole, lately
        enough, and it holds at `now`: then it needs no question to the database."""
        return heard.same_as(self.whole) and self.counted.holds_at(now)

    def known_whole_at(self, heard: _Heard) -> None:
        """The count includes every batch committed before `heard` was taken."""
        if heard.notices is not None and heard.at > self.whole.at:
            self.whole = heard

    def includes(self, committed: store.Positions, now: datetime) -> bool:
        """Whether the count includes every batch committed when `committed` was read, and
        holds at `now`."""
        return self.counted.holds_at(now) and all(
            self.positions.get(partition, -1) >= at for partition, at in committed.items()
        )

    def capacity_json(self, footprint: Footprint, now: datetime) -> bytes:
        """The footprint's capacity (a `CapacityView`) as of `now`, as JSON (`_written`)."""

        def view() -> CapacityView:
            rolled = footprint_capacity(footprint.member_councils, self.counted.capacity)
            return CapacityView.of(footprint, _AS_OF_MARK, rolled)

        return self._written("capacity", footprint, now, view)

    def flows_json(self, footprint: Footprint, now: datetime) -> bytes:
        """Who places children in the footprint's homes (a `FlowsView`) as of `now`, as JSON
        (`_written`)."""

        def view() -> FlowsView:
            flows = footprint_flows(footprint.member_councils, self.counted.capacity.flows)
            return FlowsView.of(footprint, _AS_OF_MARK, flows)

        return self._written("flows", footprint, now, view)

    def _written(
        self, answer: str, footprint: Footprint, now: datetime, view: Callable[[], BaseModel]
    ) -> bytes:
        """The footprint's `answer` as of `now`: rolled up and written as JSON once per count,
        then given each read's `as_of` (the figures are the count's, whenever it is read).
        Written once, a read's answer costs no model to build, check and serialize."""
        around = self.answers.get((answer, footprint.id))
        if around is None:
            around = self.answers[answer, footprint.id] = _around_as_of(view())
        before, after = around
        return before + _AS_OF.dump_json(now) + after


# How an answer writes its `as_of`, and a time no answer is ever as of, to find where it goes.
_AS_OF: TypeAdapter[datetime] = TypeAdapter(datetime)
_AS_OF_MARK = datetime(1970, 1, 1, tzinfo=UTC)
_AS_OF_FIELD, _AS_OF_MARKED = b'"as_of":', _AS_OF.dump_json(_AS_OF_MARK)


def _around_as_of(view: BaseModel) -> tuple[bytes, bytes]:
    """The view's JSON (as of `_AS_OF_MARK`) before and after the value of its `as_of`."""
    whole = view.model_dump_json().encode()
    value = whole.index(_AS_OF_FIELD + _AS_OF_MARKED) + len(_AS_OF_FIELD)
    return whole[:value], whole[value + len(_AS_OF_MARKED) :]


class _SharedReads:
    """The consumer's positions for readers arriving together: each caller gets the result of a
    query that started after it called, and one query runs at a time, so that many readers at
    once cost the database one query, not one each."""

    def __init__(self, read: Callable[[], Awaitable[store.Positions]]) -> None:
        self._read = read
        self._next: asyncio.Future[store.Positions] | None = None
        self._reading: asyncio.Task[None] | None = None

    async def positions(self) -> store.Positions:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        answer = self._next
        if self._reading is None:
            self._reading = asyncio.create_task(self._answer_each())
        return await asyncio.shield(answer)

    async def _answer_each(self) -> None:
        answering: asyncio.Future[store.Positions] | None = None
        try:
            while (answering := self._next) is not None:
                self._next = None  # who calls from now on waits for the next query
                try:
                    answering.set_result(await self._read())
                except Exception as error:  # noqa: BLE001 - each waiting caller gets it
                    answering.set_exception(error)
        finally:
            self._reading = None
            for unanswered in (answering, self._next):  # stopped (cancelled) meanwhile
                if unanswered is not None and not unanswered.done():
                    unanswered.cancel()


class Ledger:
    """Capacity, flows and history per footprint, for callers allowed to read them."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        stale_after: timedelta,
        metrics: LedgerMetrics,
        schema: str = store.SCHEMA,
        clock: Clock = utc_now,
    ) -> None:
        self._engine = engine
        self._stale_after = stale_after
        self._metrics = metrics
        self._schema = schema
        self._clock = clock
        # The last count of every council, which every footprint's capacity and flows roll up:
        # counted again only once a batch has been committed since (by any instance) or a vacancy
        # has turned stale. Counting one footprint's councils aggregates every council's records
        # anyway (the placements, offers and vacancies of all settings), so one count of all of
        # them costs about as much, and serves every footprint.
        self._counted: _Counted | None = None
        self._counting = asyncio.Lock()
        self._shared = _SharedReads(self._committed)
        self._notices = CommitNotices()

    async def follow_commits(self) -> None:
        """Hear of the consumer's commits (`CommittingProjection`) until cancelled, so that a read
        after none needs no question to the database."""
        await self._notices.listen(self._engine)

    @contextlib.asynccontextmanager
    async def _reading(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection in a read-only transaction that sees one snapshot of every table."""
        async with (
            connection_of(self._engine) as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            yield connection

    def readable_footprint(self, principal: Principal, footprint_id: str) -> Footprint:
        """The footprint, if the caller may read it: 404 if there is none, else 403 if not."""
        try:
            found = geography.footprint(footprint_id)
        except geography.UnknownFootprintError as error:
            raise NotFoundError(f"no footprint {footprint_id!r}") from error
        if not may_read(principal, found, _footprints_by_id()):
            raise ForbiddenError(f"a {principal.role} token may not read footprint {found.id}")
        return found

    def footprints(self, principal: Principal, kind: FootprintKind | None) -> list[Footprint]:
        """The footprints the caller may read (403 for a caller who may read none)."""
        known = _footprints_by_id()
        readable = [f for f in known.values() if may_read(principal, f, known)]
        if not readable:
            raise ForbiddenError(f"a {principal.role} token may not read capacity")
        return [f for f in readable if kind is None or f.kind == kind]

    async def _counted_capacity(self, now: datetime) -> _Counted:
        """Every council's capacity at `now`, including every batch committed when the call
        began whose notice has reached this process, and in any case every batch committed
        TRUSTED_UNASKED_S before: counted again only if the last count may not include them.

        A count is reused only while counting again at `now` would give the same figures
        (`CountedCapacity.holds_at`), and while either of these says that no batch has been
        committed since it was known to include every one:
        - no commit notice has been heard since, and that was under TRUSTED_UNASKED_S ago
          (`CommitNotices`): no question to the database;
        - else the consumer's positions, which it stores in each batch's transaction (whichever
          instance commits it), read on arrival, are no further on than the count's snapshot.
        Readers who find no such count count once between them: the others wait for that count,
        then judge it as their own.
        """
        heard = _Heard.now(self._notices)
        last = self._counted
        if last is None or not last.unchanged(heard, now):
            committed = await self._shared.positions()  # read by a query begun after `heard`
            if last is None or not last.includes(committed, now):
                async with self._counting:
                    last = self._counted
                    if last is None or not last.includes(committed, now):
                        last = self._counted = await self._count(now)
                        self._metrics.capacity_reads.labels("counted").inc()
                        return last
            last.known_whole_at(heard)
        self._metrics.capacity_reads.labels("reused").inc()
        return last

    async def _committed(self) -> store.Positions:
        async with connection_of(self._engine) as connection:
            return await store.consumed_positions(connection, self._schema)

    async def _count(self, now: datetime) -> _Counted:
        heard = _Heard.now(self._notices)  # before the snapshot: a later commit is heard after
        started = time.perf_counter()
        async with self._reading() as connection:
            positions = await store.consumed_positions(connection, self._schema)
            counted = await store.counted_capacity(
                connection, self._schema, now=now, stale_after=self._stale_after
            )
        self._metrics.counting.observe(time.perf_counter() - started)
        return _Counted(positions, counted, heard)

    async def capacity(self, principal: Principal, footprint_id: str) -> bytes:
        """The footprint's `CapacityView`, as JSON."""
        footprint = self.readable_footprint(principal, footprint_id)
        now = self._clock()
        counted = await self._counted_capacity(now)
        return counted.capacity_json(footprint, now)

    async def flows(self, principal: Principal, footprint_id: str) -> bytes:
        """The footprint's `FlowsView`, as JSON."""
        footprint = self.readable_footprint(principal, footprint_id)
        now = self._clock()
        counted = await self._counted_capacity(now)
        return counted.flows_json(footprint, now)

    async def responses(self, principal: Principal, footprint_id: str) -> ResponsesView:
        footprint = self.readable_footprint(principal, footprint_id)
        now = self._clock()
        async with self._reading() as connection:
            records = await store.response_records(
                connection, self._schema, footprint.member_councils
            )
        return ResponsesView.of(
            footprint, now, footprint_responses(records, footprint.member_councils)
        )

    async def sufficiency(
        self, principal: Principal, footprint_id: str, counted_by: CountedBy
    ) -> SufficiencyView:
        footprint = self.readable_footprint(principal, footprint_id)
        now = self._clock()
        async with self._reading() as connection:
            records = await store.sufficiency_records(
                connection, self._schema, footprint.member_councils, counted_by
            )
        return SufficiencyView.of(
            footprint, now, footprint_sufficiency(records, footprint.member_councils, counted_by)
        )

    async def history(
        self,
        principal: Principal,
        footprint_id: str,
        since: datetime | None,
        until: datetime | None,
    ) -> HistoryView:
        footprint = self.readable_footprint(principal, footprint_id)
        until = as_utc(until) if until is not None else self._clock()
        since = as_utc(since) if since is not None else until - DEFAULT_HISTORY_SPAN
        async with self._reading() as connection:
            baseline = await store.history_as_of(
                connection, self._schema, at=since, councils=footprint.member_councils
            )
            changes = await store.history_between(
                connection,
                self._schema,
                since=since,
                until=until,
                councils=footprint.member_councils,
            )
        points = history_points(footprint.member_councils, since, baseline, changes)
        return HistoryView.of(footprint, since, until, points)

    async def take_snapshot(self) -> int:
        """Record every council-level row that changed since the last snapshot; refresh gauges."""
        now = self._clock()
        async with connection_of(self._engine) as connection, connection.transaction():
            await store.lock_snapshots(connection)
            current = await store.council_capacity(
                connection, self._schema, now=now, stale_after=self._stale_after
            )
            previous = await store.history_as_of(connection, self._schema)
            figures, flows = changed_since(current, previous)
            await store.record_history(connection, self._schema, now, figures, flows)
        self._metrics.show(current)
        self._metrics.history_rows.inc(len(figures) + len(flows))
        self._metrics.last_snapshot.set(now.timestamp())
        return len(figures) + len(flows)


def as_utc(moment: datetime) -> datetime:
    """A time without a zone is read as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
