"""The ledger's queries: record state for the consumer, capacity by council, capacity history.

Queries take the schema by name: the live ledger lives in `ledger`, a rebuild replays the topics
into `ledger_rebuild` with the same code (`tables.tables_in`). They run on asyncpg connections
(the consumer's batch transaction hands one over; readers take one from the engine) and move rows
in bulk (`unnest`), with column lists taken from the tables in `tables.py`.
"""

import functools
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Generic, TypeVar, assert_never
from uuid import UUID

import asyncpg
from sqlalchemy import Table

from contracts.enums import PlacementType
from services.ledger import tables
from services.ledger.domain import (
    RECORDS_FIELD,
    AnswerRecord,
    CouncilCapacity,
    CouncilFigures,
    CouncilKey,
    CountedBy,
    Event,
    FlowKey,
    HistoryChanges,
    LedgerState,
    PlacementRecord,
    RecordKind,
    ReferralRecord,
    RequestRecord,
    SettingRecord,
    VacancyRecord,
    apply_event,
    record_of,
    stale_before,
)
from services.ledger.tables import (
    AGGREGATE_VERSIONS,
    ANSWERS,
    CAPACITY_HISTORY,
    CONSUMER_POSITIONS,
    FLOW_HISTORY,
    INBOX,
    PARKED_EVENTS,
    PLACEMENTS,
    REFERRALS,
    REQUESTS,
    SETTINGS,
    VACANCIES,
    table_in,
)
from services.platform.errors import UnappliableEventError
from services.platform.tables import (
    bulk_insert,
    bulk_upsert,
    decoder,
    encoder,
    qualified,
    select_columns,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "METADATA",
    "SCHEMA",
    "CountedCapacity",
    "LedgerProjection",
    "Positions",
    "consumed_positions",
    "council_capacity",
    "counted_capacity",
    "events_applied",
    "history_as_of",
    "history_between",
    "load_records",
    "lock_snapshots",
    "loop_digests",
    "record_history",
    "response_records",
    "row_counts",
    "save_records",
    "sufficiency_records",
]

SCHEMA = tables.SCHEMA
# The migrations test finds each service's tables here, and the benchmark its connections.
METADATA = tables.METADATA

# Advisory lock held while a snapshot is written: one snapshot at a time per database.
SNAPSHOT_LOCK_ID = 8003

RecordT = TypeVar("RecordT", bound="DataclassInstance")


# --- record state: what the consumer loads, applies and saves -------------------------------------


class _StoredRecords(Generic[RecordT]):
    """One kind of record in its table: a row per record, a column per field of the record."""

    def __init__(self, table: Table, record: type[RecordT]) -> None:
        self._record = record
        self._names = [f.name for f in fields(record)]
        self._fields_of = [attrgetter(name) for name in self._names]
        columns = [table.columns[name] for name in self._names]
        (key,) = table.primary_key.columns
        self._key = key.name
        self._decoders = [(i, d) for i, c in enumerate(columns) if (d := decoder(c)) is not None]
        self._encoders = [encoder(column, arrays_as_text=True) for column in columns]
        self._select_all = select_columns(table, self._names)
        self._select = f"{self._select_all} WHERE {self._key} = any($1)"
        self._upsert = bulk_upsert(table, self._names)

    async def load(self, connection: asyncpg.Connection, ids: list[UUID]) -> dict[UUID, RecordT]:
        return await self._fetch(connection, self._select, ids)

    async def load_where(
        self, connection: asyncpg.Connection, condition: str, *args: object
    ) -> dict[UUID, RecordT]:
        """The records matching `condition` (SQL written in this module, never from input)."""
        return await self._fetch(connection, f"{self._select_all} WHERE {condition}", *args)

    async def _fetch(
        self, connection: asyncpg.Connection, statement: str, *args: object
    ) -> dict[UUID, RecordT]:
        found: dict[UUID, RecordT] = {}
        for row in await connection.fetch(statement, *args):
            values = list(row)
            for position, decode in self._decoders:
                values[position] = decode(values[position])
            record = self._record(*values)
            found[getattr(record, self._key)] = record
        return found

    async def save(self, connection: asyncpg.Connection, records: Collection[RecordT]) -> None:
        if not records:
            return
        # A column's values taken by `map` and an attrgetter: about half the time of a
        # comprehension calling getattr, for every field of every record a batch saves.
        await connection.execute(
            self._upsert,
            *(
                list(map(field_of, records))
                if encode is None
                else list(map(encode, map(field_of, records)))
                for field_of, encode in zip(self._fields_of, self._encoders, strict=True)
            ),
        )


