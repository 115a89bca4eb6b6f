"""The placement loop's notices, pure: which loop events are told to whom, and in what words.

A provider hears of the requests for its settings, of their withdrawal and of its offers accepted;
a council hears of the offers and declines answering its requests, and of offers that expire or are
withdrawn. Each notice is one event told to one organisation, identified by the event's id (so a
redelivered event makes no second notice), and its body is the event's payload as the contracts
give it (for a request, the child's pseudonymous profile and nothing more) with the notice's kind.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from contracts import events
from contracts.envelope import Envelope
from services.platform.errors import UnappliableEventError


class Audience(StrEnum):
    """Who a notice, a subscription or a stream is for: a council or a provider."""

    AUTHORITY = "authority"
    PROVIDER = "provider"


@dataclass(frozen=True, slots=True)
class Recipient:
    audience: Audience
    organisation_id: str  # a council's ONS code or a provider's slug


class LoopNoticeKind(StrEnum):
    """A webhook body's and a stream event's `type`, and the `X-NearHome-Event` header."""

    PLACEMENT_REQUESTED = "placement.requested"
    REQUEST_WITHDRAWN = "request.withdrawn"
    OFFER_ACCEPTED = "offer.accepted"
    PLACEMENT_OFFERED = "placement.offered"
    PLACEMENT_DECLINED = "placement.declined"
    OFFER_EXPIRED = "offer.expired"
    OFFER_WITHDRAWN = "offer.withdrawn"


@dataclass(frozen=True, slots=True)
class LoopNotice:
    """One placement-loop event told to the one organisation it concerns."""

    notice_id: UUID  # the event's id
    kind: LoopNoticeKind
    recipient: Recipient
    body: dict[str, Any]  # JSON-ready
    occurred_at: datetime  # the event's time: it starts the delivery latency clock


def loop_notice_of(event: Envelope[Any]) -> LoopNotice:
    """The notice a placement-loop event makes; any other event is refused."""
    payload = event.payload
    told = next((told for cls, told in _NOTICES.items() if isinstance(payload, cls)), None)
    if told is None:
        raise UnappliableEventError(f"{event.event_type} is not a placement-loop notice")
    kind, audience = told
    match audience:
        case Audience.PROVIDER:
            to = Recipient(audience, payload.provider_id)
        case Audience.AUTHORITY:
            to = Recipient(audience, payload.authority_code)
    body = {
        "notice_id": str(event.event_id),
        "type": kind.value,
        "occurred_at": event.occurred_at.isoformat(),
        **payload.model_dump(mode="json"),
    }
    return LoopNotice(event.event_id, kind, to, body, event.occurred_at)


# Each placement-loop event's notice, and whom it is told to: the provider the request asked (its
# `provider_id`), or the council that asked (its `authority_code`).
_NOTICES: dict[type, tuple[LoopNoticeKind, Audience]] = {
    events.PlacementRequested: (LoopNoticeKind.PLACEMENT_REQUESTED, Audience.PROVIDER),
    events.RequestWithdrawn: (LoopNoticeKind.REQUEST_WITHDRAWN, Audience.PROVIDER),
    events.OfferAccepted: (LoopNoticeKind.OFFER_ACCEPTED, Audience.PROVIDER),
    events.PlacementOffered: (LoopNoticeKind.PLACEMENT_OFFERED, Audience.AUTHORITY),
    events.PlacementDeclined: (LoopNoticeKind.PLACEMENT_DECLINED, Audience.AUTHORITY),
    events.OfferExpired: (LoopNoticeKind.OFFER_EXPIRED, Audience.AUTHORITY),
    events.OfferWithdrawn: (LoopNoticeKind.OFFER_WITHDRAWN, Audience.AUTHORITY),
}


def event_name(kind: str) -> str:
    """The `X-NearHome-Event` header and stream event name of a delivery's kind: an alert's kind
    (`raised`, `retracted`) is named `alert.<kind>`, a loop notice's kind is its own name."""
    return kind if kind in _LOOP_KINDS else f"alert.{kind}"


_LOOP_KINDS = frozenset(kind.value for kind in LoopNoticeKind)
