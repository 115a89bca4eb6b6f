"""The routing table: thin routes under /v1 that check the caller, call one use case and answer;
and the topics the service consumes (its subscribers are the platform's exactly-once consumer)."""

from collections.abc import Callable
from typing import Annotated, Any, Final
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.types import DecoratedCallable
from pydantic import ValidationError

from contracts import geography
from contracts.topics import PROVIDER_EVENTS, TopicSpec
from services.authority.audit import note_outcome, note_principal, note_referral
from services.authority.models import (
    CloseReferral,
    OpenReferral,
    ReferralChanges,
    ReferralView,
    RequestPlacement,
    RequestView,
)
from services.authority.tables import AuditAction, AuditOutcome, ReferralStatus
from services.authority.use_cases import (
    Caller,
    PlacementRequests,
    ReferralOfAnotherCouncilError,
    Referrals,
    RequestRefusedError,
)
from services.platform.auth import Principal, Role, authenticated, require_role
from services.platform.errors import ForbiddenError
from services.platform.http import problem_responses, status_of
from services.platform.idempotency import StoredResponse
from services.platform.write_routes import write_request_by
from services.platform.writes import WriteRequest

CONSUMED_TOPICS: Final[tuple[tuple[TopicSpec, str], ...]] = (
    (
        PROVIDER_EVENTS,
        (
            "Settings (with profiles), open vacancies, beds occupied, and the providers' answers "
            "to this service's placement requests; a placement from a referral closes it."
        ),
    ),
)

REFERRALS_PATH = "/v1/referrals"
REFERRAL_PATH = "/v1/referrals/{referral_id}"
CLOSE_PATH = "/v1/referrals/{referral_id}/close"
REFERRAL_REQUESTS_PATH = "/v1/referrals/{referral_id}/requests"
ACCEPT_PATH = "/v1/requests/{request_id}/accept"
WITHDRAW_PATH = "/v1/requests/{request_id}/withdraw"

# Every route here reads or writes referrals, so every one is audited (see audit.py).
AUDITED_ROUTES: dict[tuple[str, str], AuditAction] = {
    ("POST", REFERRALS_PATH): AuditAction.CREATE,
    ("GET", REFERRALS_PATH): AuditAction.LIST,
    ("GET", REFERRAL_PATH): AuditAction.READ,
    ("PATCH", REFERRAL_PATH): AuditAction.UPDATE,
    ("POST", CLOSE_PATH): AuditAction.CLOSE,
    ("POST", REFERRAL_REQUESTS_PATH): AuditAction.REQUEST,
    ("GET", REFERRAL_REQUESTS_PATH): AuditAction.LIST_REQUESTS,
    ("POST", ACCEPT_PATH): AuditAction.ACCEPT,
    ("POST", WITHDRAW_PATH): AuditAction.WITHDRAW,
}


def _problem(code: int, description: str) -> dict[int | str, dict[str, Any]]:
    return {code: {**problem_responses(code)[code], "description": description}}


_ANSWERS: dict[int | str, dict[str, Any]] = {
    **_problem(401, "No bearer token, or a bad or expired one"),
    **_problem(403, "Not an authority (council) token"),
    **_problem(422, "Bad input, each bad field named (a reused Idempotency-Key: a message)"),
}
_ONE_REFERRAL: dict[int | str, dict[str, Any]] = {
    **_ANSWERS,
    **_problem(
        404,
        "No such referral, or another council's: a referral's existence is private to its council",
    ),
}
_CLOSED_409 = _problem(409, "The referral is closed")
_ONE_REQUEST: dict[int | str, dict[str, Any]] = {
    **_ANSWERS,
    **_problem(404, "No such request, or another council's"),
    **_problem(409, "The request is not in a state that allows it (the detail says why)"),
}

router = APIRouter(prefix="/v1", tags=["referrals"], responses=_ANSWERS)


def _caller(request: Request, principal: Annotated[Principal, Depends(authenticated)]) -> Caller:
    note_principal(request, principal)
    require_role(principal, Role.AUTHORITY)
    code = principal.authority_code
    if code is None or not geography.is_known_council(code):
        raise ForbiddenError(f"the token's authority_code {code!r} is not an English council")
    return Caller(
        actor=principal.organisation_id,
        role=principal.role.value,
        authority_code=code,
        request_id=getattr(request.state, "request_id", None),
    )


async def _referrals(request: Request) -> Referrals:
    referrals: Referrals = request.app.state.referrals
    return referrals


AuthorityCaller = Annotated[Caller, Depends(_caller)]
ReferralsDep = Annotated[Referrals, Depends(_referrals)]


async def _placement_requests(request: Request) -> PlacementRequests:
    requests: PlacementRequests = request.app.state.placement_requests
    return requests


RequestsDep = Annotated[PlacementRequests, Depends(_placement_requests)]


def _authority_code(caller: AuthorityCaller) -> str:
    return caller.authority_code


Write = Annotated[WriteRequest, Depends(write_request_by(_authority_code))]