@dataclass(frozen=True)
class _RecordTables:
    settings: _StoredRecords[SettingRecord]
    vacancies: _StoredRecords[VacancyRecord]
    placements: _StoredRecords[PlacementRecord]
    referrals: _StoredRecords[ReferralRecord]
    requests: _StoredRecords[RequestRecord]
    answers: _StoredRecords[AnswerRecord]

    def of_kind(self, kind: RecordKind) -> _StoredRecords[Any]:
        """The table of one kind of record (named as the state's field for it)."""
        stored: _StoredRecords[Any] = getattr(self, RECORDS_FIELD[kind])
        return stored


@functools.cache
def _record_tables(schema: str) -> _RecordTables:
    return _RecordTables(
        _StoredRecords(table_in(SETTINGS, schema), SettingRecord),
        _StoredRecords(table_in(VACANCIES, schema), VacancyRecord),
        _StoredRecords(table_in(PLACEMENTS, schema), PlacementRecord),
        _StoredRecords(table_in(REFERRALS, schema), ReferralRecord),
        _StoredRecords(table_in(REQUESTS, schema), RequestRecord),
        _StoredRecords(table_in(ANSWERS, schema), AnswerRecord),
    )


async def load_records(
    connection: asyncpg.Connection, schema: str, wanted: dict[RecordKind, list[UUID]]
) -> LedgerState:
    """The records with these ids, as stored (absent ones are simply not in the state)."""
    stored = _record_tables(schema)
    state = LedgerState()
    for kind, ids in wanted.items():
        if ids:
            state.of_kind(kind).update(await stored.of_kind(kind).load(connection, ids))
    return state


async def save_records(connection: asyncpg.Connection, schema: str, state: LedgerState) -> None:
    """Insert or overwrite every record in `state`, one statement per kind of record."""
    stored = _record_tables(schema)
    for kind in RecordKind:
        await stored.of_kind(kind).save(connection, state.of_kind(kind).values())


class LedgerProjection:
    """The ledger's part in the exactly-once processor: load what a batch touches, apply, save."""

    def __init__(self, schema: str = SCHEMA) -> None:
        self.schema = schema

    async def load(self, connection: asyncpg.Connection, events: Sequence[Event]) -> LedgerState:
        wanted: defaultdict[RecordKind, list[UUID]] = defaultdict(list)
        for event in events:
            if event.sequence == 1:
                continue  # an aggregate's first event creates its record: nothing to load
            try:
                kind, record_id = record_of(event.payload)
            except UnappliableEventError:
                # Refusing it here would fail the whole batch; `apply` refuses it, naming the
                # reason, and only that record is dead-lettered.
                continue
            wanted[kind].append(record_id)
        return await load_records(connection, self.schema, wanted)

    def apply(self, state: LedgerState, event: Event) -> None:
        apply_event(state, event)

    async def save(self, connection: asyncpg.Connection, state: LedgerState) -> None:
        await save_records(connection, self.schema, state)


# --- what the loop teaches: the records the responses and sufficiency figures count ------------

# Conditions on the record tables of one schema ({settings} etc. name them); $1 is a council list.
_IN_FOOTPRINT = "authority_code = any($1::text[])"
_AT_FOOTPRINT_SETTINGS = (
    "setting_id IN (SELECT setting_id FROM {settings} WHERE authority_code = any($1::text[]))"
)
_FROM_REFERRAL_AT_FOOTPRINT_SETTINGS = f"referral_id IS NOT NULL AND {_AT_FOOTPRINT_SETTINGS}"
_FROM_REQUEST_AT_FOOTPRINT_SETTINGS = f"request_id IS NOT NULL AND {_AT_FOOTPRINT_SETTINGS}"
_FROM_REFERRAL_PLACED_BY = "referral_id IS NOT NULL AND placing_authority_code = any($1::text[])"
_SETTINGS_BY_ID = "setting_id = any($1::uuid[])"
_REQUESTS_OF = "request_id = any($1::uuid[]) OR referral_id = any($2::uuid[])"


@functools.cache
def _loop_conditions(schema: str) -> dict[str, str]:
    names = {table.name: qualified(table) for table in tables.tables_in(schema).tables.values()}
    return {
        "at_settings": _AT_FOOTPRINT_SETTINGS.format_map(names),
        "from_referral_at_settings": _FROM_REFERRAL_AT_FOOTPRINT_SETTINGS.format_map(names),
        "from_request_at_settings": _FROM_REQUEST_AT_FOOTPRINT_SETTINGS.format_map(names),
    }


