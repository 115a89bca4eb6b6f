"""The provider schema: settings, vacancies and placements, with the outbox and idempotency keys.

Loaders can lock a row (`SELECT ... FOR UPDATE`): a command that checks capacity locks its setting
first, so two concurrent posts at one setting cannot both take the last free place.
"""

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ARRAY,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Row,
    Select,
    Table,
    Text,
    Uuid,
    func,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.enums import (
    Need,
    OfstedRating,
    PlacementEndReason,
    PlacementType,
    Sex,
    WithdrawalReason,
)
from contracts.envelope import Envelope
from services.platform.database import service_metadata
from services.platform.idempotency import idempotency_table
from services.platform.outbox import add_to_outbox, outbox_table
from services.provider.domain import (
    Capacity,
    Placement,
    PlacementStatus,
    Setting,
    SettingStatus,
    Vacancy,
    VacancyStatus,
    VacancyTerms,
)

SCHEMA = "provider"
METADATA = service_metadata(SCHEMA)

SETTINGS = Table(
    "settings",
    METADATA,
    Column("setting_id", Uuid, primary_key=True),
    Column("provider_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("placement_type", Text, nullable=False),
    Column("registered_places", Integer, nullable=False),
    Column("ofsted_rating", Text, nullable=False),
    Column("age_min", Integer, nullable=False),
    Column("age_max", Integer, nullable=False),
    Column("sexes_accepted", ARRAY(Text), nullable=False),
    Column("needs_met", ARRAY(Text), nullable=False),
    Column("postcode_district", Text, nullable=False),
    Column("authority_code", Text, nullable=False),
    Column("closed_on", Date),
    Column("version", Integer, nullable=False),
    Column("registered_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("settings_by_provider", "provider_id", "registered_at"),
)

VACANCIES = Table(
    "vacancies",
    METADATA,
    Column("vacancy_id", Uuid, primary_key=True),
    Column("setting_id", Uuid, ForeignKey(SETTINGS.c.setting_id), nullable=False),
    Column("provider_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("beds", Integer, nullable=False),
    Column("available_from", Date, nullable=False),
    Column("age_min", Integer),
    Column("age_max", Integer),
    Column("sexes_accepted", ARRAY(Text)),
    Column("needs_met", ARRAY(Text)),
    Column("withdrawal_reason", Text),
    Column("posted_at", DateTime(timezone=True), nullable=False),
    Column("last_confirmed_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    Column("version", Integer, nullable=False),
    Index("vacancies_by_setting", "setting_id", "status"),
    Index("vacancies_by_provider", "provider_id", "posted_at"),
    Index(
        "vacancies_open_by_confirmation",
        "last_confirmed_at",
        postgresql_where=text("status = 'open'"),
    ),
)

PLACEMENTS = Table(
    "placements",
    METADATA,
    Column("placement_id", Uuid, primary_key=True),
    Column("setting_id", Uuid, ForeignKey(SETTINGS.c.setting_id), nullable=False),
    Column("provider_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("placing_authority_code", Text, nullable=False),
    Column("start_date", Date, nullable=False),
    Column("beds", Integer, nullable=False),
    Column("vacancy_id", Uuid),
    Column("end_date", Date),
    Column("end_reason", Text),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    Column("version", Integer, nullable=False),
    Index("placements_by_setting", "setting_id", "status"),
    Index("placements_by_provider", "provider_id", "recorded_at"),
)

OUTBOX = outbox_table(METADATA)
IDEMPOTENCY_KEYS = idempotency_table(METADATA)


async def add_event(session: AsyncSession, envelope: Envelope[Any]) -> None:
    """Stage an event in the outbox, in the caller's transaction."""
    await add_to_outbox(session, OUTBOX, envelope)


# --- settings -------------------------------------------------------------------------------------


def _setting(row: Row[Any]) -> Setting:
    return Setting(
        setting_id=row.setting_id,
        provider_id=row.provider_id,
        status=SettingStatus(row.status),
        placement_type=PlacementType(row.placement_type),
        registered_places=row.registered_places,
        ofsted_rating=OfstedRating(row.ofsted_rating),
        age_min=row.age_min,
        age_max=row.age_max,
        sexes_accepted=tuple(Sex(value) for value in row.sexes_accepted),
        needs_met=tuple(Need(value) for value in row.needs_met),
        postcode_district=row.postcode_district,
        authority_code=row.authority_code,
        closed_on=row.closed_on,
        version=row.version,
        registered_at=row.registered_at,
        updated_at=row.updated_at,
    )


def setting_values(setting: Setting) -> dict[str, Any]:
    return {
        "setting_id": setting.setting_id,
        "provider_id": setting.provider_id,
        "status": setting.status.value,
        "placement_type": setting.placement_type.value,
        "registered_places": setting.registered_places,
        "ofsted_rating": setting.ofsted_rating.value,
        "age_min": setting.age_min,
        "age_max": setting.age_max,
        "sexes_accepted": [sex.value for sex in setting.sexes_accepted],
        "needs_met": [need.value for need in setting.needs_met],
        "postcode_district": setting.postcode_district,
        "authority_code": setting.authority_code,
        "closed_on": setting.closed_on,
        "version": setting.version,
        "registered_at": setting.registered_at,
        "updated_at": setting.updated_at,
    }


def _locked(query: Select[Any], lock: bool) -> Select[Any]:
    return query.with_for_update() if lock else query


async def load_setting(session: AsyncSession, setting_id: UUID, *, lock: bool) -> Setting | None:
    query = _locked(select(SETTINGS).where(SETTINGS.c.setting_id == setting_id), lock)
    row = (await session.execute(query)).one_or_none()
    return None if row is None else _setting(row)


async def insert_setting(session: AsyncSession, setting: Setting) -> None:
    await session.execute(SETTINGS.insert().values(setting_values(setting)))


async def save_setting(session: AsyncSession, setting: Setting) -> None:
    await session.execute(
        SETTINGS.update()
        .where(SETTINGS.c.setting_id == setting.setting_id)
        .values(setting_values(setting))
    )


async def settings_of(
    session: AsyncSession, provider_id: str, status: SettingStatus | None
) -> list[Setting]:
    query = select(SETTINGS).where(SETTINGS.c.provider_id == provider_id)
    if status is not None:
        query = query.where(SETTINGS.c.status == status.value)
    query = query.order_by(SETTINGS.c.registered_at, SETTINGS.c.setting_id)
    return [_setting(row) for row in (await session.execute(query)).all()]


async def capacities(session: AsyncSession, settings: Sequence[Setting]) -> dict[UUID, Capacity]:
    """Each setting's beds occupied by active placements and offered by open vacancies."""
    ids = [setting.setting_id for setting in settings]
    occupied = await _beds_by_setting(session, PLACEMENTS, ids, PlacementStatus.ACTIVE.value)
    offered = await _beds_by_setting(session, VACANCIES, ids, VacancyStatus.OPEN.value)
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
    session: AsyncSession, table: Table, setting_ids: Iterable[UUID], status: str
) -> dict[UUID, int]:
    ids = list(setting_ids)
    if not ids:
        return {}
    rows = await session.execute(
        select(table.c.setting_id, func.sum(table.c.beds))
        .where(table.c.setting_id.in_(ids), table.c.status == status)
        .group_by(table.c.setting_id)
    )
    return {setting_id: int(beds) for setting_id, beds in rows.all()}


# --- vacancies ------------------------------------------------------------------------------------


def _vacancy(row: Row[Any]) -> Vacancy:
    return Vacancy(
        vacancy_id=row.vacancy_id,
        setting_id=row.setting_id,
        provider_id=row.provider_id,
        status=VacancyStatus(row.status),
        beds=row.beds,
        available_from=row.available_from,
        terms=VacancyTerms(
            age_min=row.age_min,
            age_max=row.age_max,
            sexes_accepted=None
            if row.sexes_accepted is None
            else tuple(Sex(value) for value in row.sexes_accepted),
            needs_met=None
            if row.needs_met is None
            else tuple(Need(value) for value in row.needs_met),
        ),
        withdrawal_reason=None
        if row.withdrawal_reason is None
        else WithdrawalReason(row.withdrawal_reason),
        posted_at=row.posted_at,
        last_confirmed_at=row.last_confirmed_at,
        ended_at=row.ended_at,
        version=row.version,
    )


def _vacancy_values(vacancy: Vacancy) -> dict[str, Any]:
    terms = vacancy.terms
    return {
        "vacancy_id": vacancy.vacancy_id,
        "setting_id": vacancy.setting_id,
        "provider_id": vacancy.provider_id,
        "status": vacancy.status.value,
        "beds": vacancy.beds,
        "available_from": vacancy.available_from,
        "age_min": terms.age_min,
        "age_max": terms.age_max,
        "sexes_accepted": None
        if terms.sexes_accepted is None
        else [sex.value for sex in terms.sexes_accepted],
        "needs_met": None if terms.needs_met is None else [need.value for need in terms.needs_met],
        "withdrawal_reason": None
        if vacancy.withdrawal_reason is None
        else vacancy.withdrawal_reason.value,
        "posted_at": vacancy.posted_at,
        "last_confirmed_at": vacancy.last_confirmed_at,
        "ended_at": vacancy.ended_at,
        "version": vacancy.version,
    }


async def load_vacancy(session: AsyncSession, vacancy_id: UUID, *, lock: bool) -> Vacancy | None:
    query = _locked(select(VACANCIES).where(VACANCIES.c.vacancy_id == vacancy_id), lock)
    row = (await session.execute(query)).one_or_none()
    return None if row is None else _vacancy(row)


async def insert_vacancy(session: AsyncSession, vacancy: Vacancy) -> None:
    await session.execute(VACANCIES.insert().values(_vacancy_values(vacancy)))


async def save_vacancy(session: AsyncSession, vacancy: Vacancy) -> None:
    await session.execute(
        VACANCIES.update()
        .where(VACANCIES.c.vacancy_id == vacancy.vacancy_id)
        .values(_vacancy_values(vacancy))
    )


async def vacancies_of(
    session: AsyncSession,
    provider_id: str,
    status: VacancyStatus | None,
    setting_id: UUID | None,
) -> list[Vacancy]:
    query = select(VACANCIES).where(VACANCIES.c.provider_id == provider_id)
    if status is not None:
        query = query.where(VACANCIES.c.status == status.value)
    if setting_id is not None:
        query = query.where(VACANCIES.c.setting_id == setting_id)
    query = query.order_by(VACANCIES.c.posted_at, VACANCIES.c.vacancy_id)
    return [_vacancy(row) for row in (await session.execute(query)).all()]


async def lock_stale_vacancies(
    session: AsyncSession, confirmed_before: datetime, limit: int
) -> list[Vacancy]:
    """Open vacancies last confirmed before the cut-off, skipping rows another writer holds."""
    query = (
        select(VACANCIES)
        .where(
            VACANCIES.c.status == VacancyStatus.OPEN.value,
            VACANCIES.c.last_confirmed_at <= confirmed_before,
        )
        .order_by(VACANCIES.c.last_confirmed_at, VACANCIES.c.vacancy_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [_vacancy(row) for row in (await session.execute(query)).all()]


# --- placements -----------------------------------------------------------------------------------


def _placement(row: Row[Any]) -> Placement:
    return Placement(
        placement_id=row.placement_id,
        setting_id=row.setting_id,
        provider_id=row.provider_id,
        status=PlacementStatus(row.status),
        placing_authority_code=row.placing_authority_code,
        start_date=row.start_date,
        beds=row.beds,
        vacancy_id=row.vacancy_id,
        end_date=row.end_date,
        end_reason=None if row.end_reason is None else PlacementEndReason(row.end_reason),
        version=row.version,
        recorded_at=row.recorded_at,
        ended_at=row.ended_at,
    )


def _placement_values(placement: Placement) -> dict[str, Any]:
    return {
        "placement_id": placement.placement_id,
        "setting_id": placement.setting_id,
        "provider_id": placement.provider_id,
        "status": placement.status.value,
        "placing_authority_code": placement.placing_authority_code,
        "start_date": placement.start_date,
        "beds": placement.beds,
        "vacancy_id": placement.vacancy_id,
        "end_date": placement.end_date,
        "end_reason": None if placement.end_reason is None else placement.end_reason.value,
        "recorded_at": placement.recorded_at,
        "ended_at": placement.ended_at,
        "version": placement.version,
    }


async def load_placement(
    session: AsyncSession, placement_id: UUID, *, lock: bool
) -> Placement | None:
    query = _locked(select(PLACEMENTS).where(PLACEMENTS.c.placement_id == placement_id), lock)
    row = (await session.execute(query)).one_or_none()
    return None if row is None else _placement(row)


async def insert_placement(session: AsyncSession, placement: Placement) -> None:
    await session.execute(PLACEMENTS.insert().values(_placement_values(placement)))


async def save_placement(session: AsyncSession, placement: Placement) -> None:
    await session.execute(
        PLACEMENTS.update()
        .where(PLACEMENTS.c.placement_id == placement.placement_id)
        .values(_placement_values(placement))
    )


async def placements_of(
    session: AsyncSession,
    provider_id: str,
    status: PlacementStatus | None,
    setting_id: UUID | None,
) -> list[Placement]:
    query = select(PLACEMENTS).where(PLACEMENTS.c.provider_id == provider_id)
    if status is not None:
        query = query.where(PLACEMENTS.c.status == status.value)
    if setting_id is not None:
        query = query.where(PLACEMENTS.c.setting_id == setting_id)
    query = query.order_by(PLACEMENTS.c.recorded_at, PLACEMENTS.c.placement_id)
    return [_placement(row) for row in (await session.execute(query)).all()]
