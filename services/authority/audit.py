"""The audit trail: every attempt to read or write a referral leaves one row, refused ones too.

An allowed request's row is written by its use case in the same transaction as its effect, so a
change is never committed without its audit row (and a read's row commits before the data leaves).
A refused or failed request rolled its transaction back, so this module's middleware records it
afterwards in a transaction of its own.
"""

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from uuid import UUID

from fastapi import FastAPI, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.authority.tables import AuditAction, AuditEntry, AuditOutcome
from services.platform.auth import Principal
from services.platform.clock import Clock

SYSTEM_ACTOR = "system"


_OUTCOME_BY_STATUS = {
    401: AuditOutcome.UNAUTHENTICATED,
    403: AuditOutcome.DENIED,
    404: AuditOutcome.NOT_FOUND,
    409: AuditOutcome.CONFLICT,
    422: AuditOutcome.INVALID,
}


def outcome_for_status(status_code: int) -> AuditOutcome:
    if status_code < 400:
        return AuditOutcome.ALLOWED
    return _OUTCOME_BY_STATUS.get(status_code, AuditOutcome.ERROR)


def note_principal(request: Request, principal: Principal) -> None:
    """Remember who is asking, so a refusal after authentication is audited with its actor."""
    request.state.audit_principal = principal


def note_outcome(request: Request, outcome: AuditOutcome) -> None:
    """Record a more precise outcome than the status code tells (a 404 that was a denial)."""
    request.state.audit_outcome = outcome


def note_referral(request: Request, referral_id: UUID | None) -> None:
    """Name the referral a refused request was about when its path does not (a request route)."""
    request.state.audit_referral_id = referral_id


def _referral_id(request: Request) -> UUID | None:
    noted: UUID | None = getattr(request.state, "audit_referral_id", None)
    if noted is not None:
        return noted
    try:
        return UUID(str(request.path_params.get("referral_id")))
    except ValueError:
        return None


def _refusal(request: Request, action: AuditAction, status_code: int, at: datetime) -> AuditEntry:
    principal: Principal | None = getattr(request.state, "audit_principal", None)
    outcome: AuditOutcome = getattr(request.state, "audit_outcome", None) or outcome_for_status(
        status_code
    )
    return AuditEntry(
        at=at,
        actor=principal.organisation_id if principal else None,
        role=principal.role.value if principal else None,
        organisation=principal.authority_code if principal else None,
        action=action,
        referral_id=_referral_id(request),
        outcome=outcome,
        status_code=status_code,
        request_id=getattr(request.state, "request_id", None),
    )


def add_audit_trail(
    app: FastAPI,
    sessions: async_sessionmaker[AsyncSession],
    audited_routes: Mapping[tuple[str, str], AuditAction],
    clock: Clock,
) -> None:
    """Audit every refused or failed request to a route in `audited_routes` ((method, path) keys).

    Add it before the platform's operational routes, so that its middleware runs inside the one
    that assigns `request.state.request_id`.
    """

    async def record_refusal(request: Request, status_code: int) -> None:
        route = request.scope.get("route")
        action = audited_routes.get((request.method, getattr(route, "path", "")))
        if action is None:
            return
        async with sessions() as session, session.begin():
            session.add(_refusal(request, action, status_code, clock()))

    @app.middleware("http")
    async def audit_refusals(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        try:
            response = await call_next(request)
        except Exception:
            await record_refusal(request, 500)
            raise
        if response.status_code >= 400:
            await record_refusal(request, response.status_code)
        return response