async def response_records(
    connection: asyncpg.Connection, schema: str, councils: Collection[str]
) -> LedgerState:
    """The footprint's settings, the requests and answers about them, and the placements started
    there from a request: what `domain.footprint_responses` counts."""
    stored, conditions, only = _record_tables(schema), _loop_conditions(schema), list(councils)
    return LedgerState(
        settings=await stored.settings.load_where(connection, _IN_FOOTPRINT, only),
        requests=await stored.requests.load_where(connection, conditions["at_settings"], only),
        answers=await stored.answers.load_where(connection, conditions["at_settings"], only),
        placements=await stored.placements.load_where(
            connection, conditions["from_request_at_settings"], only
        ),
    )


async def sufficiency_records(
    connection: asyncpg.Connection, schema: str, councils: Collection[str], counted_by: CountedBy
) -> LedgerState:
    """Placements started from a referral in the footprint (where the setting is, or by the
    placing council), their settings and their referrals' requests: what
    `domain.footprint_sufficiency` counts."""
    stored, conditions, only = _record_tables(schema), _loop_conditions(schema), list(councils)
    match counted_by:
        case CountedBy.SETTING:
            placements = await stored.placements.load_where(
                connection, conditions["from_referral_at_settings"], only
            )
        case CountedBy.PLACING_COUNCIL:
            placements = await stored.placements.load_where(
                connection, _FROM_REFERRAL_PLACED_BY, only
            )
        case _:
            assert_never(counted_by)
    setting_ids = list({p.setting_id for p in placements.values()})
    request_ids = [p.request_id for p in placements.values() if p.request_id is not None]
    referral_ids = [p.referral_id for p in placements.values() if p.referral_id is not None]
    return LedgerState(
        settings=await stored.settings.load_where(connection, _SETTINGS_BY_ID, setting_ids),
        placements=placements,
        requests=await stored.requests.load_where(
            connection, _REQUESTS_OF, request_ids, referral_ids
        ),
    )


# --- capacity by council --------------------------------------------------------------------------

# The figures a council row holds, in the order CouncilFigures takes them.
_FIGURES = tuple(f.name for f in fields(CouncilFigures))

# Per open setting: beds occupied by active placements, beds held by open offers (offered, not
# expired or withdrawn, no placement started from their request), beds offered in open vacancies
# less the beds held in each and the beds placements from its requests took (they leave the
# vacancy for good; the vacancy is the offer's, from its answer) (never below 0 per vacancy), and
# open vacancies last confirmed before $1 (stale); summed by council and type. `vacant` is clamped
# per setting, so an over-full home never hides another home's empty beds.
# `domain.council_figures` is the same arithmetic. For `counted_capacity`: `last_stale`, the
# latest last confirmation among the stale open vacancies (the last to have turned stale), and
# `next_stale`, the earliest among those not stale yet (the next to turn stale).
_SETTING_FIGURES = """
WITH occupied AS (
    SELECT setting_id, sum(beds) AS beds FROM {placements}
    WHERE is_active GROUP BY setting_id
), holds AS (
    SELECT a.setting_id, a.vacancy_id, sum(a.offered_beds) AS beds FROM {answers} a
    WHERE a.status = 'offered'
      AND NOT EXISTS (SELECT 1 FROM {placements} p WHERE p.request_id = a.request_id)
    GROUP BY a.setting_id, a.vacancy_id
), held AS (
    SELECT setting_id, sum(beds) AS beds FROM holds GROUP BY setting_id
), taken AS (
    SELECT a.vacancy_id, sum(p.beds) AS beds
    FROM {placements} p JOIN {answers} a ON a.request_id = p.request_id
    GROUP BY a.vacancy_id
), offered AS (
    SELECT v.setting_id,
           sum(greatest(v.beds - coalesce(h.beds, 0) - coalesce(t.beds, 0), 0)) AS beds,
           count(*) FILTER (WHERE v.last_confirmed_at < $1) AS stale,
           max(v.last_confirmed_at) FILTER (WHERE v.last_confirmed_at < $1) AS last_stale,
           min(v.last_confirmed_at) FILTER (WHERE v.last_confirmed_at >= $1) AS next_stale
    FROM {vacancies} v
    LEFT JOIN holds h ON h.vacancy_id = v.vacancy_id
    LEFT JOIN taken t ON t.vacancy_id = v.vacancy_id
    WHERE v.status = 'open' GROUP BY v.setting_id
)
SELECT s.authority_code, s.placement_type,
       sum(s.registered_places)::int AS registered_places,
       sum(coalesce(o.beds, 0))::int AS occupied,
       sum(greatest(s.registered_places - coalesce(o.beds, 0), 0))::int AS vacant,
       sum(coalesce(v.beds, 0))::int AS offered,
       sum(coalesce(h.beds, 0))::int AS held,
       sum(coalesce(v.stale, 0))::int AS stale_vacancies,
       max(v.last_stale) AS last_stale,
       min(v.next_stale) AS next_stale
FROM {settings} s
LEFT JOIN occupied o ON o.setting_id = s.setting_id
LEFT JOIN offered v ON v.setting_id = s.setting_id
LEFT JOIN held h ON h.setting_id = s.setting_id
WHERE s.is_open AND ($2::text[] IS NULL OR s.authority_code = any($2::text[]))
GROUP BY s.authority_code, s.placement_type
"""
_REFERRAL_FIGURES = """
SELECT authority_code, placement_type, count(*)::int AS open_referrals
FROM {referrals}, unnest(placement_types) AS placement_type
WHERE is_open AND ($1::text[] IS NULL OR authority_code = any($1::text[]))
GROUP BY authority_code, placement_type
"""
_FLOWS = """
SELECT s.authority_code, p.placing_authority_code, s.placement_type, sum(p.beds)::int AS beds
FROM {placements} p JOIN {settings} s ON s.setting_id = p.setting_id
WHERE p.is_active AND s.is_open AND ($1::text[] IS NULL OR s.authority_code = any($1::text[]))
GROUP BY s.authority_code, p.placing_authority_code, s.placement_type
"""

