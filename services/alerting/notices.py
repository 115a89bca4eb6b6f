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

from contracts.envelope import Envelope
from contracts.events import (
    OfferAccepted,
    OfferExpired,
    OfferWithdrawn,
    PlacementDeclined,
    PlacementOffered,
    PlacementRequested,
    RequestWithdrawn,
)
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
    match payload:
        case PlacementRequested() | RequestWithdrawn() | OfferAccepted():
            to = _provider(payload.provider_id)
        case PlacementOffered() | PlacementDeclined() | OfferExpired() | OfferWithdrawn():
            to = _council(payload.authority_code)
        case _:
            raise UnappliableEventError(f"{event.event_type} is not a placement-loop notice")
    kind = next(kind for cls, kind in _KIND_OF.items() if isinstance(payload, cls))
    body = {
        "notice_id": str(event.event_id),
        "type": kind.value,
        "occurred_at": event.occurred_at.isoformat(),
        **payload.model_dump(mode="json"),
    }
    return LoopNotice(event.event_id, kind, to, body, event.occurred_at)


_KIND_OF: dict[type, LoopNoticeKind] = {
    PlacementRequested: LoopNoticeKind.PLACEMENT_REQUESTED,
    RequestWithdrawn: LoopNoticeKind.REQUEST_WITHDRAWN,
    OfferAccepted: LoopNoticeKind.OFFER_ACCEPTED,
    PlacementOffered: LoopNoticeKind.PLACEMENT_OFFERED,
    PlacementDeclined: LoopNoticeKind.PLACEMENT_DECLINED,
    OfferExpired: LoopNoticeKind.OFFER_EXPIRED,
    OfferWithdrawn: LoopNoticeKind.OFFER_WITHDRAWN,
}


def _provider(provider_id: str) -> Recipient:
    return Recipient(Audience.PROVIDER, provider_id)


def _council(authority_code: str) -> Recipient:
    return Recipient(Audience.AUTHORITY, authority_code)


def event_name(kind: str) -> str:
    """The `X-NearHome-Event` header and stream event name of a delivery's kind: an alert's kind
    (`raised`, `retracted`) is named `alert.<kind>`, a loop notice's kind is its own name."""
    return kind if kind in _LOOP_KINDS else f"alert.{kind}"


_LOOP_KINDS = frozenset(kind.value for kind in LoopNoticeKind)
