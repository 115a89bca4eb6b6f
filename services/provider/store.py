"""The provider's queries over its tables (declared in `tables.py`).

Loaders can lock a row (`SELECT ... FOR UPDATE`): a command that checks capacity locks its setting
first, so two concurrent posts at one setting cannot both take the last free place.
"""

from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, TypeVar
from uuid import UUID

from sqlalchemy import ColumnElement, func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped
from sqlmodel import SQLModel, col, select

from services.provider.domain import Capacity
from services.provider.tables import (
    HOLDING,
    IDEMPOTENCY_KEYS,
    METADATA,
    OUTBOX,
    Placement,
    PlacementStatus,
    Request,
    RequestStatus,
    Setting,
    Vacancy,
    VacancyStatus,
)

# The schema's tables, for whoever asks the store for them (the migrations' test, the relay).
__all__ = [
    "IDEMPOTENCY_KEYS",
    "METADATA",
    "OUTBOX",
    "beds_held",
    "capacities",
    "capacity",
    "count_stale_vacancies",
    "holding_requests",
    "load",
    "lock_expired_offers",
    "lock_stale_vacancies",
    "of_provider",
    "save",
]

Record = TypeVar("Record", Setting, Vacancy, Placement, Request)


async def load(
    session: AsyncSession, kind: type[Record], key: UUID, *, lock: bool
) -> Record | None:
    return await session.get(kind, key, with_for_update=lock)


# The order each kind is listed in: oldest first, but requests newest first.
_LISTED_BY: Final[dict[type[SQLModel], tuple[ColumnElement[Any] | Mapped[Any], ...]]] = {
    Setting: (col(Setting.registered_at), col(Setting.setting_id)),
    Vacancy: (col(Vacancy.posted_at), col(Vacancy.vacancy_id)),
    Placement: (col(Placement.recorded_at), col(Placement.placement_id)),
    Request: (col(Request.requested_at).desc(), col(Request.request_id)),
}


async def of_provider(
    session: AsyncSession,
    kind: type[Record],
    provider_id: str,
    status: StrEnum | None,
    setting_id: UUID | None = None,
) -> Sequence[Record]:
    """A provider's records of `kind`, of one status and at one setting if given, in `kind`'s
    listing order."""
    query = select(kind).where(kind.provider_id == provider_id)
    if status is not None:
        query = query.where(kind.status == status)
    if setting_id is not None:
        query = query.where(kind.setting_id == setting_id)
    query = query.order_by(*_LISTED_BY[kind])
    return (await session.scalars(query)).all()


async def save(session: AsyncSession, record: Record) -> None:
    """Write `record` over the stored row with its key.

    The session copies it onto the row it loaded (so that object changes too) and writes it before
    its next query or at commit.
    """
    await session.merge(record)


# --- settings -------------------------------------------------------------------------------------


async def capacities(session: AsyncSession, settings: Sequence[Setting]) -> dict[UUID, Capacity]:
    """Each setting's beds occupied by active placements and offered by open vacancies."""
    ids = [setting.setting_id for setting in settings]
    occupied = await _beds_by_setting(session, Placement, ids, PlacementStatus.ACTIVE)
    offered = await _beds_by_setting(session, Vacancy, ids, VacancyStatus.OPEN)
    held = await _held_by(session, col(Request.setting_id), ids)
    return {
        setting.setting_id: Capacity(
            registered_places=setting.registered_places,
            occupied=occupied.get(setting.setting_id, 0),
            offered=offered.get(setting.setting_id, 0),
            held=held.get(setting.setting_id, 0),
        )
        for setting in settings
    }


async def capacity(session: AsyncSession, setting: Setting) -> Capacity:
    return (await capacities(session, [setting]))[setting.setting_id]


