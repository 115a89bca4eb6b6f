"""Alerting's queries: loading the book, saving a batch's changes, deliveries, and the API's reads.

The consumer's and the delivery worker's statements run on asyncpg connections and move rows in
bulk, one array per column (`unnest`), with the columns and their types taken from the tables
(tables.py). The HTTP side reads and writes the same table classes through SQLAlchemy sessions.
"""

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from functools import cache
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
from pydantic import BaseModel
from sqlalchemy import Column, Table, case, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from contracts.enums import RATING_RANK
from contracts.events import ReferralState, SettingProfile, SettingState, VacancyPosted
from services.alerting.domain import (
    Alert,
    AlertBook,
    AlertStatus,
    Changes,
    DeliveryState,
    SettingRow,
)
from services.alerting.holds import Hold
from services.alerting.matching import Fit
from services.alerting.notices import Audience, LoopNotice, Recipient, event_name
from services.alerting.tables import (
    ALERTS,
    DELIVERIES,
    HOLDS,
    INDEX_EPOCH,
    METADATA,
    NOTICES,
    OUTBOX,
    REFERRALS,
    SCHEMA,
    SETTING_OCCUPANCY,
    SETTINGS,
    STREAM_EVENTS,
    SUBSCRIPTIONS,
    VACANCIES,
    StoredAlert,
    Subscription,
    SubscriptionFields,
    WebhookDelivery,
)
from services.platform.clock import Clock
from services.platform.outbox import stage_in_outbox
from services.platform.secrets import Sealed
from services.platform.tables import (
    as_read,
    as_written,
    bulk_upsert,
    qualified,
    select_columns,
    unnest,
)

# Migrations and their test read the schema from here (tables.py declares it).
__all__ = ["METADATA", "SCHEMA"]

# Notifications of the stream's events (alerts raised and retracted, loop notices), sent when
# their transaction commits, each naming its position and recipient (`stream_notification`).
STREAM_CHANNEL = "alerting_stream"
# PostgreSQL refuses a notification of 8000 bytes or more (and with it the whole transaction): an
# event longer than this is notified without its data, which the stream reads from the table.
NOTIFICATION_LIMIT = 7900
# Held from a batch's first stream event until it commits, so that stream positions become
# visible in increasing order whichever shards' batches commit at once (services/alerting/
# stream.py reads them in that order).
STREAM_LOCK_ID = 8105


@cache
def _upsert(table: Table, columns: tuple[str, ...]) -> str:
    return bulk_upsert(table, columns)


async def _save(connection: asyncpg.Connection, table: Table, values: dict[str, list[Any]]) -> None:
    """Insert or overwrite rows given as one list per column, named as the table names them."""
    await connection.execute(_upsert(table, tuple(values)), *values.values())


_T = TypeVar("_T")


def _in_shards(
    batches: Sequence[tuple[int, Changes]], items_of: Callable[[Changes], Iterable[_T]]
) -> tuple[list[int], list[_T]]:
    """What `items_of` finds in each shard's changes, all together, and the shard of each."""
    shards: list[int] = []
    items: list[_T] = []
    for shard, changes in batches:
        found = list(items_of(changes))
        shards.extend([shard] * len(found))
        items.extend(found)
    return shards, items


async def _save_open(  # noqa: PLR0913, PLR0917 - the table, the shards, the records, 2 columns
    connection: asyncpg.Connection,
    table: Table,
    shards: list[int],
    states: Sequence[BaseModel],
    id_name: str,
    key_name: str,
) -> None:
    """Insert or overwrite open records kept as their id, one key column and their JSON state,
    each in its shard."""
    await _save(
        connection,
        table,
        {
            "shard": shards,
            id_name: [getattr(state, id_name) for state in states],
            key_name: [getattr(state, key_name) for state in states],
            "state": [state.model_dump_json() for state in states],
            "is_open": [True for _ in states],
        },
    )


# --- the book: loading committed state ------------------------------------------------------------

