"""Alerting's routing table: the two topics it reads, and the council API under /v1."""

from typing import Annotated, Final
from uuid import UUID

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

from contracts.topics import PROVIDER_EVENTS, REFERRAL_EVENTS, TopicSpec
from services.alerting.delivery_targets import RefusedTargetError
from services.alerting.domain import AlertStatus
from services.alerting.models import (
    AlertView,
    CreatedSubscription,
    NewSubscription,
    SubscriptionView,
)
from services.alerting.notices import Audience, Recipient
from services.alerting.stream import AlertStream
from services.alerting.use_cases import Alerting, NoSecretKeyError
from services.platform.auth import Principal, Role, authenticated, require_role
from services.platform.http import problem_responses
from services.platform.write_routes import write_request_by
from services.platform.writes import WriteRequest

# --- subscribers ----------------------------------------------------------------------------------

# Each topic with what alerting does with it. `app.create_app` subscribes the exactly-once
# processor to both (`on_provider_events`, `on_referral_events`): each batch is matched once.
CONSUMED_TOPICS: Final[tuple[tuple[TopicSpec, str], ...]] = (
    (
        PROVIDER_EVENTS,
        "Settings, vacancies and placements: match new and changed vacancies to referrals.",
    ),
    (REFERRAL_EVENTS, "Referrals: match new, changed and widened referrals to open vacancies."),
)


# --- the council and provider API -----------------------------------------------------------------


def council_of(principal: Annotated[Principal, Depends(authenticated)]) -> str:
    """The caller's council; 403 for any token but an authority's."""
    require_role(principal, Role.AUTHORITY)
    assert principal.authority_code is not None, "an authority token always has authority_code"
    return principal.authority_code


def subscriber_of(principal: Annotated[Principal, Depends(authenticated)]) -> Recipient:
    """The caller's council or provider; 403 for any other token."""
    require_role(principal, Role.AUTHORITY, Role.PROVIDER)
    if principal.role is Role.AUTHORITY:
        assert principal.authority_code is not None, "an authority token always has authority_code"
        return Recipient(Audience.AUTHORITY, principal.authority_code)
    assert principal.provider_id is not None, "a provider token always has provider_id"
    return Recipient(Audience.PROVIDER, principal.provider_id)


async def alerting_of(request: Request) -> Alerting:
    alerting: Alerting = request.app.state.alerting
    return alerting


async def stream_of(request: Request) -> AlertStream:
    stream: AlertStream = request.app.state.alert_stream
    return stream


Council = Annotated[str, Depends(council_of)]
Subscriber = Annotated[Recipient, Depends(subscriber_of)]
Service = Annotated[Alerting, Depends(alerting_of)]


def subscriber_organisation(subscriber: Subscriber) -> str:
    return subscriber.organisation_id


Write = Annotated[WriteRequest, Depends(write_request_by(subscriber_organisation))]


router = APIRouter(prefix="/v1", responses=problem_responses(401, 403))


@router.post(
    "/subscriptions",
    status_code=201,
    response_model=CreatedSubscription,
    tags=["subscriptions"],
    responses=problem_responses(422, 503),
)
async def create_subscription(
    body: NewSubscription, write: Write, subscriber: Subscriber, service: Service
) -> Response:
    """Send the council's alerts and placement-loop notices (or, for a provider token, the
    provider's notices) to a webhook, signed with `secret` (made for you if left out, and shown
    only in this answer; one of your own must be `whsec_` and the base64 of 24 to 64 bytes) as
    Standard Webhooks says: `webhook-id`, `webhook-timestamp` and `webhook-signature:
    v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, so any Standard Webhooks library verifies it.
    The URL must be https, and its host must not be or resolve to a loopback, private,
    link-local, multicast, reserved or unspecified address (a 422 naming `url`); each delivery
    checks the address again. The secret is stored encrypted (503 if the service has no key to
    encrypt it with). Failed deliveries are tried again with backoff, then dead-lettered."""
    try:
        stored = await service.subscribe(write, subscriber, body)
    except RefusedTargetError as refused:
        error = {"type": "value_error", "loc": ("body", "url"), "msg": str(refused)}
        raise RequestValidationError([{**error, "input": str(body.url)}]) from refused
    except NoSecretKeyError as no_key:
        raise HTTPException(503, str(no_key)) from no_key
    return JSONResponse(stored.body, status_code=stored.status_code)


@router.get("/subscriptions", tags=["subscriptions"])
async def list_subscriptions(subscriber: Subscriber, service: Service) -> list[SubscriptionView]:
    """The caller's (council's or provider's) webhooks, each with its delivery status."""
    return await service.subscriptions(subscriber)


@router.get(
    "/subscriptions/{subscription_id}",
    tags=["subscriptions"],
    responses=problem_responses(404),
)
async def read_subscription(
    subscription_id: UUID, subscriber: Subscriber, service: Service
) -> SubscriptionView:
    """One of the caller's webhooks with its delivery status (its secret is never shown again).
    Another organisation's is a 404, as an unknown one."""
    return await service.subscription(subscriber, subscription_id)


@router.delete(
    "/subscriptions/{subscription_id}",
    status_code=204,
    tags=["subscriptions"],
    responses=problem_responses(404),
)
async def delete_subscription(
    subscription_id: UUID, subscriber: Subscriber, service: Service
) -> None:
    """Stop a webhook; its pending deliveries are dropped. Another organisation's is a 404."""
    await service.unsubscribe(subscriber, subscription_id)


@router.get("/alerts", tags=["alerts"])
async def list_alerts(
    council: Council,
    service: Service,
    referral_id: UUID | None = None,
    status: AlertStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AlertView]:
    """The council's alerts, best first: local, then nearer, then better rated."""
    return await service.alerts(council, referral_id=referral_id, status=status, limit=limit)


@router.get(
    "/alerts/stream",
    tags=["alerts"],
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "`alert.raised` and `alert.retracted` events (councils only) and"
            " placement-loop notices (`placement.requested`, ...), data as a webhook body",
            "content": {"text/event-stream": {}},
        }
    },
)
async def stream_alerts(
    subscriber: Subscriber,
    stream: Annotated[AlertStream, Depends(stream_of)],
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="the `id` of the last event received: the stream first sends the"
            " caller's events after it that are still kept (a page at a time), then live ones."
            " Left out, or not a position the service keeps, only live ones.",
        ),
    ] = None,
) -> StreamingResponse:
    """Server-sent events of the council's alerts as they are raised and retracted and of its
    placement-loop notices; for a provider token, of the provider's notices only (the data is
    the webhook body). Each event's `id` is its position, a number that increases; a new stream
    starts with an `id` alone, the newest position. The stream ends now and then (and after a
    page of missed events); EventSource reconnects by itself, sending `Last-Event-ID`, and gets
    what it missed."""
    return StreamingResponse(
        stream.events_for(subscriber, last_event_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
