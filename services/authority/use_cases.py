"""One method per command or query: load, let the domain decide, save, emit and audit, in one go.

Each runs in one transaction of state, outbox row and audit row, through the service's `Writer`.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncSession

from contracts.enums import ReferralOutcome, RequestWithdrawalReason
from contracts.events import ReferralEvent
from services.authority import domain, store
from services.authority.audit import SYSTEM_ACTOR
from services.authority.domain import ReferralDetails, WideningPolicy
from services.authority.models import ReferralView, RequestView
from services.authority.store import load_referral, lock_referrals_due_to_widen, referrals_of
from services.authority.tables import (
    AuditAction,
    AuditEntry,
    AuditOutcome,
    PlacementRequest,
    Referral,
    ReferralStatus,
)
from services.platform.clock import Clock, utc_now
from services.platform.errors import ConflictError, NotFoundError
from services.platform.idempotency import StoredResponse
from services.platform.writes import Writer, WriteRequest


class ReferralOfAnotherCouncilError(NotFoundError):
    """Another council's referral: answered exactly as an unknown one, audited as a denial."""

    def __init__(self, message: str, referral_id: UUID | None = None) -> None:
        super().__init__(message)
        self.referral_id = referral_id  # for the audit row of a request route, which names none


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


async def own_referral(
    session: AsyncSession, caller: Caller, referral_id: UUID, *, for_update: bool
) -> Referral:
    """The caller's council's referral; another council's is answered as an unknown one."""
    referral = await load_referral(session, referral_id, for_update=for_update)
    if referral is None:
        raise NotFoundError(f"no referral {referral_id}")
    if referral.authority_code != caller.authority_code:
        raise ReferralOfAnotherCouncilError(f"no referral {referral_id}", referral_id)
    return referral