# States are read as JSON text: the contracts parse their own JSON (ids and dates from strings).
_LOAD_SETTINGS = f"SELECT state::text, is_open FROM {qualified(SETTINGS)} WHERE shard = $1"  # noqa: S608
_LOAD_OCCUPANCY = (
    select_columns(SETTING_OCCUPANCY, ["setting_id", "occupied_beds"]) + " WHERE shard = $1"
)
_LOAD_VACANCIES = f"SELECT state::text FROM {qualified(VACANCIES)} WHERE shard = $1 AND is_open"  # noqa: S608
_LOAD_REFERRALS = f"SELECT state::text FROM {qualified(REFERRALS)} WHERE shard = $1 AND is_open"  # noqa: S608
# A fit is kept as the alert's columns of the same names.
_FIT_COLUMNS = tuple(ALERTS.c[fit_field.name] for fit_field in fields(Fit))
_ALERT_NAMES = ", ".join(
    f'"{column.name}"' for column in (ALERTS.c.alert_id, ALERTS.c.raised_at, *_FIT_COLUMNS)
)
# The profile as JSON text too, parsed by its contract.
_LOAD_ALERTS = f"""
SELECT {_ALERT_NAMES}, setting_profile::text AS setting_profile FROM {qualified(ALERTS)}
WHERE status = 'open' AND shard = $1
"""  # noqa: S608 - names from the tables' own metadata
# A hold is kept as the columns of the same names.
_HOLD_NAMES = tuple(hold_field.name for hold_field in fields(Hold))
_LOAD_HOLDS = select_columns(HOLDS, _HOLD_NAMES) + " WHERE shard = $1"
_CURRENT_EPOCH = select_columns(INDEX_EPOCH, ["epoch"]) + " WHERE id = $1"
_FIRST_EPOCH = (
    f"INSERT INTO {qualified(INDEX_EPOCH)} (id, epoch) VALUES ($1, 0) ON CONFLICT DO NOTHING"  # noqa: S608
)
# Moves a shard's epoch on by $2 (made at $2 the first time) and returns it. Its row stays locked
# until the transaction ends, so one transaction at a time changes a shard's book, in any process:
# one round trip locks the book, reads the epoch as committed and takes the batch's new one.
_MOVE_EPOCH = f"""
INSERT INTO {qualified(INDEX_EPOCH)} AS e (id, epoch) VALUES ($1, $2)
ON CONFLICT (id) DO UPDATE SET epoch = e.epoch + $2
RETURNING epoch
"""  # noqa: S608 - names from the tables' own metadata
# The same for several shards at once, their rows locked in the order of their ids (so that two
# processes locking some of the same shards never each wait for the other).
_MOVE_EPOCHS = f"""
INSERT INTO {qualified(INDEX_EPOCH)} AS e (id, epoch)
SELECT id, 1 FROM unnest($1::int[]) AS u(id) ORDER BY id
ON CONFLICT (id) DO UPDATE SET epoch = e.epoch + 1
RETURNING id, epoch
"""  # noqa: S608 - names from the tables' own metadata


async def lock_book(connection: asyncpg.Connection, shard: int) -> int:
    """Hold the lock of `shard`'s book until the caller's transaction ends; its epoch."""
    epoch: int = await connection.fetchval(_MOVE_EPOCH, shard, 0)
    return epoch


async def lock_books_for_a_batch(
    connection: asyncpg.Connection, shards: Iterable[int]
) -> dict[int, int]:
    """Hold the lock of each shard's book until the caller's transaction ends, and move its epoch
    on by one: by shard, the batch's epoch, which commits with the batch's changes (the epoch
    before it is one less)."""
    rows = await connection.fetch(_MOVE_EPOCHS, sorted(shards))
    return {row["id"]: row["epoch"] for row in rows}


async def current_epoch(connection: asyncpg.Connection, shard: int) -> int:
    """The epoch of `shard` (its row made, at 0, the first time it is asked for)."""
    epoch: int | None = await connection.fetchval(_CURRENT_EPOCH, shard)
    if epoch is None:
        await connection.execute(_FIRST_EPOCH, shard)
        epoch = await connection.fetchval(_CURRENT_EPOCH, shard)
    assert epoch is not None
    return epoch


def _fit(row: asyncpg.Record) -> Fit:
    return Fit(**{column.name: as_read(column, row[column.name]) for column in _FIT_COLUMNS})


def _alert(row: asyncpg.Record) -> Alert:
    profile = row["setting_profile"]
    return Alert(
        row["alert_id"],
        _fit(row),
        row["raised_at"],
        None if profile is None else SettingProfile.model_validate_json(profile),
    )


async def load_book(connection: asyncpg.Connection, clock: Clock, shard: int) -> AlertBook:
    """Every open record and open alert of `shard`, as committed, in a new book with its index."""
    settings = await connection.fetch(_LOAD_SETTINGS, shard)
    occupancy = await connection.fetch(_LOAD_OCCUPANCY, shard)
    vacancies = await connection.fetch(_LOAD_VACANCIES, shard)
    referrals = await connection.fetch(_LOAD_REFERRALS, shard)
    alerts = await connection.fetch(_LOAD_ALERTS, shard)
    holds = await connection.fetch(_LOAD_HOLDS, shard)
    return AlertBook.of(
        settings=(SettingRow(SettingState.model_validate_json(r[0]), r[1]) for r in settings),
        occupied={r[0]: r[1] for r in occupancy},
        vacancies=(VacancyPosted.model_validate_json(r[0]) for r in vacancies),
        referrals=(ReferralState.model_validate_json(r[0]) for r in referrals),
        alerts=(_alert(r) for r in alerts),
        holds=(Hold(**dict(r)) for r in holds),
        clock=clock,
    )


# --- saving a batch's changes ---------------------------------------------------------------------

