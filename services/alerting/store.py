"""The alerting schema and its queries: records, alerts, subscriptions, deliveries, the index epoch.

The consumer's queries run on the asyncpg connection of its batch transaction and move rows in
bulk (`unnest`); the HTTP side uses SQLAlchemy sessions. Record states are kept as the JSON of
their latest event payload, so the start-up load parses them with the contracts' own models.
"""

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from contracts.enums import OfstedRating, PlacementType
from contracts.events import ReferralState, SettingState, VacancyPosted
from contracts.serialization import to_bytes
from contracts.topics import topic_for_event
from services.alerting.domain import Alert, AlertBook, AlertStatus, Changes, Clock, SettingRow
from services.alerting.matching import Fit
from services.platform.consumer import consumer_tables
from services.platform.database import service_metadata
from services.platform.idempotency import idempotency_table
from services.platform.outbox import outbox_table

SCHEMA = "alerting"
METADATA = service_metadata(SCHEMA)
# Notifications of alerts raised and retracted, sent when their transaction commits.
ALERT_CHANNEL = "alerting_alerts"
# Held by each consumer transaction: one batch at a time changes the book, in any process.
BOOK_LOCK_ID = 8104


def _timestamp(name: str, *, nullable: bool = True) -> Column[Any]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


SETTINGS = Table(
    "settings",
    METADATA,
    Column("setting_id", Uuid, primary_key=True),
    Column("state", JSONB, nullable=False),  # the latest SettingRegistered/Updated payload
    Column("is_open", Boolean, nullable=False),
)
SETTING_OCCUPANCY = Table(
    "setting_occupancy",
    METADATA,
    Column("setting_id", Uuid, primary_key=True),
    Column("occupied_beds", Integer, nullable=False),
)
VACANCIES = Table(
    "vacancies",
    METADATA,
    Column("vacancy_id", Uuid, primary_key=True),
    Column("setting_id", Uuid, nullable=False),
    Column("state", JSONB, nullable=False),  # its VacancyPosted payload
    Column("is_open", Boolean, nullable=False),
    Index("vacancies_by_setting", "setting_id"),
)
REFERRALS = Table(
    "referrals",
    METADATA,
    Column("referral_id", Uuid, primary_key=True),
    Column("authority_code", Text, nullable=False),
    Column("state", JSONB, nullable=False),  # the latest state, with its current search scope
    Column("is_open", Boolean, nullable=False),
)
ALERTS = Table(
    "alerts",
    METADATA,
    Column("alert_id", Uuid, primary_key=True),
    Column("referral_id", Uuid, nullable=False),
    Column("vacancy_id", Uuid, nullable=False),
    Column("setting_id", Uuid, nullable=False),
    Column("authority_code", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("distance_miles", Float, nullable=False),
    Column("local", Boolean, nullable=False),
    Column("placement_type", Text, nullable=False),
    Column("ofsted_rating", Text, nullable=False),
    Column("postcode_district", Text, nullable=False),
    Column("beds", Integer, nullable=False),
    _timestamp("raised_at", nullable=False),
    _timestamp("retracted_at"),
    Column("retraction_reason", Text),
    # One open alert per (referral, vacancy); a retracted pair may be alerted again later.
    Index(
        "alerts_one_open_per_pair",
        "referral_id",
        "vacancy_id",
        unique=True,
        postgresql_where=text("status = 'open'"),
    ),
    Index("alerts_by_council", "authority_code", "status"),
    Index("alerts_by_referral", "referral_id"),
)
SUBSCRIPTIONS = Table(
    "subscriptions",
    METADATA,
    Column("subscription_id", Uuid, primary_key=True),
    Column("authority_code", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("secret", Text, nullable=False),
    _timestamp("created_at", nullable=False),
    Column("delivered", BigInteger, nullable=False, server_default="0"),
    Column("failed_attempts", BigInteger, nullable=False, server_default="0"),
    Column("dead", BigInteger, nullable=False, server_default="0"),
    Column("last_error", Text),
    _timestamp("last_error_at"),
    _timestamp("last_success_at"),
    Index("subscriptions_by_council", "authority_code"),
)
DELIVERIES = Table(
    "deliveries",
    METADATA,
    Column("delivery_id", BigInteger, primary_key=True, autoincrement=True),
    Column(
        "subscription_id",
        Uuid,
        ForeignKey(SUBSCRIPTIONS.c.subscription_id, ondelete="CASCADE"),
        nullable=False,
    ),
    Column("alert_id", Uuid, nullable=False),
    Column("kind", Text, nullable=False),  # raised | retracted
    Column("body", LargeBinary, nullable=False),  # the exact bytes every try sends
    Column("status", Text, nullable=False),  # pending | delivered | dead
    Column("attempts", Integer, nullable=False, server_default="0"),
    _timestamp("next_attempt_at", nullable=False),
    _timestamp("lease_until"),
    Column("last_error", Text),
    _timestamp("last_attempt_at"),
    _timestamp("delivered_at"),
    _timestamp("source_occurred_at", nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Each subscription's queue, in the order its deliveries fall due.
    Index(
        "deliveries_due_by_subscription",
        "subscription_id",
        "next_attempt_at",
        "delivery_id",
        postgresql_where=text("status = 'pending'"),
    ),
    Index("deliveries_by_alert", "alert_id", "subscription_id"),
)
# One row: bumped by every consumer transaction, so a process can tell whether the batch it
# applied to its in-memory book committed (the epoch it wrote is there) or rolled back.
INDEX_EPOCH = Table(
    "index_epoch",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("epoch", BigInteger, nullable=False),
)
OUTBOX = outbox_table(METADATA)
IDEMPOTENCY_KEYS = idempotency_table(METADATA)
INBOX, CONSUMER_POSITIONS, AGGREGATE_VERSIONS, PARKED_EVENTS = consumer_tables(METADATA)


def _sql(statement: str) -> str:
    """`statement` with `{s}` naming the schema (a constant of this module, never input)."""
    return statement.replace("{s}", SCHEMA)


@contextlib.asynccontextmanager
async def connection_of(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """A pooled asyncpg connection (the queries here speak asyncpg, for bulk arrays)."""
    async with engine.connect() as sa_connection:
        raw = await sa_connection.get_raw_connection()
        connection: asyncpg.Connection = raw.driver_connection
        yield connection


# --- the book: loading committed state ------------------------------------------------------------


async def lock_book(connection: asyncpg.Connection) -> None:
    """Hold the book's lock until the caller's transaction ends."""
    await connection.execute("SELECT pg_advisory_xact_lock($1)", BOOK_LOCK_ID)


async def current_epoch(connection: asyncpg.Connection) -> int:
    epoch: int = await connection.fetchval(_sql("SELECT epoch FROM {s}.index_epoch WHERE id = 1"))
    return epoch


def _fit(row: asyncpg.Record) -> Fit:
    return Fit(
        referral_id=row["referral_id"],
        vacancy_id=row["vacancy_id"],
        setting_id=row["setting_id"],
        authority_code=row["authority_code"],
        distance_miles=row["distance_miles"],
        local=row["local"],
        placement_type=PlacementType(row["placement_type"]),
        ofsted_rating=OfstedRating(row["ofsted_rating"]),
        postcode_district=row["postcode_district"],
        beds=row["beds"],
    )


async def load_book(connection: asyncpg.Connection, clock: Clock) -> AlertBook:
    """Every open record and open alert, as committed, in a new book with its index."""
    settings = await connection.fetch(_sql("SELECT state::text, is_open FROM {s}.settings"))
    occupancy = await connection.fetch(
        _sql("SELECT setting_id, occupied_beds FROM {s}.setting_occupancy")
    )
    vacancies = await connection.fetch(_sql("SELECT state::text FROM {s}.vacancies WHERE is_open"))
    referrals = await connection.fetch(_sql("SELECT state::text FROM {s}.referrals WHERE is_open"))
    alerts = await connection.fetch(
        _sql(
            "SELECT alert_id, referral_id, vacancy_id, setting_id, authority_code, distance_miles,"
            " local, placement_type, ofsted_rating, postcode_district, beds, raised_at"
            " FROM {s}.alerts WHERE status = 'open'"
        )
    )
    return AlertBook.of(
        settings=(SettingRow(SettingState.model_validate_json(r[0]), r[1]) for r in settings),
        occupied={r[0]: r[1] for r in occupancy},
        vacancies=(VacancyPosted.model_validate_json(r[0]) for r in vacancies),
        referrals=(ReferralState.model_validate_json(r[0]) for r in referrals),
        alerts=(Alert(r["alert_id"], _fit(r), r["raised_at"]) for r in alerts),
        clock=clock,
    )


# --- saving a batch's changes ---------------------------------------------------------------------

_SAVE_SETTINGS = _sql("""
INSERT INTO {s}.settings (setting_id, state, is_open)
SELECT i, s::jsonb, o FROM unnest($1::uuid[], $2::text[], $3::bool[]) AS u(i, s, o)
ON CONFLICT (setting_id) DO UPDATE SET state = excluded.state, is_open = excluded.is_open
""")
_SAVE_OCCUPANCY = _sql("""
INSERT INTO {s}.setting_occupancy (setting_id, occupied_beds)
SELECT * FROM unnest($1::uuid[], $2::int[])
ON CONFLICT (setting_id) DO UPDATE SET occupied_beds = excluded.occupied_beds
""")
_SAVE_VACANCIES = _sql("""
INSERT INTO {s}.vacancies (vacancy_id, setting_id, state, is_open)
SELECT i, t, s::jsonb, true FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS u(i, t, s)
ON CONFLICT (vacancy_id) DO UPDATE SET
    setting_id = excluded.setting_id, state = excluded.state, is_open = true
""")
_CLOSE_VACANCIES = _sql("UPDATE {s}.vacancies SET is_open = false WHERE vacancy_id = any($1)")
_SAVE_REFERRALS = _sql("""
INSERT INTO {s}.referrals (referral_id, authority_code, state, is_open)
SELECT i, a, s::jsonb, true FROM unnest($1::uuid[], $2::text[], $3::text[]) AS u(i, a, s)
ON CONFLICT (referral_id) DO UPDATE SET
    authority_code = excluded.authority_code, state = excluded.state, is_open = true
""")
_CLOSE_REFERRALS = _sql("UPDATE {s}.referrals SET is_open = false WHERE referral_id = any($1)")
_RETRACT_ALERTS = _sql("""
UPDATE {s}.alerts a SET status = 'retracted', retracted_at = u.at, retraction_reason = u.why
FROM unnest($1::uuid[], $2::timestamptz[], $3::text[]) AS u(id, at, why)
WHERE a.alert_id = u.id AND a.status = 'open'
""")
_INSERT_ALERTS = _sql("""
INSERT INTO {s}.alerts (alert_id, referral_id, vacancy_id, setting_id, authority_code,
    status, distance_miles, local, placement_type, ofsted_rating, postcode_district, beds,
    raised_at, retracted_at, retraction_reason)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[],
    $7::float8[], $8::bool[], $9::text[], $10::text[], $11::text[], $12::int[],
    $13::timestamptz[], $14::timestamptz[], $15::text[])
""")
_INSERT_OUTBOX = _sql("""
INSERT INTO {s}.outbox (event_id, event_type, topic, message_key, aggregate_id, sequence,
    body, created_at)
SELECT e, t, p, k, a, q, b, c
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[], $5::uuid[], $6::int[], $7::bytea[],
    $8::timestamptz[]) WITH ORDINALITY AS u(e, t, p, k, a, q, b, c, n)
ORDER BY n
""")
# One delivery per subscription of the referring council, in the order of the notices.
_INSERT_DELIVERIES = _sql("""
INSERT INTO {s}.deliveries (subscription_id, alert_id, kind, body, status, next_attempt_at,
    source_occurred_at)
SELECT s.subscription_id, u.alert_id, u.kind, u.body, 'pending', now(), u.occurred
FROM unnest($1::text[], $2::uuid[], $3::text[], $4::bytea[], $5::timestamptz[])
    WITH ORDINALITY AS u(code, alert_id, kind, body, occurred, n)
JOIN {s}.subscriptions s ON s.authority_code = u.code
ORDER BY u.n, s.subscription_id
RETURNING delivery_id
""")
_NOTIFY = "SELECT count(pg_notify($1, body)) FROM unnest($2::text[]) WITH ORDINALITY AS u(body, n)"
_BUMP_EPOCH = _sql("UPDATE {s}.index_epoch SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch")


@dataclass(frozen=True, slots=True)
class Saved:
    epoch: int
    deliveries: int


def webhook_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


async def save_changes(connection: asyncpg.Connection, changes: Changes) -> Saved:
    """Write one batch's changes, bump the epoch, and queue its events, webhooks and notices."""
    epoch: int = await connection.fetchval(_BUMP_EPOCH)
    await _save_records(connection, changes)
    await _save_alerts(connection, changes)
    notices = changes.notices
    if not notices:
        return Saved(epoch, 0)
    envelopes = [notice.envelope() for notice in notices]
    await connection.execute(
        _INSERT_OUTBOX,
        [e.event_id for e in envelopes],
        [e.event_type for e in envelopes],
        [topic_for_event(e.event_type).name for e in envelopes],
        [e.key for e in envelopes],
        [e.aggregate_id for e in envelopes],
        [e.sequence for e in envelopes],
        [to_bytes(e) for e in envelopes],
        [e.occurred_at for e in envelopes],
    )
    bodies = [webhook_bytes(notice.webhook_body()) for notice in notices]
    deliveries = await connection.fetch(
        _INSERT_DELIVERIES,
        [n.alert.fit.authority_code for n in notices],
        [n.alert.alert_id for n in notices],
        [n.kind.value for n in notices],
        bodies,
        [n.source.occurred_at for n in notices],
    )
    await connection.fetchval(_NOTIFY, ALERT_CHANNEL, [body.decode() for body in bodies])
    return Saved(epoch, len(deliveries))


async def _save_records(connection: asyncpg.Connection, changes: Changes) -> None:
    if settings := list(changes.settings.values()):
        await connection.execute(
            _SAVE_SETTINGS,
            [row.state.setting_id for row in settings],
            [row.state.model_dump_json() for row in settings],
            [row.is_open for row in settings],
        )
    if changes.occupancy:
        await connection.execute(
            _SAVE_OCCUPANCY, list(changes.occupancy), list(changes.occupancy.values())
        )
    if vacancies := list(changes.vacancies_posted.values()):
        await connection.execute(
            _SAVE_VACANCIES,
            [v.vacancy_id for v in vacancies],
            [v.setting_id for v in vacancies],
            [v.model_dump_json() for v in vacancies],
        )
    if changes.vacancies_closed:
        await connection.execute(_CLOSE_VACANCIES, list(changes.vacancies_closed))
    if referrals := list(changes.referrals.values()):
        await connection.execute(
            _SAVE_REFERRALS,
            [r.referral_id for r in referrals],
            [r.authority_code for r in referrals],
            [r.model_dump_json() for r in referrals],
        )
    if changes.referrals_closed:
        await connection.execute(_CLOSE_REFERRALS, list(changes.referrals_closed))


async def _save_alerts(connection: asyncpg.Connection, changes: Changes) -> None:
    # Retractions of earlier alerts first, so that a pair retracted and alerted again in the same
    # batch never has two open alerts at once.
    earlier = [n for alert_id, n in changes.retracted.items() if alert_id not in changes.raised]
    if earlier:
        await connection.execute(
            _RETRACT_ALERTS,
            [n.alert.alert_id for n in earlier],
            [n.at for n in earlier],
            [n.reason.value if n.reason else None for n in earlier],
        )
    if raised := list(changes.raised.values()):
        gone = [changes.retracted.get(alert.alert_id) for alert in raised]
        await connection.execute(
            _INSERT_ALERTS,
            [a.alert_id for a in raised],
            [a.fit.referral_id for a in raised],
            [a.fit.vacancy_id for a in raised],
            [a.fit.setting_id for a in raised],
            [a.fit.authority_code for a in raised],
            [AlertStatus.OPEN.value if g is None else AlertStatus.RETRACTED.value for g in gone],
            [a.fit.distance_miles for a in raised],
            [a.fit.local for a in raised],
            [a.fit.placement_type.value for a in raised],
            [a.fit.ofsted_rating.value for a in raised],
            [a.fit.postcode_district for a in raised],
            [a.fit.beds for a in raised],
            [a.raised_at for a in raised],
            [None if g is None else g.at for g in gone],
            [None if g is None or g.reason is None else g.reason.value for g in gone],
        )


# --- deliveries: claiming, and recording what became of each try ----------------------------------


@dataclass(frozen=True, slots=True)
class DueDelivery:
    delivery_id: int
    subscription_id: UUID
    alert_id: UUID
    kind: str
    body: bytes
    attempts: int  # tries made before this one
    source_occurred_at: datetime
    url: str
    secret: str


# A delivery is due when it is pending, its time has come and no worker holds its lease. The
# subscriptions with one due, each found through its own index range:
_SUBSCRIPTIONS_DUE = _sql("""
SELECT s.subscription_id FROM {s}.subscriptions s
WHERE EXISTS (
    SELECT 1 FROM {s}.deliveries d
    WHERE d.subscription_id = s.subscription_id AND d.status = 'pending'
      AND d.next_attempt_at <= now() AND (d.lease_until IS NULL OR d.lease_until < now()))
""")
# One subscription's next due deliveries in the order they fell due (a retry goes behind what is
# already waiting); a retraction waits for its alert's earlier delivery to the same subscription.
# The lease keeps other workers off them while they are tried.
_CLAIM = _sql("""
WITH chosen AS (
    SELECT d.delivery_id FROM {s}.deliveries d
    WHERE d.subscription_id = $1 AND d.status = 'pending'
      AND d.next_attempt_at <= now() AND (d.lease_until IS NULL OR d.lease_until < now())
      AND (d.kind = 'raised' OR NOT EXISTS (
          SELECT 1 FROM {s}.deliveries e
          WHERE e.alert_id = d.alert_id AND e.subscription_id = d.subscription_id
            AND e.delivery_id < d.delivery_id AND e.status = 'pending'))
    ORDER BY d.next_attempt_at, d.delivery_id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE {s}.deliveries d SET lease_until = now() + make_interval(secs => $3)
FROM chosen, {s}.subscriptions s
WHERE d.delivery_id = chosen.delivery_id AND s.subscription_id = d.subscription_id
RETURNING d.delivery_id, d.subscription_id, d.alert_id, d.kind, d.body, d.attempts,
          d.source_occurred_at, s.url, s.secret
""")
_DELIVERED = _sql("""
WITH done AS (
    UPDATE {s}.deliveries d SET status = 'delivered', attempts = d.attempts + 1,
        delivered_at = u.at, last_attempt_at = u.at, lease_until = NULL
    FROM unnest($1::bigint[], $2::timestamptz[]) AS u(id, at)
    WHERE d.delivery_id = u.id AND d.status = 'pending'
    RETURNING d.subscription_id, u.at
), counted AS (
    SELECT subscription_id, count(*) AS delivered, max(at) AS last_at
    FROM done GROUP BY subscription_id
)
UPDATE {s}.subscriptions s SET delivered = s.delivered + c.delivered,
    last_success_at = greatest(s.last_success_at, c.last_at)
FROM counted c WHERE s.subscription_id = c.subscription_id
""")
_FAILED = _sql("""
WITH failed AS (
    UPDATE {s}.deliveries d SET attempts = d.attempts + 1, last_error = u.error,
        last_attempt_at = u.at, lease_until = NULL,
        status = CASE WHEN u.retry_in IS NULL THEN 'dead' ELSE 'pending' END,
        next_attempt_at = CASE WHEN u.retry_in IS NULL THEN d.next_attempt_at
                               ELSE u.at + make_interval(secs => u.retry_in) END
    FROM unnest($1::bigint[], $2::text[], $3::float8[], $4::timestamptz[])
        AS u(id, error, retry_in, at)
    WHERE d.delivery_id = u.id AND d.status = 'pending'
    RETURNING d.subscription_id, d.status, u.error, u.at
), counted AS (
    SELECT subscription_id, count(*) AS failures, count(*) FILTER (WHERE status = 'dead') AS dead,
           (array_agg(error ORDER BY at DESC))[1] AS last_error, max(at) AS last_at
    FROM failed GROUP BY subscription_id
)
UPDATE {s}.subscriptions s SET failed_attempts = s.failed_attempts + c.failures,
    dead = s.dead + c.dead, last_error = c.last_error,
    last_error_at = greatest(s.last_error_at, c.last_at)
FROM counted c WHERE s.subscription_id = c.subscription_id
""")


async def subscriptions_with_due_deliveries(connection: asyncpg.Connection) -> list[UUID]:
    return [row[0] for row in await connection.fetch(_SUBSCRIPTIONS_DUE)]


async def claim_due_deliveries(
    connection: asyncpg.Connection, subscription_id: UUID, *, limit: int, lease_s: float
) -> list[DueDelivery]:
    """Lease up to `limit` of the subscription's due deliveries, in the order they fell due."""
    rows = await connection.fetch(_CLAIM, subscription_id, limit, lease_s)
    claimed = [
        DueDelivery(
            delivery_id=r["delivery_id"],
            subscription_id=r["subscription_id"],
            alert_id=r["alert_id"],
            kind=r["kind"],
            body=r["body"],
            attempts=r["attempts"],
            source_occurred_at=r["source_occurred_at"],
            url=r["url"],
            secret=r["secret"],
        )
        for r in rows
    ]
    return sorted(claimed, key=lambda d: d.delivery_id)


@dataclass(frozen=True, slots=True)
class Delivered:
    delivery_id: int
    at: datetime


@dataclass(frozen=True, slots=True)
class Failed:
    delivery_id: int
    error: str
    retry_in: float | None  # seconds until the next try; None: that was the last, it is dead
    at: datetime


async def record_outcomes(
    connection: asyncpg.Connection, delivered: list[Delivered], failed: list[Failed]
) -> None:
    """What became of a set of tries, in one transaction: each delivery and its subscription."""
    async with connection.transaction():
        if delivered:
            await connection.execute(
                _DELIVERED, [d.delivery_id for d in delivered], [d.at for d in delivered]
            )
        if failed:
            await connection.execute(
                _FAILED,
                [f.delivery_id for f in failed],
                [f.error[:1000] for f in failed],
                [f.retry_in for f in failed],
                [f.at for f in failed],
            )


# --- reads for the HTTP API -----------------------------------------------------------------------

# Best first, as matching ranks fits: local, nearer, better rated, then by ids.
_ALERTS_OF_COUNCIL = _sql("""
SELECT alert_id, referral_id, vacancy_id, setting_id, authority_code, status, local,
       distance_miles, placement_type, ofsted_rating, postcode_district, beds, raised_at,
       retracted_at, retraction_reason
FROM {s}.alerts
WHERE authority_code = $1 AND ($2::uuid IS NULL OR referral_id = $2)
  AND ($3::text IS NULL OR status = $3)
ORDER BY local DESC, distance_miles,
    CASE ofsted_rating WHEN 'outstanding' THEN 4 WHEN 'good' THEN 3
        WHEN 'requires_improvement' THEN 2 WHEN 'inadequate' THEN 1 ELSE 0 END DESC,
    referral_id, vacancy_id
LIMIT $4
""")


async def alerts_of_council(
    connection: asyncpg.Connection,
    authority_code: str,
    *,
    referral_id: UUID | None,
    status: AlertStatus | None,
    limit: int,
) -> list[dict[str, Any]]:
    rows = await connection.fetch(
        _ALERTS_OF_COUNCIL,
        authority_code,
        referral_id,
        None if status is None else status.value,
        limit,
    )
    return [dict(row) for row in rows]


_SUBSCRIPTIONS_OF_COUNCIL = _sql("""
SELECT s.subscription_id, s.authority_code, s.url, s.created_at, s.delivered,
       s.failed_attempts, s.dead, s.last_error, s.last_error_at, s.last_success_at,
       (SELECT count(*) FROM {s}.deliveries d
        WHERE d.subscription_id = s.subscription_id AND d.status = 'pending') AS pending
FROM {s}.subscriptions s
WHERE s.authority_code = $1
ORDER BY s.created_at, s.subscription_id
""")


async def subscriptions_of_council(
    connection: asyncpg.Connection, authority_code: str
) -> list[dict[str, Any]]:
    return [dict(row) for row in await connection.fetch(_SUBSCRIPTIONS_OF_COUNCIL, authority_code)]


async def insert_subscription(  # noqa: PLR0913 - one column each
    session: AsyncSession,
    *,
    subscription_id: UUID,
    authority_code: str,
    url: str,
    secret: str,
    created_at: datetime,
) -> None:
    await session.execute(
        SUBSCRIPTIONS.insert().values(
            subscription_id=subscription_id,
            authority_code=authority_code,
            url=url,
            secret=secret,
            created_at=created_at,
        )
    )


async def delete_subscription(
    connection: asyncpg.Connection, subscription_id: UUID, authority_code: str
) -> bool:
    """Whether the council had this subscription (its deliveries go with it)."""
    deleted = await connection.fetchval(
        _sql(
            "DELETE FROM {s}.subscriptions"
            " WHERE subscription_id = $1 AND authority_code = $2 RETURNING subscription_id"
        ),
        subscription_id,
        authority_code,
    )
    return deleted is not None
