"""The ledger schema and its queries: record state, the consumer's tables and capacity history.

Queries take the schema by name: the live ledger lives in `ledger`, a rebuild replays the topics
into `ledger_rebuild` with the same code. They run on asyncpg connections (the consumer's batch
transaction hands one over; readers take one from the engine) and move rows in bulk (`unnest`).
"""

import contextlib
import re
from collections import defaultdict
from collections.abc import AsyncIterator, Collection, Sequence
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    Table,
    Text,
    Uuid,
    text,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.enums import OfstedRating, PlacementType
from services.ledger.domain import (
    CouncilCapacity,
    CouncilFigures,
    CouncilKey,
    Event,
    FlowKey,
    HistoryChanges,
    LedgerState,
    PlacementRecord,
    RecordKind,
    ReferralRecord,
    SettingRecord,
    UnappliableEventError,
    VacancyRecord,
    VacancyStatus,
    apply_event,
    record_of,
    stale_before,
)
from services.platform.consumer import consumer_tables
from services.platform.database import service_metadata

SCHEMA = "ledger"
METADATA = service_metadata(SCHEMA)

SETTINGS = Table(
    "settings",
    METADATA,
    Column("setting_id", Uuid, primary_key=True),
    Column("provider_id", Text, nullable=False),
    Column("placement_type", Text, nullable=False),
    Column("registered_places", Integer, nullable=False),
    Column("ofsted_rating", Text, nullable=False),
    Column("postcode_district", Text, nullable=False),
    Column("authority_code", Text, nullable=False),
    Column("is_open", Boolean, nullable=False),
    Index("settings_by_council", "authority_code", "placement_type"),
)
VACANCIES = Table(
    "vacancies",
    METADATA,
    Column("vacancy_id", Uuid, primary_key=True),
    Column("setting_id", Uuid, nullable=False),  # no foreign key: its setting may come later
    Column("beds", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("posted_at", DateTime(timezone=True), nullable=False),
    Column("last_confirmed_at", DateTime(timezone=True), nullable=False),
    Index("vacancies_open_by_setting", "setting_id", postgresql_where=text("status = 'open'")),
)
PLACEMENTS = Table(
    "placements",
    METADATA,
    Column("placement_id", Uuid, primary_key=True),
    Column("setting_id", Uuid, nullable=False),
    Column("placing_authority_code", Text, nullable=False),
    Column("beds", Integer, nullable=False),
    Column("is_active", Boolean, nullable=False),
    Index("placements_active_by_setting", "setting_id", postgresql_where=text("is_active")),
)
REFERRALS = Table(
    "referrals",
    METADATA,
    Column("referral_id", Uuid, primary_key=True),
    Column("authority_code", Text, nullable=False),
    Column("placement_types", ARRAY(Text), nullable=False),
    Column("is_open", Boolean, nullable=False),
)
# Council-level figures as each snapshot found them; a row holds until a later row for its key.
CAPACITY_HISTORY = Table(
    "capacity_history",
    METADATA,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("taken_at", DateTime(timezone=True), nullable=False),
    Column("authority_code", Text, nullable=False),
    Column("placement_type", Text, nullable=False),
    Column("registered_places", Integer, nullable=False),
    Column("occupied", Integer, nullable=False),
    Column("vacant", Integer, nullable=False),
    Column("offered", Integer, nullable=False),
    Column("stale_vacancies", Integer, nullable=False),
    Column("open_referrals", Integer, nullable=False),
    Index("capacity_history_by_key", "authority_code", "placement_type", "taken_at"),
    Index("capacity_history_by_time", "taken_at"),
)
FLOW_HISTORY = Table(
    "flow_history",
    METADATA,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("taken_at", DateTime(timezone=True), nullable=False),
    Column("authority_code", Text, nullable=False),
    Column("placing_authority_code", Text, nullable=False),
    Column("placement_type", Text, nullable=False),
    Column("beds", Integer, nullable=False),
    Index(
        "flow_history_by_key",
        "authority_code",
        "placing_authority_code",
        "placement_type",
        "taken_at",
    ),
    Index("flow_history_by_time", "taken_at"),
)
INBOX, CONSUMER_POSITIONS, AGGREGATE_VERSIONS, PARKED_EVENTS = consumer_tables(METADATA)

# Every table a rebuild recreates (in this order) beside the live ones.
LEDGER_TABLES: tuple[Table, ...] = (
    SETTINGS,
    VACANCIES,
    PLACEMENTS,
    REFERRALS,
    CAPACITY_HISTORY,
    FLOW_HISTORY,
    INBOX,
    CONSUMER_POSITIONS,
    AGGREGATE_VERSIONS,
    PARKED_EVENTS,
)

# Advisory lock held while a snapshot is written: one snapshot at a time per database.
SNAPSHOT_LOCK_ID = 8003


@contextlib.asynccontextmanager
async def connection_of(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """A pooled asyncpg connection (the queries here speak asyncpg, for bulk arrays)."""
    async with engine.connect() as sa_connection:
        raw = await sa_connection.get_raw_connection()
        connection: asyncpg.Connection = raw.driver_connection
        yield connection


_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _sql(statement: str, schema: str) -> str:
    """`statement` with `{s}` naming `schema`: a checked identifier from code, never from input."""
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(f"{schema!r} is not a schema name")
    return statement.replace("{s}", schema)


# --- record state: what the consumer loads, applies and saves -------------------------------------

_LOAD = {
    RecordKind.SETTING: "SELECT setting_id, provider_id, placement_type, registered_places,"
    " ofsted_rating, postcode_district, authority_code, is_open FROM {s}.settings"
    " WHERE setting_id = any($1::uuid[])",
    RecordKind.VACANCY: "SELECT vacancy_id, setting_id, beds, status, posted_at, last_confirmed_at"
    " FROM {s}.vacancies WHERE vacancy_id = any($1::uuid[])",
    RecordKind.PLACEMENT: "SELECT placement_id, setting_id, placing_authority_code, beds, is_active"
    " FROM {s}.placements WHERE placement_id = any($1::uuid[])",
    RecordKind.REFERRAL: "SELECT referral_id, authority_code, placement_types, is_open"
    " FROM {s}.referrals WHERE referral_id = any($1::uuid[])",
}

_SAVE_SETTINGS = """
INSERT INTO {s}.settings (setting_id, provider_id, placement_type, registered_places,
                          ofsted_rating, postcode_district, authority_code, is_open)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[],
                     $7::text[], $8::bool[])
ON CONFLICT (setting_id) DO UPDATE SET
    provider_id = excluded.provider_id, placement_type = excluded.placement_type,
    registered_places = excluded.registered_places, ofsted_rating = excluded.ofsted_rating,
    postcode_district = excluded.postcode_district, authority_code = excluded.authority_code,
    is_open = excluded.is_open
"""
_SAVE_VACANCIES = """
INSERT INTO {s}.vacancies (vacancy_id, setting_id, beds, status, posted_at, last_confirmed_at)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::text[], $5::timestamptz[],
                     $6::timestamptz[])
ON CONFLICT (vacancy_id) DO UPDATE SET
    setting_id = excluded.setting_id, beds = excluded.beds, status = excluded.status,
    posted_at = excluded.posted_at, last_confirmed_at = excluded.last_confirmed_at
"""
_SAVE_PLACEMENTS = """
INSERT INTO {s}.placements (placement_id, setting_id, placing_authority_code, beds, is_active)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int[], $5::bool[])
ON CONFLICT (placement_id) DO UPDATE SET
    setting_id = excluded.setting_id, placing_authority_code = excluded.placing_authority_code,
    beds = excluded.beds, is_active = excluded.is_active
"""
# unnest flattens a two-dimensional array, so each referral's types travel as one string.
_SAVE_REFERRALS = """
INSERT INTO {s}.referrals (referral_id, authority_code, placement_types, is_open)
SELECT r, a, string_to_array(t, ','), o
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bool[]) AS u(r, a, t, o)
ON CONFLICT (referral_id) DO UPDATE SET
    authority_code = excluded.authority_code, placement_types = excluded.placement_types,
    is_open = excluded.is_open
"""


async def load_records(
    connection: asyncpg.Connection, schema: str, wanted: dict[RecordKind, list[UUID]]
) -> LedgerState:
    """The records with these ids, as stored (absent ones are simply not in the state)."""
    state = LedgerState()
    rows = {
        kind: await connection.fetch(_sql(_LOAD[kind], schema), ids)
        for kind, ids in wanted.items()
        if ids
    }
    for r in rows.get(RecordKind.SETTING, ()):
        state.settings[r[0]] = SettingRecord(
            r[0], r[1], PlacementType(r[2]), r[3], OfstedRating(r[4]), r[5], r[6], r[7]
        )
    for r in rows.get(RecordKind.VACANCY, ()):
        state.vacancies[r[0]] = VacancyRecord(r[0], r[1], r[2], VacancyStatus(r[3]), r[4], r[5])
    for r in rows.get(RecordKind.PLACEMENT, ()):
        state.placements[r[0]] = PlacementRecord(r[0], r[1], r[2], r[3], r[4])
    for r in rows.get(RecordKind.REFERRAL, ()):
        types = tuple(PlacementType(t) for t in r[2])
        state.referrals[r[0]] = ReferralRecord(r[0], r[1], types, r[3])
    return state


async def save_records(connection: asyncpg.Connection, schema: str, state: LedgerState) -> None:
    """Insert or overwrite every record in `state`, one statement per kind of record."""
    if settings := list(state.settings.values()):
        await connection.execute(
            _sql(_SAVE_SETTINGS, schema),
            [s.setting_id for s in settings],
            [s.provider_id for s in settings],
            [s.placement_type.value for s in settings],
            [s.registered_places for s in settings],
            [s.ofsted_rating.value for s in settings],
            [s.postcode_district for s in settings],
            [s.authority_code for s in settings],
            [s.is_open for s in settings],
        )
    if vacancies := list(state.vacancies.values()):
        await connection.execute(
            _sql(_SAVE_VACANCIES, schema),
            [v.vacancy_id for v in vacancies],
            [v.setting_id for v in vacancies],
            [v.beds for v in vacancies],
            [v.status.value for v in vacancies],
            [v.posted_at for v in vacancies],
            [v.last_confirmed_at for v in vacancies],
        )
    if placements := list(state.placements.values()):
        await connection.execute(
            _sql(_SAVE_PLACEMENTS, schema),
            [p.placement_id for p in placements],
            [p.setting_id for p in placements],
            [p.placing_authority_code for p in placements],
            [p.beds for p in placements],
            [p.is_active for p in placements],
        )
    if referrals := list(state.referrals.values()):
        await connection.execute(
            _sql(_SAVE_REFERRALS, schema),
            [r.referral_id for r in referrals],
            [r.authority_code for r in referrals],
            [",".join(t.value for t in r.placement_types) for r in referrals],
            [r.is_open for r in referrals],
        )


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
                continue  # `apply` refuses it, naming the reason, and it is dead-lettered
            wanted[kind].append(record_id)
        return await load_records(connection, self.schema, wanted)

    def apply(self, state: LedgerState, event: Event) -> None:
        apply_event(state, event)

    async def save(self, connection: asyncpg.Connection, state: LedgerState) -> None:
        await save_records(connection, self.schema, state)


# --- capacity by council --------------------------------------------------------------------------

# Per open setting: beds occupied by active placements, beds offered in open vacancies, and
# open vacancies last confirmed before $1 (stale); summed by council and type. `vacant` is
# clamped per setting, so an over-full home never hides another home's empty beds.
_SETTING_FIGURES = """
WITH occupied AS (
    SELECT setting_id, sum(beds) AS beds FROM {s}.placements
    WHERE is_active GROUP BY setting_id
), offered AS (
    SELECT setting_id, sum(beds) AS beds, count(*) FILTER (WHERE last_confirmed_at < $1) AS stale
    FROM {s}.vacancies WHERE status = 'open' GROUP BY setting_id
)
SELECT s.authority_code, s.placement_type,
       sum(s.registered_places)::int AS registered_places,
       sum(coalesce(o.beds, 0))::int AS occupied,
       sum(greatest(s.registered_places - coalesce(o.beds, 0), 0))::int AS vacant,
       sum(coalesce(v.beds, 0))::int AS offered,
       sum(coalesce(v.stale, 0))::int AS stale_vacancies
FROM {s}.settings s
LEFT JOIN occupied o ON o.setting_id = s.setting_id
LEFT JOIN offered v ON v.setting_id = s.setting_id
WHERE s.is_open AND ($2::text[] IS NULL OR s.authority_code = any($2::text[]))
GROUP BY s.authority_code, s.placement_type
"""
_REFERRAL_FIGURES = """
SELECT authority_code, placement_type, count(*)::int AS open_referrals
FROM {s}.referrals, unnest(placement_types) AS placement_type
WHERE is_open AND ($1::text[] IS NULL OR authority_code = any($1::text[]))
GROUP BY authority_code, placement_type
"""
_FLOWS = """
SELECT s.authority_code, p.placing_authority_code, s.placement_type, sum(p.beds)::int AS beds
FROM {s}.placements p JOIN {s}.settings s ON s.setting_id = p.setting_id
WHERE p.is_active AND s.is_open AND ($1::text[] IS NULL OR s.authority_code = any($1::text[]))
GROUP BY s.authority_code, p.placing_authority_code, s.placement_type
"""


def _figures(row: asyncpg.Record) -> CouncilFigures:
    return CouncilFigures(
        registered_places=row["registered_places"],
        occupied=row["occupied"],
        vacant=row["vacant"],
        offered=row["offered"],
        stale_vacancies=row["stale_vacancies"],
        open_referrals=row.get("open_referrals", 0),
    )


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
    only = None if councils is None else list(councils)
    cutoff = stale_before(now, stale_after)
    setting_rows = await connection.fetch(_sql(_SETTING_FIGURES, schema), cutoff, only)
    referral_rows = await connection.fetch(_sql(_REFERRAL_FIGURES, schema), only)
    flow_rows = await connection.fetch(_sql(_FLOWS, schema), only)
    figures: defaultdict[CouncilKey, CouncilFigures] = defaultdict(CouncilFigures)
    for row in setting_rows:
        figures[_council_key(row)] += _figures(row)
    for row in referral_rows:
        figures[_council_key(row)] += CouncilFigures(open_referrals=row["open_referrals"])
    return CouncilCapacity(dict(figures), {_flow_key(r): r["beds"] for r in flow_rows})


# --- capacity history -----------------------------------------------------------------------------

_LATEST_FIGURES = """
SELECT DISTINCT ON (authority_code, placement_type) authority_code, placement_type,
       registered_places, occupied, vacant, offered, stale_vacancies, open_referrals
FROM {s}.capacity_history
WHERE ($1::timestamptz IS NULL OR taken_at <= $1)
  AND ($2::text[] IS NULL OR authority_code = any($2::text[]))
ORDER BY authority_code, placement_type, taken_at DESC, id DESC
"""
_LATEST_FLOWS = """
SELECT DISTINCT ON (authority_code, placing_authority_code, placement_type)
       authority_code, placing_authority_code, placement_type, beds
FROM {s}.flow_history
WHERE ($1::timestamptz IS NULL OR taken_at <= $1)
  AND ($2::text[] IS NULL OR authority_code = any($2::text[]))
ORDER BY authority_code, placing_authority_code, placement_type, taken_at DESC, id DESC
"""
_FIGURES_BETWEEN = """
SELECT taken_at, authority_code, placement_type,
       registered_places, occupied, vacant, offered, stale_vacancies, open_referrals
FROM {s}.capacity_history
WHERE taken_at > $1 AND taken_at <= $2 AND authority_code = any($3::text[])
ORDER BY taken_at, id
"""
_FLOWS_BETWEEN = """
SELECT taken_at, authority_code, placing_authority_code, placement_type, beds
FROM {s}.flow_history
WHERE taken_at > $1 AND taken_at <= $2 AND authority_code = any($3::text[])
ORDER BY taken_at, id
"""
_RECORD_FIGURES = """
INSERT INTO {s}.capacity_history (taken_at, authority_code, placement_type, registered_places,
                                  occupied, vacant, offered, stale_vacancies, open_referrals)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::int[], $5::int[], $6::int[], $7::int[],
                         $8::int[], $9::int[])
"""
_RECORD_FLOWS = """
INSERT INTO {s}.flow_history (taken_at, authority_code, placing_authority_code, placement_type,
                              beds)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::int[])
"""


async def history_as_of(
    connection: asyncpg.Connection,
    schema: str,
    *,
    at: datetime | None = None,
    councils: Collection[str] | None = None,
) -> CouncilCapacity:
    """The latest recorded row of every key at `at` (None: the latest of all)."""
    only = None if councils is None else list(councils)
    figure_rows = await connection.fetch(_sql(_LATEST_FIGURES, schema), at, only)
    flow_rows = await connection.fetch(_sql(_LATEST_FLOWS, schema), at, only)
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
    only = list(councils)
    figure_rows = await connection.fetch(_sql(_FIGURES_BETWEEN, schema), since, until, only)
    flow_rows = await connection.fetch(_sql(_FLOWS_BETWEEN, schema), since, until, only)
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
    if keys := list(figures):
        rows = [figures[key].as_row() for key in keys]
        await connection.execute(
            _sql(_RECORD_FIGURES, schema),
            taken_at,
            [council_code for council_code, _ in keys],
            [placement_type.value for _, placement_type in keys],
            *([row[column] for row in rows] for column in range(len(rows[0]))),
        )
    if flow_keys := list(flows):
        await connection.execute(
            _sql(_RECORD_FLOWS, schema),
            taken_at,
            [key[0] for key in flow_keys],
            [key[1] for key in flow_keys],
            [key[2].value for key in flow_keys],
            [flows[key] for key in flow_keys],
        )


async def lock_snapshots(connection: asyncpg.Connection) -> None:
    """Hold the snapshot lock until the caller's transaction ends."""
    await connection.execute("SELECT pg_advisory_xact_lock($1)", SNAPSHOT_LOCK_ID)


# --- counts (rebuild reports, tests) --------------------------------------------------------------

_COUNTS = {
    table: f"SELECT count(*) FROM {{s}}.{table}"  # noqa: S608 - table names from this tuple
    for table in ("settings", "vacancies", "placements", "referrals", "inbox", "parked_events")
}


async def row_counts(connection: asyncpg.Connection, schema: str) -> dict[str, int]:
    """Rows in each record table and in the inbox and parked events of `schema`."""
    return {
        table: await connection.fetchval(_sql(statement, schema))
        for table, statement in _COUNTS.items()
    }


async def events_applied(connection: asyncpg.Connection, schema: str) -> int:
    """Events applied so far: each aggregate's version is the count of its events applied."""
    applied = await connection.fetchval(
        _sql("SELECT coalesce(sum(version), 0) FROM {s}.aggregate_versions", schema)
    )
    return int(applied)