_CLOSE_VACANCIES = f"""
UPDATE {qualified(VACANCIES)} SET is_open = false
WHERE (shard, vacancy_id) IN (SELECT * FROM {unnest(VACANCIES.c.shard, VACANCIES.c.vacancy_id)})
"""  # noqa: S608 - names from the tables' own metadata
_CLOSE_REFERRALS = f"UPDATE {qualified(REFERRALS)} SET is_open = false WHERE referral_id = any($1)"  # noqa: S608
_RELEASE_HOLDS = f"""
DELETE FROM {qualified(HOLDS)}
WHERE (shard, request_id) IN (SELECT * FROM {unnest(HOLDS.c.shard, HOLDS.c.request_id)})
"""  # noqa: S608 - names from the tables' own metadata
_RETRACT_ALERTS = f"""
UPDATE {qualified(ALERTS)} a SET status = 'retracted', retracted_at = u.retracted_at,
    retraction_reason = u.retraction_reason
FROM {unnest(ALERTS.c.alert_id, ALERTS.c.retracted_at, ALERTS.c.retraction_reason)}
WHERE a.alert_id = u.alert_id AND a.status = 'open'
"""  # noqa: S608 - names from the tables' own metadata


def _insert_deliveries(about: str, recipient: Sequence[Column[Any]], subscribed: str) -> str:
    """One delivery per subscription that `subscribed` matches to a notice's `recipient` columns,
    in the order of the notices; `about` names the alert or loop notice each delivery is of."""
    notices = unnest(
        *recipient,
        DELIVERIES.c[about],
        DELIVERIES.c.kind,
        DELIVERIES.c.body,
        DELIVERIES.c.source_occurred_at,
        ordinality=True,
    )
    return f"""
INSERT INTO {qualified(DELIVERIES)} (subscription_id, {about}, kind, body, status,
    next_attempt_at, source_occurred_at)
SELECT s.subscription_id, u.{about}, u.kind, u.body, 'pending', now(), u.source_occurred_at
FROM {notices} JOIN {qualified(SUBSCRIPTIONS)} s ON {subscribed}
ORDER BY u.n, s.subscription_id
RETURNING delivery_id, {about}
"""  # noqa: S608 - names from the tables' own metadata


# An alert goes to the referring council's subscriptions. A raised alert's deliveries are leased
# as they are written (for `$6` seconds, when given) to the delivery worker of the process that
# writes them, which is handed them once the batch commits (`HandedDelivery`): none waits for a
# claim, and no other worker takes them while the lease lasts. A retraction is claimed as
# before, once its alert's delivery is no longer pending.
_ALERT_NOTICES = unnest(
    SUBSCRIPTIONS.c.authority_code,
    DELIVERIES.c.alert_id,
    DELIVERIES.c.kind,
    DELIVERIES.c.body,
    DELIVERIES.c.source_occurred_at,
    ordinality=True,
)
_INSERT_DELIVERIES = f"""
WITH inserted AS (
    INSERT INTO {qualified(DELIVERIES)} (subscription_id, alert_id, kind, body, status,
        next_attempt_at, source_occurred_at, lease_until)
    SELECT s.subscription_id, u.alert_id, u.kind, u.body, 'pending', now(), u.source_occurred_at,
        CASE WHEN u.kind = 'raised' THEN now() + make_interval(secs => $6::float8) END
    FROM {_ALERT_NOTICES} JOIN {qualified(SUBSCRIPTIONS)} s ON s.authority_code = u.authority_code
    ORDER BY u.n, s.subscription_id
    RETURNING delivery_id, subscription_id, alert_id, kind, body, attempts, source_occurred_at,
        lease_until
)
SELECT i.delivery_id, i.subscription_id, i.alert_id, i.kind, i.body, i.attempts,
    i.source_occurred_at, s.url, s.secret_ciphertext, s.secret_key_id, s.secret,
    i.lease_until IS NOT NULL AS leased
FROM inserted i JOIN {qualified(SUBSCRIPTIONS)} s USING (subscription_id)
"""  # noqa: S608 - names from the tables' own metadata
_NOTIFY = "SELECT count(pg_notify($1, body)) FROM unnest($2::text[]) WITH ORDINALITY AS u(body, n)"
# A notice is made once: a redelivered event finds its id taken and makes nothing.
_INSERT_NOTICES = f"""
INSERT INTO {qualified(NOTICES)} (notice_id, kind, audience, organisation_id, occurred_at)
SELECT notice_id, kind, audience, organisation_id, occurred_at
FROM {
    unnest(
        NOTICES.c.notice_id,
        NOTICES.c.kind,
        NOTICES.c.audience,
        NOTICES.c.organisation_id,
        NOTICES.c.occurred_at,
        ordinality=True,
    )
}
ORDER BY n
ON CONFLICT (notice_id) DO NOTHING
RETURNING notice_id
"""  # noqa: S608 - names from the tables' own metadata
# A loop notice goes to the subscriptions of the council or provider it concerns.
_INSERT_NOTICE_DELIVERIES = _insert_deliveries(
    "notice_id",
    (NOTICES.c.audience, NOTICES.c.organisation_id),
    "(u.audience = 'authority' AND s.authority_code = u.organisation_id)"
    " OR (u.audience = 'provider' AND s.provider_id = u.organisation_id)",
)


