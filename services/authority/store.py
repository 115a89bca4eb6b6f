"""Queries on the authority's tables; writes are `session.add` and `session.merge` of the rows."""

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from contracts.enums import SearchScope
from services.authority.tables import METADATA, Referral, ReferralStatus

# Every service's migration test reads its tables from `store.METADATA`.
__all__ = ["METADATA", "load_referral", "lock_referrals_due_to_widen", "referrals_of"]


async def load_referral(
    session: AsyncSession, referral_id: UUID, *, for_update: bool = False
) -> Referral | None:
    query = select(Referral).where(Referral.referral_id == referral_id)
    if for_update:
        query = query.with_for_update()
    return (await session.scalars(query)).one_or_none()


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