# --- capacity history -----------------------------------------------------------------------------

_LATEST_FIGURES = """
SELECT DISTINCT ON (authority_code, placement_type) authority_code, placement_type, {figures}
FROM {capacity_history}
WHERE ($1::timestamptz IS NULL OR taken_at <= $1)
  AND ($2::text[] IS NULL OR authority_code = any($2::text[]))
ORDER BY authority_code, placement_type, taken_at DESC, id DESC
"""
_LATEST_FLOWS = """
SELECT DISTINCT ON (authority_code, placing_authority_code, placement_type)
       authority_code, placing_authority_code, placement_type, beds
FROM {flow_history}
WHERE ($1::timestamptz IS NULL OR taken_at <= $1)
  AND ($2::text[] IS NULL OR authority_code = any($2::text[]))
ORDER BY authority_code, placing_authority_code, placement_type, taken_at DESC, id DESC
"""
_FIGURES_BETWEEN = """
SELECT taken_at, authority_code, placement_type, {figures}
FROM {capacity_history}
WHERE taken_at > $1 AND taken_at <= $2 AND authority_code = any($3::text[])
ORDER BY taken_at, id
"""
_FLOWS_BETWEEN = """
SELECT taken_at, authority_code, placing_authority_code, placement_type, beds
FROM {flow_history}
WHERE taken_at > $1 AND taken_at <= $2 AND authority_code = any($3::text[])
ORDER BY taken_at, id
"""
_HISTORY_FIGURES_COLUMNS = ("taken_at", "authority_code", "placement_type", *_FIGURES)
_HISTORY_FLOWS_COLUMNS = (
    "taken_at",
    "authority_code",
    "placing_authority_code",
    "placement_type",
    "beds",
)


@dataclass(frozen=True)
class _Queries:
    """The ledger's statements, naming the tables of one schema."""

    setting_figures: str
    referral_figures: str
    flows: str
    latest_figures: str
    latest_flows: str
    figures_between: str
    flows_between: str
    record_figures: str
    record_flows: str
    counts: dict[str, str]
    events_applied: str
    positions: str