# The stream's events of a batch, in order: their positions are numbered in the order given.
_INSERT_STREAM_EVENTS = f"""
INSERT INTO {qualified(STREAM_EVENTS)} (audience, organisation_id, event, data)
SELECT audience, organisation_id, event, data
FROM {
    unnest(
        STREAM_EVENTS.c.audience,
        STREAM_EVENTS.c.organisation_id,
        STREAM_EVENTS.c.event,
        STREAM_EVENTS.c.data,
        ordinality=True,
    )
}
ORDER BY n
RETURNING position
"""  # noqa: S608 - names from the tables' own metadata


@dataclass(frozen=True, slots=True)
class Saved:
    """What a shard's changes queued: the deliveries leased to this process's worker as they were
    written (it is handed them once the batch has committed), and whether there are others (to
    be claimed from the table)."""

    handed: list["HandedDelivery"] = field(default_factory=list)
    others: bool = False


@dataclass(frozen=True, slots=True)
class Streamed:
    """An event of the alert stream: whose stream it is on, its name and its data (JSON text)."""

    recipient: Recipient
    event: str
    data: str


def webhook_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def stream_notification(position: int, streamed: Streamed) -> str:
    """What `STREAM_CHANNEL` carries for a stream event: a line of JSON with its position,
    recipient and name, then its data as stored, unless that would make the notification too long
    for PostgreSQL (`NOTIFICATION_LIMIT`): then nothing follows the line."""
    recipient = streamed.recipient
    head = json.dumps(
        {
            "position": position,
            "audience": recipient.audience.value,
            "organisation_id": recipient.organisation_id,
            "event": streamed.event,
        },
        separators=(",", ":"),
    )
    notification = f"{head}\n{streamed.data}"
    return notification if len(notification.encode()) < NOTIFICATION_LIMIT else head + "\n"


async def save_changes(
    connection: asyncpg.Connection,
    batches: Sequence[tuple[int, Changes]],
    *,
    lease_s: float | None = None,
) -> dict[int, Saved]:
    """Write each shard's changes of one batch (the transaction has locked their books for it,
    `lock_books_for_a_batch`), and queue their events, webhooks and notices: what each shard
    queued. With `lease_s`, the raised alerts' webhooks are leased for that long to the caller's
    delivery worker (`Saved.handed`)."""
    await _save_records(connection, batches)
    await _save_alerts(connection, batches)
    alerts, handed, alerts_streamed = await _queue_alert_notices(connection, batches, lease_s)
    notices, notices_streamed = await _queue_loop_notices(connection, batches)
    await _stream(connection, [*alerts_streamed, *notices_streamed])
    saved = {}
    for shard, _ in batches:
        leased = handed.get(shard, [])
        others = alerts.get(shard, 0) > len(leased) or notices.get(shard, 0) > 0
        saved[shard] = Saved(leased, others)
    return saved


async def _stream(connection: asyncpg.Connection, events: list[Streamed]) -> None:
    """Keep the batch's stream events, numbered in order, and notify the streams of each."""
    if not events:
        return
    await connection.execute("SELECT pg_advisory_xact_lock($1)", STREAM_LOCK_ID)
    rows = await connection.fetch(
        _INSERT_STREAM_EVENTS,
        [e.recipient.audience.value for e in events],
        [e.recipient.organisation_id for e in events],
        [e.event for e in events],
        [e.data for e in events],
    )
    # Rows are numbered as the ordered SELECT hands them over: the i-th smallest is the i-th event.
    positions = sorted(row[0] for row in rows)
    notifications = [
        stream_notification(position, e) for position, e in zip(positions, events, strict=True)
    ]
    await connection.fetchval(_NOTIFY, STREAM_CHANNEL, notifications)


async def _queue_loop_notices(
    connection: asyncpg.Connection, batches: Sequence[tuple[int, Changes]]
) -> tuple[dict[int, int], list[Streamed]]:
    """Make each notice not made before and queue its webhooks: how many each shard queued, and
    the stream events."""
    shards, notices = _in_shards(batches, lambda changes: changes.loop_notices)
    # Every shard applies the provider's events: a notice that more than one makes is made once.
    first: dict[UUID, tuple[int, LoopNotice]] = {}
    for shard, notice in zip(shards, notices, strict=True):
        first.setdefault(notice.notice_id, (shard, notice))
    if not first:
        return {}, []
    made = {
        row[0]
        for row in await connection.fetch(
            _INSERT_NOTICES,
            [n.notice_id for _, n in first.values()],
            [n.kind.value for _, n in first.values()],
            [n.recipient.audience.value for _, n in first.values()],
            [n.recipient.organisation_id for _, n in first.values()],
            [n.occurred_at for _, n in first.values()],
        )
    }
    new = [n for _, n in first.values() if n.notice_id in made]
    if not new:
        return {}, []
    bodies = [webhook_bytes(n.body) for n in new]
    deliveries = await connection.fetch(
        _INSERT_NOTICE_DELIVERIES,
        [n.recipient.audience.value for n in new],
        [n.recipient.organisation_id for n in new],
        [n.notice_id for n in new],
        [n.kind.value for n in new],
        bodies,
        [n.occurred_at for n in new],
    )
    queued = Counter(first[row["notice_id"]][0] for row in deliveries)
    streamed = [
        Streamed(n.recipient, n.kind.value, body.decode())
        for n, body in zip(new, bodies, strict=True)
    ]
    return dict(queued), streamed