async def _beds_by_setting(
    session: AsyncSession,
    kind: type[Placement | Vacancy],
    setting_ids: Iterable[UUID],
    status: PlacementStatus | VacancyStatus,
) -> dict[UUID, int]:
    ids = list(setting_ids)
    if not ids:
        return {}
    rows = await session.execute(
        select(col(kind.setting_id), func.sum(col(kind.beds)))
        .where(col(kind.setting_id).in_(ids), col(kind.status) == status)
        .group_by(col(kind.setting_id))
    )
    return {setting_id: int(beds) for setting_id, beds in rows.all()}


# --- vacancies ------------------------------------------------------------------------------------


async def lock_stale_vacancies(
    session: AsyncSession, confirmed_before: datetime, limit: int
) -> Sequence[Vacancy]:
    """Open vacancies last confirmed before the cut-off, skipping rows another writer holds."""
    query = (
        select(Vacancy)
        .where(Vacancy.status == VacancyStatus.OPEN, Vacancy.last_confirmed_at <= confirmed_before)
        .order_by(col(Vacancy.last_confirmed_at), col(Vacancy.vacancy_id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.scalars(query)).all()


async def count_stale_vacancies(session: AsyncSession, confirmed_before: datetime) -> int:
    """How many open vacancies were last confirmed before the cut-off."""
    query = select(func.count()).where(
        Vacancy.status == VacancyStatus.OPEN, Vacancy.last_confirmed_at <= confirmed_before
    )
    return int(await session.scalar(query) or 0)


# --- placement requests ---------------------------------------------------------------------------


async def _held_by(
    session: AsyncSession, key: Mapped[UUID], ids: Iterable[UUID]
) -> dict[UUID, int]:
    wanted = list(ids)
    if not wanted:
        return {}
    rows = await session.execute(
        select(key, func.sum(col(Request.offered_beds)))
        .where(key.in_(wanted), col(Request.status).in_(HOLDING))
        .group_by(key)
    )
    return {record_id: int(beds or 0) for record_id, beds in rows.all()}


async def beds_held(session: AsyncSession, vacancy_ids: Iterable[UUID]) -> dict[UUID, int]:
    """Each vacancy's beds held by offers (offered or accepted, not yet placed)."""
    return await _held_by(session, col(Request.vacancy_id), vacancy_ids)


async def holding_requests(
    session: AsyncSession, *, vacancy_ids: Iterable[UUID] = (), setting_id: UUID | None = None
) -> Sequence[Request]:
    """The requests whose offers hold beds at these vacancies (or at the setting), locked."""
    query = select(Request).where(col(Request.status).in_(HOLDING))
    if setting_id is not None:
        query = query.where(Request.setting_id == setting_id)
    else:
        query = query.where(col(Request.vacancy_id).in_(list(vacancy_ids)))
    query = query.order_by(col(Request.vacancy_id), col(Request.request_id)).with_for_update()
    return (await session.scalars(query)).all()


async def lock_expired_offers(
    session: AsyncSession, now: datetime, limit: int
) -> tuple[dict[UUID, Vacancy], Sequence[Request]]:
    """Offers past their expiry and their vacancies, locked vacancy first (as every writer locks).

    Vacancies another writer holds are skipped and looked at next time.
    """
    expired = (
        select(Request.vacancy_id)
        .where(Request.status == RequestStatus.OFFERED, col(Request.offer_expires_at) <= now)
        .limit(limit)
    )
    vacancies = (
        await session.scalars(
            select(Vacancy)
            .where(col(Vacancy.vacancy_id).in_(expired))
            .order_by(col(Vacancy.vacancy_id))
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not vacancies:
        return {}, []
    requests = (
        await session.scalars(
            select(Request)
            .where(
                col(Request.vacancy_id).in_([v.vacancy_id for v in vacancies]),
                Request.status == RequestStatus.OFFERED,
                col(Request.offer_expires_at) <= now,
            )
            .order_by(col(Request.offer_expires_at), col(Request.request_id))
            .with_for_update()
        )
    ).all()
    return {vacancy.vacancy_id: vacancy for vacancy in vacancies}, requests