@functools.cache
def _queries(schema: str) -> _Queries:
    names = {table.name: qualified(table) for table in tables.tables_in(schema).tables.values()}
    figures = ", ".join(_FIGURES)
    records = (SETTINGS, VACANCIES, PLACEMENTS, REFERRALS, REQUESTS, ANSWERS)
    counted = [t.name for t in (*records, INBOX, PARKED_EVENTS)]
    return _Queries(
        setting_figures=_SETTING_FIGURES.format_map(names),
        referral_figures=_REFERRAL_FIGURES.format_map(names),
        flows=_FLOWS.format_map(names),
        latest_figures=_LATEST_FIGURES.format_map({**names, "figures": figures}),
        latest_flows=_LATEST_FLOWS.format_map(names),
        figures_between=_FIGURES_BETWEEN.format_map({**names, "figures": figures}),
        flows_between=_FLOWS_BETWEEN.format_map(names),
        record_figures=bulk_insert(table_in(CAPACITY_HISTORY, schema), _HISTORY_FIGURES_COLUMNS),
        record_flows=bulk_insert(table_in(FLOW_HISTORY, schema), _HISTORY_FLOWS_COLUMNS),
        counts={name: f"SELECT count(*) FROM {names[name]}" for name in counted},  # noqa: S608
        events_applied=(
            f"SELECT coalesce(sum(version), 0) FROM {names[AGGREGATE_VERSIONS.name]}"  # noqa: S608
        ),
        positions=select_columns(
            table_in(CONSUMER_POSITIONS, schema), ("topic", "partition", "next_offset")
        ),
    )


def _figures(row: asyncpg.Record) -> CouncilFigures:
    # A settings row has no open referrals: they are counted from the referrals.
    return CouncilFigures(*(row.get(name, 0) for name in _FIGURES))


def _council_key(row: asyncpg.Record) -> CouncilKey:
    return row["authority_code"], PlacementType(row["placement_type"])


def _flow_key(row: asyncpg.Record) -> FlowKey:
    return (
        row["authority_code"],
        row["placing_authority_code"],
        PlacementType(row["placement_type"]),
    )


async def council_capacity(
    connection: asyncpg.Connection,
    schema: str,
    *,
    now: datetime,
    stale_after: timedelta,
    councils: Collection[str] | None = None,
) -> CouncilCapacity:
    """What `domain.council_figures` computes, in SQL, for `councils` (None: every council).

    Run it inside a repeatable-read transaction when the figures and flows must agree.
    """
    counted = await counted_capacity(
        connection, schema, now=now, stale_after=stale_after, councils=councils
    )
    return counted.capacity


@dataclass(frozen=True, slots=True)
class CountedCapacity:
    """Capacity as counted at some instant, and the span of instants at which counting the same
    records again gives the same figures: the time enters them only through the stale vacancies,
    so the span runs from just after the last of them turned stale (`holds_after`) to the moment
    the next one turns stale (`holds_until`); None where there is no such vacancy."""

    capacity: CouncilCapacity
    holds_after: datetime | None
    holds_until: datetime | None

    def holds_at(self, now: datetime) -> bool:
        """Whether counting the same records at `now` would give the same figures."""
        return (self.holds_after is None or now > self.holds_after) and (
            self.holds_until is None or now <= self.holds_until
        )


async def counted_capacity(
    connection: asyncpg.Connection,
    schema: str,
    *,
    now: datetime,
    stale_after: timedelta,
    councils: Collection[str] | None = None,
) -> CountedCapacity:
    """`council_capacity`, with how long it holds (see `CountedCapacity`)."""
    queries = _queries(schema)
    only = None if councils is None else list(councils)
    cutoff = stale_before(now, stale_after)
    setting_rows = await connection.fetch(queries.setting_figures, cutoff, only)
    referral_rows = await connection.fetch(queries.referral_figures, only)
    flow_rows = await connection.fetch(queries.flows, only)
    figures: defaultdict[CouncilKey, CouncilFigures] = defaultdict(CouncilFigures)
    for row in setting_rows:
        figures[_council_key(row)] += _figures(row)
    for row in referral_rows:
        figures[_council_key(row)] += CouncilFigures(open_referrals=row["open_referrals"])
    capacity = CouncilCapacity(dict(figures), {_flow_key(r): r["beds"] for r in flow_rows})
    # An open vacancy last confirmed at t is stale at the instants after t + stale_after.
    turned = [row["last_stale"] for row in setting_rows if row["last_stale"] is not None]
    turning = [row["next_stale"] for row in setting_rows if row["next_stale"] is not None]
    return CountedCapacity(
        capacity,
        holds_after=max(turned) + stale_after if turned else None,
        holds_until=min(turning) + stale_after if turning else None,
    )


Positions = dict[tuple[str, int], int]


async def consumed_positions(connection: asyncpg.Connection, schema: str) -> Positions:
    """The next offset the consumer stored for each (topic, partition) it has read. It is stored
    in the transaction of every batch, and only ever grows, so records read in a snapshot whose
    positions are at least those read earlier include everything committed up to then."""
    rows = await connection.fetch(_queries(schema).positions)
    return {(row["topic"], row["partition"]): row["next_offset"] for row in rows}