async def _queue_alert_notices(
    connection: asyncpg.Connection, batches: Sequence[tuple[int, Changes]], lease_s: float | None
) -> tuple[dict[int, int], dict[int, list["HandedDelivery"]], list[Streamed]]:
    """Queue the alert events and the council's webhooks of a batch: how many webhooks each shard
    queued, those leased to the caller's worker (none without `lease_s`) by shard, and the
    stream events."""
    shards, notices = _in_shards(batches, lambda changes: changes.notices)
    if not notices:
        return {}, {}, []
    envelopes = [notice.envelope() for notice in notices]
    # In the order given: the outbox's ids are the order the relay publishes an alert's events in.
    await stage_in_outbox(connection, OUTBOX, envelopes)
    bodies = [webhook_bytes(notice.webhook_body()) for notice in notices]
    deliveries = await connection.fetch(
        _INSERT_DELIVERIES,
        [n.alert.fit.authority_code for n in notices],
        [n.alert.alert_id for n in notices],
        [n.kind.value for n in notices],
        bodies,
        [n.source.occurred_at for n in notices],
        lease_s,
    )
    streamed = [
        Streamed(
            Recipient(Audience.AUTHORITY, n.alert.fit.authority_code),
            event_name(n.kind.value),
            body.decode(),
        )
        for n, body in zip(notices, bodies, strict=True)
    ]
    # Every alert is of one shard: its referral's.
    shard_of = {n.alert.alert_id: shard for shard, n in zip(shards, notices, strict=True)}
    shard_of_delivery = {row["delivery_id"]: shard_of[row["alert_id"]] for row in deliveries}
    vacancies = {n.alert.alert_id: n.alert.fit.vacancy_id for n in notices}
    handed: dict[int, list[HandedDelivery]] = {}
    for delivery in _handed(deliveries, vacancies):
        handed.setdefault(shard_of_delivery[delivery.delivery.delivery_id], []).append(delivery)
    return dict(Counter(shard_of_delivery.values())), handed, streamed


def _handed(rows: Sequence[asyncpg.Record], vacancies: dict[UUID, UUID]) -> list["HandedDelivery"]:
    """The leased deliveries, each ranked among the same vacancy's to the same subscription:
    a council hears of each new vacancy first, then of its other referrals that fit it."""
    leased = sorted((row for row in rows if row["leased"]), key=lambda row: row["delivery_id"])
    seen: dict[tuple[UUID, UUID], int] = {}
    handed = []
    for row in leased:
        delivery = DueDelivery(**{name: row[name] for name in _DUE_FIELDS})
        key = (delivery.subscription_id, vacancies[row["alert_id"]])
        rank = seen.get(key, 0)
        seen[key] = rank + 1
        handed.append(HandedDelivery(delivery, rank))
    return handed


async def _save_records(
    connection: asyncpg.Connection, batches: Sequence[tuple[int, Changes]]
) -> None:
    """Write each shard's records: one statement per kind of change for all the shards."""
    shards, settings = _in_shards(batches, lambda changes: changes.settings.values())
    if settings:
        await _save(
            connection,
            SETTINGS,
            {
                "shard": shards,
                "setting_id": [row.state.setting_id for row in settings],
                "state": [row.state.model_dump_json() for row in settings],
                "is_open": [row.is_open for row in settings],
            },
        )
    shards, occupancy = _in_shards(batches, lambda changes: changes.occupancy.items())
    if occupancy:
        await _save(
            connection,
            SETTING_OCCUPANCY,
            {
                "shard": shards,
                "setting_id": [setting_id for setting_id, _ in occupancy],
                "occupied_beds": [beds for _, beds in occupancy],
            },
        )
    shards, vacancies = _in_shards(batches, lambda changes: changes.vacancies_posted.values())
    if vacancies:
        await _save_open(connection, VACANCIES, shards, vacancies, "vacancy_id", "setting_id")
    shards, closed = _in_shards(batches, lambda changes: changes.vacancies_closed)
    if closed:
        await connection.execute(_CLOSE_VACANCIES, shards, closed)
    shards, referrals = _in_shards(batches, lambda changes: changes.referrals.values())
    if referrals:
        await _save_open(connection, REFERRALS, shards, referrals, "referral_id", "authority_code")
    _, referrals_closed = _in_shards(batches, lambda changes: changes.referrals_closed)
    if referrals_closed:
        await connection.execute(_CLOSE_REFERRALS, referrals_closed)
    shards, released = _in_shards(batches, lambda changes: changes.holds_released)
    if released:
        await connection.execute(_RELEASE_HOLDS, shards, released)
    shards, holds = _in_shards(batches, lambda changes: changes.holds.values())
    if holds:
        await _save(
            connection,
            HOLDS,
            {
                "shard": shards,
                **{name: [getattr(hold, name) for hold in holds] for name in _HOLD_NAMES},
            },
        )