def _as_json(answer: StoredResponse) -> JSONResponse:
    return JSONResponse(answer.body, status_code=answer.status_code)


@router.post(
    "/referrals",
    status_code=201,
    response_model=ReferralView,
    summary="Open a referral for a child (or a sibling group) who needs a home",
)
async def open_referral(
    body: OpenReferral, caller: AuthorityCaller, write: Write, referrals: ReferralsDep
) -> JSONResponse:
    return _as_json(await referrals.open(caller, write, body.details(), body.chosen_widen_after()))


@router.get("/referrals", summary="The council's referrals")
async def list_referrals(
    caller: AuthorityCaller,
    referrals: ReferralsDep,
    status: Annotated[ReferralStatus | None, Query(description="only open or closed")] = None,
) -> list[ReferralView]:
    return await referrals.list_own(caller, status)


@router.get("/referrals/{referral_id}", responses=_ONE_REFERRAL)
async def read_referral(
    referral_id: UUID, caller: AuthorityCaller, referrals: ReferralsDep
) -> ReferralView:
    return await referrals.read(caller, referral_id)


@router.patch(
    "/referrals/{referral_id}",
    responses={**_ONE_REFERRAL, **_CLOSED_409},
    summary="Change any of a referral's matching fields (no event when nothing changes)",
)
async def change_referral(
    referral_id: UUID, body: ReferralChanges, caller: AuthorityCaller, referrals: ReferralsDep
) -> ReferralView:
    try:
        return await referrals.change(caller, referral_id, body.changes())
    except ValidationError as error:
        raise RequestValidationError(
            [{**problem, "loc": ("body", *problem["loc"])} for problem in error.errors()]
        ) from error


@router.post(
    "/referrals/{referral_id}/close",
    response_model=ReferralView,
    responses={**_ONE_REFERRAL, **_CLOSED_409},
    summary="Close a referral: placed, withdrawn or no longer needed",
)
async def close_referral(
    referral_id: UUID,
    body: CloseReferral,
    caller: AuthorityCaller,
    write: Write,
    referrals: ReferralsDep,
) -> JSONResponse:
    return _as_json(await referrals.close(caller, write, referral_id, body.outcome))


@router.post(
    "/referrals/{referral_id}/requests",
    status_code=201,
    response_model=RequestView,
    responses={
        **_ONE_REFERRAL,
        **_problem(
            409,
            "The referral is closed, the vacancy is not open, it already has an open request, "
            "or the vacancy breaks a matching rule (the detail names each rule that fails)",
        ),
    },
    tags=["requests"],
    summary="Send the referral to one open vacancy that fits it (PlacementRequested)",
)
async def request_placement(
    referral_id: UUID,
    body: RequestPlacement,
    caller: AuthorityCaller,
    write: Write,
    requests: RequestsDep,
) -> JSONResponse:
    return _as_json(await requests.request(caller, write, referral_id, body.vacancy_id))


@router.get(
    "/referrals/{referral_id}/requests",
    responses=_ONE_REFERRAL,
    tags=["requests"],
    summary="The referral's placement requests, the providers' answers and the settings' profiles",
)
async def list_requests(
    referral_id: UUID, caller: AuthorityCaller, requests: RequestsDep
) -> list[RequestView]:
    return await requests.list_of(caller, referral_id)


def _answers_request(action: str, summary: str) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """The council's answer to one of its placement requests: 200 with the request's view."""
    return router.post(
        f"/requests/{{request_id}}/{action}",
        response_model=RequestView,
        responses=_ONE_REQUEST,
        tags=["requests"],
        summary=summary,
    )


@_answers_request("accept", "Accept the provider's offer while it stands (OfferAccepted)")
async def accept_offer(
    request_id: UUID, caller: AuthorityCaller, write: Write, requests: RequestsDep
) -> JSONResponse:
    return _as_json(await requests.accept(caller, write, request_id))


@_answers_request(
    "withdraw", "Withdraw a request still in play (RequestWithdrawn, withdrawn_by_council)"
)
async def withdraw_request(
    request_id: UUID, caller: AuthorityCaller, write: Write, requests: RequestsDep
) -> JSONResponse:
    return _as_json(await requests.withdraw(caller, write, request_id))


async def answer_another_councils_referral(request: Request, error: Exception) -> JSONResponse:
    """The same 404 as an unknown referral, but audited as the denial it is."""
    assert isinstance(error, ReferralOfAnotherCouncilError)
    note_outcome(request, AuditOutcome.DENIED)
    note_referral(request, error.referral_id)
    return JSONResponse({"detail": str(error)}, status_code=status_of(error))


async def answer_refused_request(request: Request, error: Exception) -> JSONResponse:
    """A 409 on a request route, audited against the referral the request belongs to."""
    assert isinstance(error, RequestRefusedError)
    note_referral(request, error.referral_id)
    return JSONResponse({"detail": str(error)}, status_code=status_of(error))