async def history_as_of(
    connection: asyncpg.Connection,
    schema: str,
    *,
    at: datetime | None = None,
    councils: Collection[str] | None = None,
) -> CouncilCapacity:
    """The latest recorded row of every key at `at` (None: the latest of all)."""
    queries = _queries(schema)
    only = None if councils is None else list(councils)
    figure_rows = await connection.fetch(queries.latest_figures, at, only)
    flow_rows = await connection.fetch(queries.latest_flows, at, only)
    return CouncilCapacity(
        {_council_key(r): _figures(r) for r in figure_rows},
        {_flow_key(r): r["beds"] for r in flow_rows},
    )


async def history_between(
    connection: asyncpg.Connection,
    schema: str,
    *,
    since: datetime,
    until: datetime,
    councils: Collection[str],
) -> HistoryChanges:
    """Every row recorded after `since` and up to `until`, for these councils, oldest first."""
    queries = _queries(schema)
    only = list(councils)
    figure_rows = await connection.fetch(queries.figures_between, since, until, only)
    flow_rows = await connection.fetch(queries.flows_between, since, until, only)
    return HistoryChanges(
        figures=[(r["taken_at"], _council_key(r), _figures(r)) for r in figure_rows],
        flows=[(r["taken_at"], _flow_key(r), r["beds"]) for r in flow_rows],
    )


async def record_history(
    connection: asyncpg.Connection,
    schema: str,
    taken_at: datetime,
    figures: dict[CouncilKey, CouncilFigures],
    flows: dict[FlowKey, int],
) -> None:
    """Append one snapshot's changed rows."""
    queries = _queries(schema)
    if keys := list(figures):
        rows = [figures[key].as_row() for key in keys]
        await connection.execute(
            queries.record_figures,
            [taken_at] * len(keys),
            [council_code for council_code, _ in keys],
            [placement_type.value for _, placement_type in keys],
            *([row[column] for row in rows] for column in range(len(_FIGURES))),
        )
    if flow_keys := list(flows):
        await connection.execute(
            queries.record_flows,
            [taken_at] * len(flow_keys),
            [key[0] for key in flow_keys],
            [key[1] for key in flow_keys],
            [key[2].value for key in flow_keys],
            [flows[key] for key in flow_keys],
        )


async def lock_snapshots(connection: asyncpg.Connection) -> None:
    """Hold the snapshot lock until the caller's transaction ends."""
    await connection.execute("SELECT pg_advisory_xact_lock($1)", SNAPSHOT_LOCK_ID)


# --- digests of the loop's records (rebuild) ------------------------------------------------------

# The rows that only the loop's figures read, in a stable order: the requests, the answers, and the
# placements' requests and referrals (their other columns are in the capacity digest already).
_LOOP_ROWS = {
    "requests": "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t.request_id), ''))"
    " FROM {requests} t",
    "answers": "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t.request_id), ''))"
    " FROM {answers} t",
    "placements_from_requests": "SELECT md5(coalesce(string_agg("
    "concat_ws(',', placement_id, request_id, referral_id), '|' ORDER BY placement_id), ''))"
    " FROM {placements} WHERE request_id IS NOT NULL OR referral_id IS NOT NULL",
}


@functools.cache
def _loop_digests(schema: str) -> dict[str, str]:
    names = {table.name: qualified(table) for table in tables.tables_in(schema).tables.values()}
    return {name: statement.format_map(names) for name, statement in _LOOP_ROWS.items()}


async def loop_digests(connection: asyncpg.Connection, schema: str) -> dict[str, str]:
    """An md5 of each of the loop's record sets in `schema`: equal when their rows are."""
    return {
        name: await connection.fetchval(statement)
        for name, statement in _loop_digests(schema).items()
    }


# --- counts (rebuild reports, tests) --------------------------------------------------------------


async def row_counts(connection: asyncpg.Connection, schema: str) -> dict[str, int]:
    """Rows in each record table and in the inbox and parked events of `schema`."""
    return {
        table: await connection.fetchval(statement)
        for table, statement in _queries(schema).counts.items()
    }


async def events_applied(connection: asyncpg.Connection, schema: str) -> int:
    """Events applied so far: each aggregate's version is the count of its events applied."""
    applied = await connection.fetchval(_queries(schema).events_applied)
    return int(applied)