async def _save_alerts(
    connection: asyncpg.Connection, batches: Sequence[tuple[int, Changes]]
) -> None:
    # Retractions of earlier alerts first, so that a pair retracted and alerted again in the same
    # batch never has two open alerts at once.
    earlier = [
        notice
        for _, changes in batches
        for alert_id, notice in changes.retracted.items()
        if alert_id not in changes.raised
    ]
    if earlier:
        await connection.execute(
            _RETRACT_ALERTS,
            [n.alert.alert_id for n in earlier],
            [n.at for n in earlier],
            [n.reason.value if n.reason else None for n in earlier],
        )
    shards, raised = _in_shards(batches, lambda changes: changes.raised.values())
    if raised:
        retracted = {
            alert_id: notice
            for _, changes in batches
            for alert_id, notice in changes.retracted.items()
        }
        gone = [retracted.get(alert.alert_id) for alert in raised]
        fits = {
            column.name: [as_written(column, getattr(a.fit, column.name)) for a in raised]
            for column in _FIT_COLUMNS
        }
        # Every alert id is new: nothing is overwritten.
        await _save(
            connection,
            ALERTS,
            {
                "shard": shards,
                "alert_id": [a.alert_id for a in raised],
                **fits,
                "status": [
                    AlertStatus.OPEN.value if g is None else AlertStatus.RETRACTED.value
                    for g in gone
                ],
                "raised_at": [a.raised_at for a in raised],
                "retracted_at": [None if g is None else g.at for g in gone],
                "retraction_reason": [
                    None if g is None or g.reason is None else g.reason.value for g in gone
                ],
                "setting_profile": [
                    None if a.setting_profile is None else a.setting_profile.model_dump_json()
                    for a in raised
                ],
            },
        )


# --- deliveries: claiming, and recording what became of each try ----------------------------------


@dataclass(frozen=True, slots=True)
class DueDelivery:
    delivery_id: int
    subscription_id: UUID
    alert_id: UUID | None  # None for a placement-loop notice
    kind: str
    body: bytes
    attempts: int  # tries made before this one
    source_occurred_at: datetime
    url: str
    # The subscription's secret, sealed (services/platform/secrets.py), or in plain text if it
    # was stored before secrets were encrypted and not sealed since.
    secret_ciphertext: bytes | None
    secret_key_id: str | None
    secret: str | None


_DUE_FIELDS = tuple(due_field.name for due_field in fields(DueDelivery))


@dataclass(frozen=True, slots=True)
class HandedDelivery:
    """A delivery leased, as it was written, to the worker of the process that wrote it; `rank`
    orders a subscription's queue (0 for the first of a vacancy's alerts to it)."""

    delivery: DueDelivery
    rank: int


