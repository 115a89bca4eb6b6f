"""The provider's routing table: the topics it consumes, and the API under /v1 (thin routes that
authenticate, validate, call a use case, answer)."""

from collections.abc import Callable
from typing import Annotated, Final
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.types import DecoratedCallable
from pydantic import BaseModel, ValidationError

from contracts.topics import REFERRAL_EVENTS, TopicSpec
from services.platform.auth import Principal, Role, authenticated, require_role
from services.platform.http import problem_responses
from services.platform.idempotency import StoredResponse
from services.platform.write_routes import write_request_by
from services.platform.writes import WriteRequest
from services.provider import models
from services.provider.tables import (
    PlacementStatus,
    RequestStatus,
    SettingStatus,
    VacancyStatus,
)
from services.provider.use_cases import ProviderService

CONSUMED_TOPICS: Final[tuple[tuple[TopicSpec, str], ...]] = (
    (
        REFERRAL_EVENTS,
        (
            "Placement requests sent to this provider's vacancies, their withdrawals and accepted "
            "offers (the provider's inbox); every other referral event is read and left alone."
        ),
    ),
)


def provider_id_of(principal: Annotated[Principal, Depends(authenticated)]) -> str:
    """The caller's provider (their organisation); 403 for any other role's token."""
    require_role(principal, Role.PROVIDER)
    assert principal.provider_id is not None, "a provider token always carries provider_id"
    return principal.provider_id


async def provider_service(request: Request) -> ProviderService:
    service: ProviderService = request.app.state.provider_service
    return service


ProviderId = Annotated[str, Depends(provider_id_of)]
Service = Annotated[ProviderService, Depends(provider_service)]


Write = Annotated[WriteRequest, Depends(write_request_by(provider_id_of))]


def _answer(stored: StoredResponse) -> Response:
    return JSONResponse(stored.body, status_code=stored.status_code)


def _as_request_error(error: ValidationError) -> RequestValidationError:
    """A new state that fails its contract is bad input: a 422 naming the field, like any other."""
    return RequestValidationError(
        [
            {"type": e["type"], "loc": ("body", *e["loc"]), "msg": e["msg"], "input": e["input"]}
            for e in error.errors()
        ]
    )


router = APIRouter(prefix="/v1", responses=problem_responses(401, 403))
_WRITE_PROBLEMS = problem_responses(404, 409, 422)


def _creates(
    path: str, view: type[BaseModel], tag: str
) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """A POST that creates a record: 201 with its view."""
    return router.post(
        path, status_code=201, response_model=view, tags=[tag], responses=_WRITE_PROBLEMS
    )


def _changes(
    path: str, view: type[BaseModel], tag: str, *, method: str = "POST"
) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """A write to one record (a POST action, or a PATCH): 200 with its new view."""
    return router.api_route(
        path, methods=[method], response_model=view, tags=[tag], responses=_WRITE_PROBLEMS
    )


def _reads_one(path: str, tag: str) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """A GET of one record, 404 when it is not the caller's."""
    return router.get(path, tags=[tag], responses=problem_responses(404))


# --- settings -------------------------------------------------------------------------------------


@_creates("/settings", models.SettingView, "settings")
async def register_setting(
    body: models.RegisterSetting, write: Write, service: Service
) -> Response:
    """Register a setting (a home): its type, places, rating, whom it cares for and where."""
    return _answer(await service.register_setting(write, body))


@_changes("/settings/{setting_id}", models.SettingView, "settings", method="PATCH")
async def update_setting(
    setting_id: UUID, body: models.UpdateSetting, write: Write, service: Service
) -> Response:
    """Change any of a setting's fields; an update that changes nothing publishes nothing."""
    try:
        return _answer(await service.update_setting(write, setting_id, body))
    except ValidationError as error:
        raise _as_request_error(error) from error


@_changes("/settings/{setting_id}/close", models.SettingView, "settings")
async def close_setting(
    setting_id: UUID,
    write: Write,
    service: Service,
    body: Annotated[models.CloseSetting | None, Body()] = None,
) -> Response:
    """Close a setting (from `closed_on`, default today); it takes no new vacancies or children."""
    return _answer(await service.close_setting(write, setting_id, body or models.CloseSetting()))


@router.get("/settings", tags=["settings"])
async def list_settings(
    provider_id: ProviderId, service: Service, status: SettingStatus | None = None
) -> list[models.SettingView]:
    """The caller's own settings, with their beds occupied, offered and vacant."""
    return await service.settings(provider_id, status)


@_reads_one("/settings/{setting_id}", "settings")
async def get_setting(
    setting_id: UUID, provider_id: ProviderId, service: Service
) -> models.SettingView:
    return await service.setting(provider_id, setting_id)


