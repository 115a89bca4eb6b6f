"""One function per command or query; each is one transaction of state, outbox row and audit row."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts.enums import ReferralOutcome
from contracts.envelope import envelop
from contracts.events import (
    ReferralClosed,
    ReferralEvent,
    ReferralOpened,
    ReferralUpdated,
    ReferralWidened,
)
from services.authority import domain
from services.authority.audit import SYSTEM_ACTOR, AuditAction, AuditOutcome
from services.authority.domain import Referral, ReferralStatus, WideningPolicy
from services.authority.schemas import OpenReferral, ReferralView
from services.authority.store import (
    IDEMPOTENCY_KEYS,
    OUTBOX,
    AuditEntry,
    append_audit,
    insert_referral,
    load_referral,
    lock_referrals_due_to_widen,
    referrals_of,
    save_referral,
)
from services.platform.errors import NotFoundError
from services.platform.idempotency import StoredResponse, request_fingerprint, run_once
from services.platform.outbox import add_to_outbox

PRODUCER = "authority"


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
        self,
        action: AuditAction,
        referral_id: UUID | None,
        status_code: int,
        outcome: AuditOutcome = AuditOutcome.ALLOWED,
    ) -> AuditEntry:
        return AuditEntry(
            at=datetime.now(UTC),
            actor=self.actor,
            role=self.role,
            organisation=self.authority_code,
            action=action.value,
            referral_id=referral_id,
            outcome=outcome.value,
            status_code=status_code,
            request_id=self.request_id,
        )


async def _publish(session: AsyncSession, referral: Referral, payload: ReferralEvent) -> None:
    envelope = envelop(
        payload,
        producer=PRODUCER,
        organisation_id=referral.authority_code,
        aggregate_id=referral.referral_id,
        sequence=referral.version,
        occurred_at=referral.updated_at,
    )
    await add_to_outbox(session, OUTBOX, envelope)


def _state(referral: Referral) -> dict[str, Any]:
    return {
        "referral_id": referral.referral_id,
        "authority_code": referral.authority_code,
        **referral.details.model_dump(),
    }


def _answer(status_code: int, referral: Referral) -> StoredResponse:
    return StoredResponse(status_code, ReferralView.of(referral).model_dump(mode="json"))


class Referrals:
    """The referral use cases of one service instance."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        wake_relay: Callable[[], None],
        policy: WideningPolicy,
        widen_batch_size: int = 100,
    ) -> None:
        self._sessions = sessions
        self._wake_relay = wake_relay
        self._policy = policy
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

    async def open(
        self, caller: Caller, request: OpenReferral, idempotency_key: str | None
    ) -> StoredResponse:
        async with self._sessions() as session, session.begin():

            async def open_it() -> StoredResponse:
                referral = domain.open_referral(
                    referral_id=uuid4(),
                    authority_code=caller.authority_code,
                    details=request.details(),
                    chosen_widen_after=request.chosen_widen_after(),
                    policy=self._policy,
                    now=datetime.now(UTC),
                )
                await insert_referral(session, referral)
                await _publish(session, referral, ReferralOpened.model_validate(_state(referral)))
                return _answer(201, referral)

            answer = await run_once(
                session,
                IDEMPOTENCY_KEYS,
                organisation_id=caller.authority_code,
                key=idempotency_key,
                fingerprint=request_fingerprint(
                    "POST", "/v1/referrals", request.model_dump(mode="json")
                ),
                work=open_it,
            )
            referral_id = UUID(answer.body["referral_id"])
            await append_audit(
                session, caller.audit(AuditAction.CREATE, referral_id, answer.status_code)
            )
        self._wake_relay()
        return answer

    async def change(
        self, caller: Caller, referral_id: UUID, changes: Mapping[str, Any]
    ) -> ReferralView:
        """Apply a partial change; pydantic's ValidationError names fields the result breaks."""
        async with self._sessions() as session, session.begin():
            referral = await self._own(session, caller, referral_id, for_update=True)
            changed = domain.change_referral(referral, changes, self._policy, datetime.now(UTC))
            if changed is not None:
                await save_referral(session, changed)
                await _publish(session, changed, ReferralUpdated.model_validate(_state(changed)))
            await append_audit(session, caller.audit(AuditAction.UPDATE, referral_id, 200))
        if changed is None:
            return ReferralView.of(referral)
        self._wake_relay()
        return ReferralView.of(changed)

    async def close(
        self,
        caller: Caller,
        referral_id: UUID,
        outcome: ReferralOutcome,
        idempotency_key: str | None,
    ) -> StoredResponse:
        async with self._sessions() as session, session.begin():

            async def close_it() -> StoredResponse:
                referral = await self._own(session, caller, referral_id, for_update=True)
                closed = domain.close_referral(referral, outcome, datetime.now(UTC))
                await save_referral(session, closed)
                await _publish(
                    session,
                    closed,
                    ReferralClosed(
                        referral_id=closed.referral_id,
                        authority_code=closed.authority_code,
                        outcome=outcome,
                    ),
                )
                return _answer(200, closed)

            answer = await run_once(
                session,
                IDEMPOTENCY_KEYS,
                organisation_id=caller.authority_code,
                key=idempotency_key,
                fingerprint=request_fingerprint(
                    "POST", f"/v1/referrals/{referral_id}/close", {"outcome": outcome.value}
                ),
                work=close_it,
            )
            await append_audit(
                session, caller.audit(AuditAction.CLOSE, referral_id, answer.status_code)
            )
        self._wake_relay()
        return answer

    async def read(self, caller: Caller, referral_id: UUID) -> ReferralView:
        async with self._sessions() as session, session.begin():
            referral = await self._own(session, caller, referral_id, for_update=False)
            await append_audit(session, caller.audit(AuditAction.READ, referral_id, 200))
        return ReferralView.of(referral)

    async def list_own(self, caller: Caller, status: ReferralStatus | None) -> list[ReferralView]:
        async with self._sessions() as session, session.begin():
            referrals = await referrals_of(session, caller.authority_code, status)
            await append_audit(session, caller.audit(AuditAction.LIST, None, 200))
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
        now = datetime.now(UTC)
        async with self._sessions() as session, session.begin():
            due = await lock_referrals_due_to_widen(session, now, self._widen_batch_size)
            for referral in due:
                widened = domain.widen_referral(referral, now)
                await save_referral(session, widened)
                await _publish(
                    session,
                    widened,
                    ReferralWidened(
                        referral_id=widened.referral_id,
                        authority_code=widened.authority_code,
                        search_scope=widened.details.search_scope,
                    ),
                )
                await append_audit(
                    session,
                    AuditEntry(
                        at=now,
                        actor=SYSTEM_ACTOR,
                        role=None,
                        organisation=widened.authority_code,
                        action=AuditAction.WIDEN.value,
                        referral_id=widened.referral_id,
                        outcome=AuditOutcome.ALLOWED.value,
                        status_code=None,
                        request_id=None,
                    ),
                )
        if due:
            self._wake_relay()
        return len(due)