_DELIVERIES = qualified(DELIVERIES)
_SUBSCRIPTIONS = qualified(SUBSCRIPTIONS)
# A delivery is due when it is pending, its time has come and no worker holds its lease. The
# subscriptions with one due, each found through its own index range:
_SUBSCRIPTIONS_DUE = f"""
SELECT s.subscription_id FROM {_SUBSCRIPTIONS} s
WHERE EXISTS (
    SELECT 1 FROM {_DELIVERIES} d
    WHERE d.subscription_id = s.subscription_id AND d.status = 'pending'
      AND d.next_attempt_at <= now() AND (d.lease_until IS NULL OR d.lease_until < now()))
"""  # noqa: S608 - names from the tables' own metadata
# One subscription's next due deliveries in the order they fell due (a retry goes behind what is
# already waiting); a retraction waits for its alert's earlier delivery to the same subscription.
# The lease keeps other workers off them while they are tried.
_CLAIM = f"""
WITH chosen AS (
    SELECT d.delivery_id FROM {_DELIVERIES} d
    WHERE d.subscription_id = $1 AND d.status = 'pending'
      AND d.next_attempt_at <= now() AND (d.lease_until IS NULL OR d.lease_until < now())
      AND (d.kind = 'raised' OR NOT EXISTS (
          SELECT 1 FROM {_DELIVERIES} e
          WHERE e.alert_id = d.alert_id AND e.subscription_id = d.subscription_id
            AND e.delivery_id < d.delivery_id AND e.status = 'pending'))
    ORDER BY d.next_attempt_at, d.delivery_id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE {_DELIVERIES} d SET lease_until = now() + make_interval(secs => $3)
FROM chosen, {_SUBSCRIPTIONS} s
WHERE d.delivery_id = chosen.delivery_id AND s.subscription_id = d.subscription_id
RETURNING d.delivery_id, d.subscription_id, d.alert_id, d.kind, d.body, d.attempts,
          d.source_occurred_at, s.url, s.secret_ciphertext, s.secret_key_id, s.secret
"""  # noqa: S608 - names from the tables' own metadata
_DELIVERED = f"""
WITH done AS (
    UPDATE {_DELIVERIES} d SET status = 'delivered', attempts = d.attempts + 1,
        delivered_at = u.delivered_at, last_attempt_at = u.delivered_at, lease_until = NULL
    FROM {unnest(DELIVERIES.c.delivery_id, DELIVERIES.c.delivered_at)}
    WHERE d.delivery_id = u.delivery_id AND d.status = 'pending'
    RETURNING d.subscription_id, u.delivered_at
), counted AS (
    SELECT subscription_id, count(*) AS delivered, max(delivered_at) AS last_at
    FROM done GROUP BY subscription_id
)
UPDATE {_SUBSCRIPTIONS} s SET delivered = s.delivered + c.delivered,
    last_success_at = greatest(s.last_success_at, c.last_at)
FROM counted c WHERE s.subscription_id = c.subscription_id
"""  # noqa: S608 - names from the tables' own metadata
_FAILURES = unnest(
    DELIVERIES.c.delivery_id,
    DELIVERIES.c.last_error,
    DELIVERIES.c.next_attempt_at,
    DELIVERIES.c.last_attempt_at,
)
# A failure with no next try (next_attempt_at NULL) was the last: the delivery is dead.
_FAILED = f"""
WITH failed AS (
    UPDATE {_DELIVERIES} d SET attempts = d.attempts + 1, last_error = u.last_error,
        last_attempt_at = u.last_attempt_at, lease_until = NULL,
        status = CASE WHEN u.next_attempt_at IS NULL THEN 'dead' ELSE 'pending' END,
        next_attempt_at = coalesce(u.next_attempt_at, d.next_attempt_at)
    FROM {_FAILURES}
    WHERE d.delivery_id = u.delivery_id AND d.status = 'pending'
    RETURNING d.subscription_id, d.status, u.last_error, u.last_attempt_at
), counted AS (
    SELECT subscription_id, count(*) AS failures, count(*) FILTER (WHERE status = 'dead') AS dead,
           (array_agg(last_error ORDER BY last_attempt_at DESC))[1] AS last_error,
           max(last_attempt_at) AS last_at
    FROM failed GROUP BY subscription_id
)
UPDATE {_SUBSCRIPTIONS} s SET failed_attempts = s.failed_attempts + c.failures,
    dead = s.dead + c.dead, last_error = c.last_error,
    last_error_at = greatest(s.last_error_at, c.last_at)
FROM counted c WHERE s.subscription_id = c.subscription_id
"""  # noqa: S608 - names from the tables' own metadata


async def subscriptions_with_due_deliveries(connection: asyncpg.Connection) -> list[UUID]:
    return [row[0] for row in await connection.fetch(_SUBSCRIPTIONS_DUE)]


async def claim_due_deliveries(
    connection: asyncpg.Connection, subscription_id: UUID, *, limit: int, lease_s: float
) -> list[DueDelivery]:
    """Lease up to `limit` of the subscription's due deliveries, in the order they fell due."""
    rows = await connection.fetch(_CLAIM, subscription_id, limit, lease_s)
    claimed = [DueDelivery(**dict(row)) for row in rows]
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

    @property
    def next_attempt_at(self) -> datetime | None:
        return None if self.retry_in is None else self.at + timedelta(seconds=self.retry_in)


async def record_outcomes(
    connection: asyncpg.Connection, delivered: list[Delivered], failed: list[Failed]
) -> None:
    """What became of a set of tries: each delivery and its subscription. Each statement commits
    on its own (no transaction's two round trips): both change only deliveries still pending, so
    recording the set again after the second failed changes nothing twice."""
    if delivered:
        await connection.execute(
            _DELIVERED, [d.delivery_id for d in delivered], [d.at for d in delivered]
        )
    if failed:
        await connection.execute(
            _FAILED,
            [f.delivery_id for f in failed],
            [f.error[:1000] for f in failed],
            [f.next_attempt_at for f in failed],
            [f.at for f in failed],
        )


# --- the alert stream's stored events -------------------------------------------------------------

_STREAM_EVENTS = qualified(STREAM_EVENTS)
_NEWEST_POSITION = f"SELECT coalesce(max(position), 0) FROM {_STREAM_EVENTS}"  # noqa: S608
_STREAM_EVENTS_AFTER = f"""
SELECT position, event, data FROM {_STREAM_EVENTS}
WHERE audience = $1 AND organisation_id = $2 AND position > $3
ORDER BY position
LIMIT $4
"""  # noqa: S608 - names from the tables' own metadata
_STREAM_EVENT_DATA = f"SELECT data FROM {_STREAM_EVENTS} WHERE position = $1"  # noqa: S608