@_reads_one("/settings/{setting_id}/profile", "settings")
async def get_setting_profile(
    setting_id: UUID, principal: Annotated[Principal, Depends(authenticated)], service: Service
) -> models.SettingProfileView:
    """A setting's public profile: any council may read it, and the provider that owns it."""
    require_role(principal, Role.AUTHORITY, Role.PROVIDER)
    return await service.setting_profile(principal, setting_id)


# --- vacancies ------------------------------------------------------------------------------------


@_creates("/vacancies", models.VacancyView, "vacancies")
async def post_vacancy(body: models.PostVacancy, write: Write, service: Service) -> Response:
    """Offer beds at a setting; never more than its places free of placements and other offers."""
    return _answer(await service.post_vacancy(write, body))


@_changes("/vacancies/{vacancy_id}/confirm", models.VacancyView, "vacancies")
async def confirm_vacancy(vacancy_id: UUID, write: Write, service: Service) -> Response:
    """Say the vacancy is still there; an unconfirmed vacancy expires (see `expires_at`)."""
    return _answer(await service.confirm_vacancy(write, vacancy_id))


@_changes("/vacancies/{vacancy_id}/withdraw", models.VacancyView, "vacancies")
async def withdraw_vacancy(
    vacancy_id: UUID, body: models.WithdrawVacancy, write: Write, service: Service
) -> Response:
    return _answer(await service.withdraw_vacancy(write, vacancy_id, body))


@router.get("/vacancies", tags=["vacancies"])
async def list_vacancies(
    provider_id: ProviderId,
    service: Service,
    status: VacancyStatus | None = None,
    setting_id: UUID | None = None,
) -> list[models.VacancyView]:
    """The caller's own vacancies, each with `last_confirmed_at` and `expires_at`."""
    return await service.vacancies(provider_id, status, setting_id)


@_reads_one("/vacancies/{vacancy_id}", "vacancies")
async def get_vacancy(
    vacancy_id: UUID, provider_id: ProviderId, service: Service
) -> models.VacancyView:
    return await service.vacancy(provider_id, vacancy_id)


# --- placement requests --------------------------------------------------------------------------


@router.get("/requests", tags=["requests"])
async def list_requests(
    provider_id: ProviderId, service: Service, status: RequestStatus | None = None
) -> list[models.RequestView]:
    """The placement requests councils sent to the caller's vacancies, newest first."""
    return await service.placement_requests(provider_id, status)


@_reads_one("/requests/{request_id}", "requests")
async def get_request(
    request_id: UUID, provider_id: ProviderId, service: Service
) -> models.RequestView:
    """One request sent to the caller; another provider's answers 404, as an unknown one."""
    return await service.placement_request(provider_id, request_id)


@_changes("/requests/{request_id}/offer", models.RequestView, "requests")
async def offer_placement(
    request_id: UUID, body: models.OfferPlacement, write: Write, service: Service
) -> Response:
    """Offer the beds (default: the sibling group), held for the council until the offer expires."""
    return _answer(await service.offer_placement(write, request_id, body))


@_changes("/requests/{request_id}/decline", models.RequestView, "requests")
async def decline_request(
    request_id: UUID, body: models.DeclineRequest, write: Write, service: Service
) -> Response:
    return _answer(await service.decline_request(write, request_id, body))


# --- placements -----------------------------------------------------------------------------------


@_creates("/placements", models.PlacementView, "placements")
async def start_placement(body: models.StartPlacement, write: Write, service: Service) -> Response:
    """Record a child (or a sibling group: `beds`) starting to live at a setting.

    From an accepted offer, give its `request_id`: the setting, the council and the vacancy are
    then the request's (any given must match, else 409), and only an `accepted` request is placed
    (409 naming its state). A placement from an accepted offer takes exactly the beds the offer
    held, and those beds leave the vacancy for good: `beds`, if given, must be that many (else
    409); they become occupied, and the vacancy has that many fewer and, with none left, is
    withdrawn as `filled`. Another provider's request is a 404.
    """
    return _answer(await service.start_placement(write, body))


@_changes("/placements/{placement_id}/end", models.PlacementView, "placements")
async def end_placement(
    placement_id: UUID, body: models.EndPlacement, write: Write, service: Service
) -> Response:
    """Record a placement ending, which frees its beds."""
    return _answer(await service.end_placement(write, placement_id, body))


@router.get("/placements", tags=["placements"])
async def list_placements(
    provider_id: ProviderId,
    service: Service,
    status: PlacementStatus | None = None,
    setting_id: UUID | None = None,
) -> list[models.PlacementView]:
    return await service.placements(provider_id, status, setting_id)


@_reads_one("/placements/{placement_id}", "placements")
async def get_placement(
    placement_id: UUID, provider_id: ProviderId, service: Service
) -> models.PlacementView:
    return await service.placement(provider_id, placement_id)