async def emit_referral_event(
    writer: Writer, session: AsyncSession, referral: Referral, event: ReferralEvent
) -> None:
    """Stage an event of the referral at its version (the command that made it bumped it)."""
    await writer.emit(
        session,
        event,
        organisation_id=referral.authority_code,
        aggregate_id=referral.referral_id,
        sequence=referral.version,
        occurred_at=referral.updated_at,
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
        return await own_referral(session, caller, referral_id, for_update=for_update)

    async def _emit(self, session: AsyncSession, referral: Referral, event: ReferralEvent) -> None:
        await emit_referral_event(self._writer, session, referral, event)

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
            now = self._clock()
            domain.require_open(referral, "closed again")
            # Its requests end first: no provider keeps a bed for a search that is over.
            requests = await store.requests_of(session, referral_id, for_update=True)
            referral, withdrawn = domain.withdraw_open_requests(
                referral, list(requests), RequestWithdrawalReason.REFERRAL_CLOSED, now
            )
            version = referral.version - len(withdrawn)
            for ended, withdrawal in withdrawn:
                version += 1
                await session.merge(ended)
                await self._writer.emit(
                    session,
                    withdrawal,
                    organisation_id=referral.authority_code,
                    aggregate_id=referral.referral_id,
                    sequence=version,
                    occurred_at=now,
                )
            closed, event = domain.close_referral(referral, outcome, now)
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


def _request_answer(status_code: int, view: RequestView) -> StoredResponse:
    return StoredResponse(status_code, view.model_dump(mode="json"))


class RequestRefusedError(ConflictError):
    """A rule refused a command on a request; it names the referral, for the audit row."""

    def __init__(self, message: str, referral_id: UUID) -> None:
        super().__init__(message)
        self.referral_id = referral_id


# A command on one request: (referral, request, now) -> their next versions and the event.
Decision = Callable[
    [Referral, PlacementRequest, datetime], tuple[Referral, PlacementRequest, ReferralEvent]
]


class PlacementRequests:
    """A council's placement requests: send a referral to a vacancy, accept an offer, withdraw."""

    def __init__(self, writer: Writer, *, clock: Clock = utc_now) -> None:
        self._writer = writer
        self._clock = clock

    async def _view(self, session: AsyncSession, request: PlacementRequest) -> RequestView:
        settings = await store.settings_by_id(session, [request.setting_id])
        return RequestView.of(request, settings.get(request.setting_id))

    async def request(
        self, caller: Caller, write: WriteRequest, referral_id: UUID, vacancy_id: UUID
    ) -> StoredResponse:
        async def request_it(session: AsyncSession) -> StoredResponse:
            referral = await own_referral(session, caller, referral_id, for_update=True)
            vacancy = await store.load_vacancy(session, vacancy_id)
            if vacancy is None:
                raise NotFoundError(f"no vacancy {vacancy_id}")
            settings = await store.settings_by_id(session, [vacancy.setting_id])
            referral, request, event = domain.request_placement(
                referral,
                request_id=uuid4(),
                setting=settings.get(vacancy.setting_id),
                vacancy=vacancy,
                occupied_beds=await store.occupied_beds(session, vacancy.setting_id),
                already_requested=await store.has_open_request(session, referral_id, vacancy_id),
                now=self._clock(),
            )
            await session.merge(referral)
            session.add(request)
            await emit_referral_event(self._writer, session, referral, event)
            return _request_answer(201, RequestView.of(request, settings.get(vacancy.setting_id)))

        async def audit_it(session: AsyncSession, answer: StoredResponse) -> None:
            session.add(
                caller.audit(AuditAction.REQUEST, referral_id, answer.status_code, self._clock())
            )

        return await self._writer.write(write, request_it, after=audit_it)

    async def list_of(self, caller: Caller, referral_id: UUID) -> list[RequestView]:
        async with self._writer.transaction() as session:
            await own_referral(session, caller, referral_id, for_update=False)
            requests = await store.requests_of(session, referral_id)
            settings = await store.settings_by_id(session, (r.setting_id for r in requests))
            session.add(caller.audit(AuditAction.LIST_REQUESTS, referral_id, 200, self._clock()))
        return [RequestView.of(r, settings.get(r.setting_id)) for r in requests]

    async def _own_request(
        self, session: AsyncSession, caller: Caller, request_id: UUID
    ) -> tuple[Referral, PlacementRequest]:
        """The request and its referral, both locked (the referral first, as everywhere)."""
        unlocked = await store.load_request(session, request_id)
        if unlocked is None:
            raise NotFoundError(f"no request {request_id}")
        if unlocked.authority_code != caller.authority_code:
            raise ReferralOfAnotherCouncilError(f"no request {request_id}", unlocked.referral_id)
        referral = await own_referral(session, caller, unlocked.referral_id, for_update=True)
        request = await store.load_request(session, request_id, for_update=True)
        assert request is not None  # a request is never deleted
        return referral, request

    async def _decide(
        self,
        caller: Caller,
        write: WriteRequest,
        request_id: UUID,
        action: AuditAction,
        decide: Decision,
    ) -> StoredResponse:
        async def decide_it(session: AsyncSession) -> StoredResponse:
            referral, request = await self._own_request(session, caller, request_id)
            try:
                referral, request, event = decide(referral, request, self._clock())
            except ConflictError as error:
                raise RequestRefusedError(str(error), referral.referral_id) from error
            await session.merge(referral)
            await session.merge(request)
            await emit_referral_event(self._writer, session, referral, event)
            return _request_answer(200, await self._view(session, request))

        async def audit_it(session: AsyncSession, answer: StoredResponse) -> None:
            referral_id = UUID(answer.body["referral_id"])
            session.add(caller.audit(action, referral_id, answer.status_code, self._clock()))

        return await self._writer.write(write, decide_it, after=audit_it)

    async def accept(self, caller: Caller, write: WriteRequest, request_id: UUID) -> StoredResponse:
        return await self._decide(
            caller, write, request_id, AuditAction.ACCEPT, domain.accept_offer
        )

    async def withdraw(
        self, caller: Caller, write: WriteRequest, request_id: UUID
    ) -> StoredResponse:
        def withdraw_it(
            referral: Referral, request: PlacementRequest, now: datetime
        ) -> tuple[Referral, PlacementRequest, ReferralEvent]:
            return domain.withdraw_request(
                referral, request, RequestWithdrawalReason.BY_COUNCIL, now
            )

        return await self._decide(caller, write, request_id, AuditAction.WITHDRAW, withdraw_it)
