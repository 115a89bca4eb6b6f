"""One method per command or query: load, let the domain decide, save, emit and audit, in one go.

Each runs in one transaction of state, outbox row and audit row, through the service's `Writer`.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncSession

from contracts.enums import ReferralOutcome
from contracts.events import ReferralEvent
from services.authority import domain
from services.authority.audit import SYSTEM_ACTOR
from services.authority.domain import ReferralDetails, WideningPolicy
from services.authority.models import ReferralView
from services.authority.store import load_referral, lock_referrals_due_to_widen, referrals_of
from services.authority.tables import (
    AuditAction,
    AuditEntry,
    AuditOutcome,
    Referral,
    ReferralStatus,
)
from services.platform.clock import Clock, utc_now
from services.platform.errors import NotFoundError
from services.platform.idempotency import StoredResponse
from services.platform.writes import Writer, WriteRequest


class ReferralOfAnotherCouncilError(NotFoundError):
    """Another council's referral: answered exactly as an unknown one, audited as a denial."""


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated home finder: whom to audit, and the council whose referrals they see."""

    actor: str
    role: str
    authority_code: str
    request_id: str | None

    def audit(
        self, action: AuditAction, referral_id: UUID | None, status_code: int, at: datetime
    ) -> AuditEntry:
        """The row of an allowed request (refusals are audited by `audit.add_audit_trail`)."""
        return AuditEntry(
            at=at,
            actor=self.actor,
            role=self.role,
            organisation=self.authority_code,
            action=action,
            referral_id=referral_id,
            outcome=AuditOutcome.ALLOWED,
            status_code=status_code,
            request_id=self.request_id,
        )


def _answer(status_code: int, referral: Referral) -> StoredResponse:
    return StoredResponse(status_code, ReferralView.of(referral).model_dump(mode="json"))


class Referrals:
    """The referral use cases of one service instance."""

    def __init__(
        self,
        writer: Writer,
        policy: WideningPolicy,
        *,
        clock: Clock = utc_now,
        widen_batch_size: int = 100,
    ) -> None:
        self._writer = writer
        self._policy = policy
        self._clock = clock
        self._widen_batch_size = widen_batch_size

    async def _own(
        self, session: AsyncSession, caller: Caller, referral_id: UUID, *, for_update: bool
    ) -> Referral:
        referral = await load_referral(session, referral_id, for_update=for_update)
        if referral is None:
            raise NotFoundError(f"no referral {referral_id}")
        if referral.authority_code != caller.authority_code:
            raise ReferralOfAnotherCouncilError(f"no referral {referral_id}")
        return referral

    async def _emit(self, session: AsyncSession, referral: Referral, event: ReferralEvent) -> None:
        await self._writer.emit(
            session,
            event,
            organisation_id=referral.authority_code,
            aggregate_id=referral.referral_id,
            sequence=referral.version,
            occurred_at=referral.updated_at,
        )

    async def open(
        self,
        caller: Caller,
        request: WriteRequest,
        details: ReferralDetails,
        chosen_widen_after: timedelta | None,
    ) -> StoredResponse:
        async def open_it(session: AsyncSession) -> StoredResponse:
            referral, opened = domain.open_referral(
                referral_id=uuid4(),
                authority_code=caller.authority_code,
                details=details,
                chosen_widen_after=chosen_widen_after,
                policy=self._policy,
                now=self._clock(),
            )
            session.add(referral)
            await self._emit(session, referral, opened)
            return _answer(201, referral)

        async def audit_it(session: AsyncSession, answer: StoredResponse) -> None:
            referral_id = UUID(answer.body["referral_id"])
            session.add(
                caller.audit(AuditAction.CREATE, referral_id, answer.status_code, self._clock())
            )

        return await self._writer.write(request, open_it, after=audit_it)

    async def change(
        self, caller: Caller, referral_id: UUID, changes: Mapping[str, Any]
    ) -> ReferralView:
        """Apply a partial change; pydantic's ValidationError names fields the result breaks."""
        async with self._writer.transaction() as session:
            referral = await self._own(session, caller, referral_id, for_update=True)
            now = self._clock()
            decided = domain.change_referral(referral, changes, self._policy, now)
            if decided is not None:
                referral, updated = decided
                await session.merge(referral)
                await self._emit(session, referral, updated)
            session.add(caller.audit(AuditAction.UPDATE, referral_id, 200, now))
        return ReferralView.of(referral)

    async def close(
        self, caller: Caller, request: WriteRequest, referral_id: UUID, outcome: ReferralOutcome
    ) -> StoredResponse:
        async def close_it(session: AsyncSession) -> StoredResponse:
            referral = await self._own(session, caller, referral_id, for_update=True)
            closed, event = domain.close_referral(referral, outcome, self._clock())
            await session.merge(closed)
            await self._emit(session, closed, event)
            return _answer(200, closed)

        async def audit_it(session: AsyncSession, answer: StoredResponse) -> None:
            session.add(
                caller.audit(AuditAction.CLOSE, referral_id, answer.status_code, self._clock())
            )

        return await self._writer.write(request, close_it, after=audit_it)

    async def read(self, caller: Caller, referral_id: UUID) -> ReferralView:
        async with self._writer.transaction() as session:
            referral = await self._own(session, caller, referral_id, for_update=False)
            session.add(caller.audit(AuditAction.READ, referral_id, 200, self._clock()))
        return ReferralView.of(referral)

    async def list_own(self, caller: Caller, status: ReferralStatus | None) -> list[ReferralView]:
        async with self._writer.transaction() as session:
            referrals = await referrals_of(session, caller.authority_code, status)
            session.add(caller.audit(AuditAction.LIST, None, 200, self._clock()))
        return [ReferralView.of(referral) for referral in referrals]

    async def widen_due_referrals(self) -> int:
        """Widen every local referral whose time is up (the scheduler's job); returns how many."""
        widened = 0
        while True:
            batch = await self._widen_one_batch()
            widened += batch
            if batch < self._widen_batch_size:
                return widened

    async def _widen_one_batch(self) -> int:
        now = self._clock()
        async with self._writer.transaction() as session:
            due = await lock_referrals_due_to_widen(session, now, self._widen_batch_size)
            for referral in due:
                widened, event = domain.widen_referral(referral, now)
                await session.merge(widened)
                await self._emit(session, widened, event)
                session.add(
                    AuditEntry(
                        at=now,
                        actor=SYSTEM_ACTOR,
                        organisation=widened.authority_code,
                        action=AuditAction.WIDEN,
                        referral_id=widened.referral_id,
                        outcome=AuditOutcome.ALLOWED,
                    )
                )
        return len(due)