@dataclass(frozen=True, slots=True)
class StoredStreamEvent:
    position: int
    event: str
    data: str


async def newest_stream_position(connection: asyncpg.Connection) -> int:
    """The position of the newest stream event kept (0 if none is)."""
    position: int = await connection.fetchval(_NEWEST_POSITION)
    return position


async def stream_events_after(
    connection: asyncpg.Connection, recipient: Recipient, after: int, *, limit: int
) -> list[StoredStreamEvent]:
    """The first `limit` of `recipient`'s stream events after position `after`, in order."""
    rows = await connection.fetch(
        _STREAM_EVENTS_AFTER, recipient.audience.value, recipient.organisation_id, after, limit
    )
    return [StoredStreamEvent(*row) for row in rows]


async def stream_event_data(connection: asyncpg.Connection, position: int) -> str | None:
    """The data of the stream event at `position` (None if it has been pruned)."""
    data: str | None = await connection.fetchval(_STREAM_EVENT_DATA, position)
    return data


# --- the HTTP API: a council's subscriptions and alerts -------------------------------------------

# Best first, as matching ranks fits: local, nearer, better rated, then by ids.
_BY_RATING = case(RATING_RANK, value=col(StoredAlert.ofsted_rating), else_=0)


async def alerts_of_council(
    session: AsyncSession,
    authority_code: str,
    *,
    referral_id: UUID | None,
    status: AlertStatus | None,
    limit: int,
) -> Sequence[StoredAlert]:
    query = select(StoredAlert).where(col(StoredAlert.authority_code) == authority_code)
    if referral_id is not None:
        query = query.where(col(StoredAlert.referral_id) == referral_id)
    if status is not None:
        query = query.where(col(StoredAlert.status) == status)
    query = query.order_by(
        col(StoredAlert.local).desc(),
        col(StoredAlert.distance_miles),
        _BY_RATING.desc(),
        col(StoredAlert.referral_id),
        col(StoredAlert.vacancy_id),
    )
    return (await session.scalars(query.limit(limit))).all()


def _owned_by(owner: Recipient) -> Any:  # noqa: ANN401 - a SQLAlchemy condition
    column = (
        Subscription.authority_code
        if owner.audience is Audience.AUTHORITY
        else Subscription.provider_id
    )
    return col(column) == owner.organisation_id


async def subscriptions_of(
    session: AsyncSession, owner: Recipient
) -> list[tuple[Subscription, int]]:
    """The council's or provider's subscriptions, oldest first, each with its pending count."""
    pending = (
        select(func.count())
        .where(
            col(WebhookDelivery.subscription_id) == col(Subscription.subscription_id),
            col(WebhookDelivery.status) == DeliveryState.PENDING,
        )
        .scalar_subquery()
    )
    rows = await session.execute(
        select(Subscription, pending)
        .where(_owned_by(owner))
        .order_by(col(Subscription.created_at), col(Subscription.subscription_id))
    )
    return [(subscription, count) for subscription, count in rows]


async def insert_subscription(
    session: AsyncSession, subscription: SubscriptionFields, *, sealed: Sealed
) -> Subscription:
    """The new subscription as stored, with its delivery counts as the database starts them;
    its secret only sealed."""
    inserted = await session.scalars(
        insert(Subscription)
        .values(
            **subscription.model_dump(),
            secret_ciphertext=sealed.ciphertext,
            secret_key_id=sealed.key_id,
        )
        .returning(Subscription)
    )
    return inserted.one()


async def plain_secrets(connection: asyncpg.Connection) -> list[tuple[UUID, str]]:
    """Subscriptions whose secret is still in plain text (stored before secrets were sealed)."""
    rows = await connection.fetch(
        f"SELECT subscription_id, secret FROM {_SUBSCRIPTIONS}"  # noqa: S608 - the table's name
        " WHERE secret IS NOT NULL AND secret_ciphertext IS NULL"
    )
    return [(row["subscription_id"], row["secret"]) for row in rows]


async def seal_secret(
    connection: asyncpg.Connection, subscription_id: UUID, sealed: Sealed
) -> None:
    """Keep the subscription's secret only sealed, its plain text gone."""
    await connection.execute(
        f"UPDATE {_SUBSCRIPTIONS} SET secret_ciphertext = $2, secret_key_id = $3,"  # noqa: S608
        " secret = NULL WHERE subscription_id = $1",
        subscription_id,
        sealed.ciphertext,
        sealed.key_id,
    )


async def delete_subscription(
    session: AsyncSession, subscription_id: UUID, owner: Recipient
) -> bool:
    """Whether the council or provider had this subscription (its deliveries go with it)."""
    deleted = await session.scalar(
        delete(Subscription)
        .where(col(Subscription.subscription_id) == subscription_id, _owned_by(owner))
        .returning(col(Subscription.subscription_id))
    )
    return deleted is not None
