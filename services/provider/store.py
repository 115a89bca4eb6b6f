"""The provider's queries over its tables (declared in `tables.py`).

Loaders can lock a row (`SELECT ... FOR UPDATE`): a command that checks capacity locks its setting
first, so two concurrent posts at one setting cannot both take the last free place.
"""

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TypeVar
from uuid import UUID

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from services.provider.domain import Capacity
from services.provider.tables import (
    IDEMPOTENCY_KEYS,
    METADATA,
    OUTBOX,
    Placement,
    PlacementStatus,
    Setting,
    SettingStatus,
    Vacancy,
    VacancyStatus,
)

# The schema's tables, for whoever asks the store for them (the migrations' test, the relay).
__all__ = [
    "IDEMPOTENCY_KEYS",
    "METADATA",
    "OUTBOX",
    "capacities",
    "capacity",
    "load",
    "lock_stale_vacancies",
    "placements_of",
    "save",
    "settings_of",
    "vacancies_of",
]

Record = TypeVar("Record", Setting, Vacancy, Placement)


async def load(
    session: AsyncSession, kind: type[Record], key: UUID, *, lock: bool
) -> Record | None:
    return await session.get(kind, key, with_for_update=lock)


async def save(session: AsyncSession, record: Record) -> None:
    """Write `record` over the stored row with its key.

    The session copies it onto the row it loaded (so that object changes too) and writes it before
    its next query or at commit.
    """
    await session.merge(record)


# --- settings -------------------------------------------------------------------------------------


async def settings_of(
    session: AsyncSession, provider_id: str, status: SettingStatus | None
) -> Sequence[Setting]:
    query = select(Setting).where(Setting.provider_id == provider_id)
    if status is not None:
        query = query.where(Setting.status == status)
    query = query.order_by(col(Setting.registered_at), col(Setting.setting_id))
    return (await session.scalars(query)).all()


async def capacities(session: AsyncSession, settings: Sequence[Setting]) -> dict[UUID, Capacity]:
    """Each setting's beds occupied by active placements and offered by open vacancies."""
    ids = [setting.setting_id for setting in settings]
    occupied = await _beds_by_setting(session, Placement, ids, PlacementStatus.ACTIVE)
    offered = await _beds_by_setting(session, Vacancy, ids, VacancyStatus.OPEN)
    return {
        setting.setting_id: Capacity(
            registered_places=setting.registered_places,
            occupied=occupied.get(setting.setting_id, 0),
            offered=offered.get(setting.setting_id, 0),
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


async def vacancies_of(
    session: AsyncSession,
    provider_id: str,
    status: VacancyStatus | None,
    setting_id: UUID | None,
) -> Sequence[Vacancy]:
    query = select(Vacancy).where(Vacancy.provider_id == provider_id)
    if status is not None:
        query = query.where(Vacancy.status == status)
    if setting_id is not None:
        query = query.where(Vacancy.setting_id == setting_id)
    query = query.order_by(col(Vacancy.posted_at), col(Vacancy.vacancy_id))
    return (await session.scalars(query)).all()


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


# --- placements -----------------------------------------------------------------------------------


async def placements_of(
    session: AsyncSession,
    provider_id: str,
    status: PlacementStatus | None,
    setting_id: UUID | None,
) -> Sequence[Placement]:
    query = select(Placement).where(Placement.provider_id == provider_id)
    if status is not None:
        query = query.where(Placement.status == status)
    if setting_id is not None:
        query = query.where(Placement.setting_id == setting_id)
    query = query.order_by(col(Placement.recorded_at), col(Placement.placement_id))
    return (await session.scalars(query)).all()
