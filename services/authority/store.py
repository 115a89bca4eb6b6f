"""Queries on the authority's tables.

The HTTP side writes with `session.add` and `session.merge` of the rows. The consumer of
`provider.events` works on the processor's asyncpg connection, moving rows in bulk with the
columns and their types taken from the same table classes (services/platform/tables.py).
"""

from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import cache
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
from sqlalchemy import Column, Table, func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col, select
from sqlmodel.sql.expression import SelectOfScalar

from contracts.enums import SearchScope
from services.authority.tables import (
    METADATA,
    OPEN_REQUEST_STATUSES,
    PlacementRequest,
    ProviderSetting,
    ProviderVacancy,
    Referral,
    ReferralStatus,
    SettingOccupancy,
)
from services.platform.tables import (
    array_param,
    as_read,
    as_written,
    bulk_upsert,
    is_array,
    qualified,
    select_columns,
    table_of,
    unnest,
)

# Every service's migration test reads its tables from `store.METADATA`.
__all__ = [
    "METADATA",
    "has_open_request",
    "load_referral",
    "load_request",
    "lock_referrals_due_to_widen",
    "occupied_beds",
    "referrals_of",
    "requests_of",
]

SCHEMA = "authority"

Row = TypeVar("Row", bound=SQLModel)


async def _load_one(
    session: AsyncSession, query: SelectOfScalar[Row], for_update: bool
) -> Row | None:
    """The one row `query` finds, if any; locked with `for_update`."""
    if for_update:
        query = query.with_for_update()
    return (await session.scalars(query)).one_or_none()


async def load_referral(
    session: AsyncSession, referral_id: UUID, *, for_update: bool = False
) -> Referral | None:
    return await _load_one(
        session, select(Referral).where(Referral.referral_id == referral_id), for_update
    )


async def referrals_of(
    session: AsyncSession, authority_code: str, status: ReferralStatus | None
) -> Sequence[Referral]:
    """A council's own referrals, newest first."""
    query = select(Referral).where(Referral.authority_code == authority_code)
    if status is not None:
        query = query.where(Referral.status == status)
    return (await session.scalars(query.order_by(col(Referral.opened_at).desc()))).all()


async def lock_referrals_due_to_widen(
    session: AsyncSession, now: datetime, limit: int
) -> Sequence[Referral]:
    """Local referrals whose time is up, locked; rows another worker holds are skipped."""
    query = (
        select(Referral)
        .where(
            Referral.status == ReferralStatus.OPEN,
            Referral.search_scope == SearchScope.LOCAL,
            col(Referral.widened_at).is_(None),
            Referral.widen_at <= now,
        )
        .order_by(col(Referral.widen_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.scalars(query)).all()


# --- placement requests and the provider view, for the HTTP side ----------------------------------


async def load_request(
    session: AsyncSession, request_id: UUID, *, for_update: bool = False
) -> PlacementRequest | None:
    return await _load_one(
        session,
        select(PlacementRequest).where(PlacementRequest.request_id == request_id),
        for_update,
    )


async def requests_of(
    session: AsyncSession, referral_id: UUID, *, for_update: bool = False
) -> Sequence[PlacementRequest]:
    """A referral's requests, oldest first (the caller holds the referral's lock to update them)."""
    query = (
        select(PlacementRequest)
        .where(PlacementRequest.referral_id == referral_id)
        .order_by(col(PlacementRequest.requested_at), col(PlacementRequest.request_id))
    )
    if for_update:
        query = query.with_for_update()
    return (await session.scalars(query)).all()


async def has_open_request(session: AsyncSession, referral_id: UUID, vacancy_id: UUID) -> bool:
    query = select(func.count()).where(
        PlacementRequest.referral_id == referral_id,
        PlacementRequest.vacancy_id == vacancy_id,
        col(PlacementRequest.status).in_(OPEN_REQUEST_STATUSES),
    )
    return bool((await session.execute(query)).scalar_one())


async def load_vacancy(session: AsyncSession, vacancy_id: UUID) -> ProviderVacancy | None:
    return await session.get(ProviderVacancy, vacancy_id)


async def settings_by_id(
    session: AsyncSession, setting_ids: Iterable[UUID]
) -> dict[UUID, ProviderSetting]:
    query = select(ProviderSetting).where(col(ProviderSetting.setting_id).in_(set(setting_ids)))
    return {setting.setting_id: setting for setting in (await session.scalars(query)).all()}


async def occupied_beds(session: AsyncSession, setting_id: UUID) -> int:
    occupancy = await session.get(SettingOccupancy, setting_id)
    return 0 if occupancy is None else occupancy.occupied_beds


# --- the consumer's bulk statements (asyncpg) -----------------------------------------------------


def _written(column: Column[Any], value: Any) -> object:  # noqa: ANN401 - of the column's type
    if is_array(column):
        return array_param(value)  # bulk_upsert takes an array joined by commas
    return as_written(column, value)


@cache
def _select_by(table: Table, key: str, *, for_update: bool) -> str:
    lock = " ORDER BY " + f'"{key}"' + " FOR UPDATE" if for_update else ""
    return select_columns(table) + f' WHERE "{table.columns[key].name}" = any($1::uuid[])' + lock


async def fetch_rows(
    connection: asyncpg.Connection,
    model: type[Row],
    key: str,
    ids: Iterable[UUID],
    *,
    for_update: bool = False,
) -> list[Row]:
    """The rows of `model` whose `key` is among `ids`; locked in key order with `for_update`."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    table = table_of(model)
    records = await connection.fetch(_select_by(table, key, for_update=for_update), wanted)
    return [
        model(**{column.name: as_read(column, record[column.name]) for column in table.columns})
        for record in records
    ]


async def upsert_rows(
    connection: asyncpg.Connection, model: type[SQLModel], rows: Sequence[SQLModel]
) -> None:
    """Insert or overwrite whole rows of `model` by primary key."""
    if not rows:
        return
    table = table_of(model)
    values = [
        [_written(column, getattr(row, column.name)) for row in rows] for column in table.columns
    ]
    await connection.execute(bulk_upsert(table), *values)


_REFERRALS = table_of(Referral)
# What a placement changes on a referral: its lifecycle and version, never what the council wrote.
_REFERRAL_LIFECYCLE = [
    _REFERRALS.c[name]
    for name in ("referral_id", "status", "outcome", "closed_at", "version", "updated_at")
]
_UPDATE_REFERRALS = f"""
UPDATE {qualified(_REFERRALS)} r SET
    {", ".join(f'"{c.name}" = u."{c.name}"' for c in _REFERRAL_LIFECYCLE[1:])}
FROM {unnest(*_REFERRAL_LIFECYCLE)}
WHERE r.referral_id = u.referral_id
"""  # noqa: S608 - names from the tables' own metadata


async def update_referral_lifecycles(
    connection: asyncpg.Connection, referrals: Sequence[Referral]
) -> None:
    """Save the status, outcome and version of referrals the consumer holds locked."""
    if referrals:
        await connection.execute(
            _UPDATE_REFERRALS,
            *(
                [_written(column, getattr(referral, column.name)) for referral in referrals]
                for column in _REFERRAL_LIFECYCLE
            ),
        )
