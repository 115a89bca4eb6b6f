"""The placement loop's notices, pure: each loop event is told to the one provider or council it
concerns, under its own type, keyed by the event's id, its body the event's payload and no more."""

import json
from typing import Any

import pytest
from builders import SEFTON
from test_alerting_domain import NOW, R, S, V, setting, vacancy_event
from test_alerting_loop_events import REQUEST, placement_requested, request_event

from services.alerting.domain import Event
from services.alerting.notices import (
    Audience,
    LoopNoticeKind,
    Recipient,
    event_name,
    loop_notice_of,
)
from services.alerting.store import (
    NOTIFICATION_LIMIT,
    Streamed,
    stream_notification,
    webhook_bytes,
)
from services.alerting.stream import event_text, live_event, resume_position
from services.platform.errors import UnappliableEventError

ACME = Recipient(Audience.PROVIDER, "acme-care")
COUNCIL = Recipient(Audience.AUTHORITY, SEFTON)


def answer(event_type: str, **fields: Any) -> Event:
    """The provider's answer to the request, an event of vacancy V."""
    return vacancy_event(
        event_type,
        S,
        V,
        request_id=str(REQUEST),
        referral_id=str(R),
        authority_code=SEFTON,
        **fields,
    )


ROUTES: dict[str, tuple[Any, LoopNoticeKind, Recipient]] = {
    "PlacementRequested": (placement_requested, LoopNoticeKind.PLACEMENT_REQUESTED, ACME),
    "RequestWithdrawn": (
        lambda: request_event("RequestWithdrawn", reason="withdrawn_by_council"),
        LoopNoticeKind.REQUEST_WITHDRAWN,
        ACME,
    ),
    "OfferAccepted": (
        lambda: request_event("OfferAccepted"),
        LoopNoticeKind.OFFER_ACCEPTED,
        ACME,
    ),
    "PlacementOffered": (
        lambda: answer(
            "PlacementOffered", beds=1, expires_at="2026-11-26T09:00:00Z", weekly_fee_gbp=4200
        ),
        LoopNoticeKind.PLACEMENT_OFFERED,
        COUNCIL,
    ),
    "PlacementDeclined": (
        lambda: answer("PlacementDeclined", reason="staffing"),
        LoopNoticeKind.PLACEMENT_DECLINED,
        COUNCIL,
    ),
    "OfferExpired": (lambda: answer("OfferExpired", beds=1), LoopNoticeKind.OFFER_EXPIRED, COUNCIL),
    "OfferWithdrawn": (
        lambda: answer("OfferWithdrawn", beds=1, reason="withdrawn_by_provider"),
        LoopNoticeKind.OFFER_WITHDRAWN,
        COUNCIL,
    ),
}


@pytest.mark.parametrize("event_type", sorted(ROUTES))
def test_each_loop_event_is_told_to_the_one_organisation_it_concerns(event_type: str) -> None:
    make, kind, recipient = ROUTES[event_type]
    loop_event = make()

    notice = loop_notice_of(loop_event)

    assert (notice.notice_id, notice.kind, notice.recipient) == (
        loop_event.event_id,
        kind,
        recipient,
    )
    assert notice.body == {
        "notice_id": str(loop_event.event_id),
        "type": kind.value,
        "occurred_at": NOW.isoformat(),
        **loop_event.payload.model_dump(mode="json"),
    }
    assert event_name(notice.kind) == kind.value


def test_a_request_tells_the_provider_of_the_child_as_the_event_does_and_nothing_more() -> None:
    requested = placement_requested()

    body = loop_notice_of(requested).body

    assert body == {
        "notice_id": str(requested.event_id),
        "type": "placement.requested",
        "occurred_at": NOW.isoformat(),
        "request_id": str(REQUEST),
        "referral_id": str(R),
        "vacancy_id": str(V),
        "setting_id": str(S),
        "provider_id": "acme-care",
        "authority_code": SEFTON,
        "age": 13,
        "sex": "female",
        "sibling_group_size": 1,
        "needs": ["semh"],
        "home_postcode_district": "L20",
        "needed_by": "2026-12-01",
        "urgency": "planned",
    }


def test_an_offer_tells_the_council_its_beds_expiry_and_fee() -> None:
    make, _, _ = ROUTES["PlacementOffered"]
    body = loop_notice_of(make()).body
    assert (body["beds"], body["expires_at"], body["weekly_fee_gbp"]) == (
        1,
        "2026-11-26T09:00:00Z",
        4200,
    )


def test_the_same_event_delivered_twice_makes_the_same_notice() -> None:
    requested = placement_requested()
    assert loop_notice_of(requested) == loop_notice_of(requested.model_copy())


def test_an_event_outside_the_loop_makes_no_notice() -> None:
    with pytest.raises(UnappliableEventError, match="SettingRegistered"):
        loop_notice_of(setting(S))


def test_alert_deliveries_keep_their_alert_event_names() -> None:
    assert (event_name("raised"), event_name("retracted")) == ("alert.raised", "alert.retracted")


def test_a_streamed_notice_goes_to_its_recipient_named_as_its_type() -> None:
    notice = loop_notice_of(placement_requested())
    streamed = Streamed(notice.recipient, notice.kind.value, webhook_bytes(notice.body).decode())

    live = live_event(stream_notification(41, streamed))

    assert (live.position, live.recipient, live.event) == (41, ACME, "placement.requested")
    assert live.data is not None
    name, identifier, data = (
        event_text(live.position, live.event, live.data).rstrip("\n").split("\n")
    )
    assert name == "event: placement.requested"
    assert identifier == "id: 41"
    assert json.loads(data.removeprefix("data: ")) == notice.body


def test_a_streamed_alert_goes_to_its_council_only() -> None:
    alert = {"alert_id": "a1", "type": "raised", "authority_code": SEFTON}
    streamed = Streamed(COUNCIL, "alert.raised", json.dumps(alert))
    live = live_event(stream_notification(7, streamed))
    assert (live.recipient, live.event, live.data) == (COUNCIL, "alert.raised", json.dumps(alert))
    assert event_text(7, live.event, json.dumps(alert)).startswith("event: alert.raised\nid: 7\n")


def test_an_event_too_long_for_a_notification_is_notified_without_its_data() -> None:
    streamed = Streamed(COUNCIL, "alert.raised", json.dumps({"description": "\u2603" * 2000}))
    notification = stream_notification(9, streamed)
    assert len(notification.encode()) < NOTIFICATION_LIMIT
    live = live_event(notification)
    assert (live.position, live.recipient, live.data) == (9, COUNCIL, None)


@pytest.mark.parametrize(
    ("last_event_id", "position"),
    [
        ("42", 42),
        (" 42 ", 42),
        ("0", 0),
        (None, None),
        ("", None),
        ("8f3c2a1e-0000-4000-8000-000000000000.raised", None),
        ("-1", None),
        ("4.2", None),
        ("1" * 19, None),  # past a bigint
        ("\u0664\u0662", None),  # digits, but not ASCII ones
    ],
)
def test_only_a_position_resumes_a_stream(last_event_id: str | None, position: int | None) -> None:
    assert resume_position(last_event_id) == position
