"""The placement loop's events in the alert book: each is handled by name, and those that hold or
free no bed change nothing alerting keeps (docs/domain.md, "From alert to placement")."""

from typing import Any
from uuid import uuid4

import pytest
from builders import CHILD, SEFTON, request_keys
from test_alerting_domain import (
    NOW,
    R,
    S,
    V,
    apply_all,
    beyond_loop_notices,
    book_with_alert,
    event,
    reserved,
)

from contracts.enums import AlertRetractionReason
from contracts.envelope import envelop
from contracts.events import AlertRetracted
from services.alerting.domain import AlertBook, Changes, Event
from services.platform.errors import UnappliableEventError

REQUEST = uuid4()


def of_the_request(**fields: Any) -> dict[str, Any]:
    """`fields`, with those naming the referral R's request for a bed of vacancy V."""
    return request_keys(referral_id=R, request_id=REQUEST, setting_id=S, vacancy_id=V, **fields)


def request_event(event_type: str, **fields: Any) -> Event:
    """An event of the request, the referral's (its aggregate is R)."""
    return event(event_type, R, **of_the_request(**fields))


def placement_requested() -> Event:
    return request_event("PlacementRequested", **CHILD)


def placement_declined() -> Event:
    return event("PlacementDeclined", V, **of_the_request(reason="staffing"))


NO_OPS = {
    "PlacementRequested": placement_requested,
    "RequestWithdrawn": lambda: request_event("RequestWithdrawn", reason="withdrawn_by_council"),
    "OfferAccepted": lambda: request_event("OfferAccepted"),
    "PlacementDeclined": placement_declined,
}


def snapshot(book: AlertBook) -> tuple[object, ...]:
    return (
        dict(book.alerts),
        dict(book.vacancies),
        dict(book.referrals),
        dict(book.settings),
        dict(book.occupied),
        dict(book.index.vacancies),
        dict(book.index.referrals),
    )


@pytest.mark.parametrize("event_type", sorted(NO_OPS))
def test_a_loop_event_that_holds_or_frees_no_bed_is_applied_and_changes_nothing(event_type: str):
    book = book_with_alert()
    before = snapshot(book)

    loop_event = NO_OPS[event_type]()
    changes = apply_all(book, loop_event)

    assert beyond_loop_notices(changes) == Changes()
    assert snapshot(book) == before
    # It is only told to the provider or council it concerns (test_alerting_notice_routing.py).
    assert [notice.notice_id for notice in changes.loop_notices] == [loop_event.event_id]


def test_an_event_of_an_unknown_type_is_still_refused():
    book = book_with_alert()
    with pytest.raises(UnappliableEventError, match="VacancyReserved"):
        book.apply(reserved(S, V), Changes())
    assert set(book.alerts) == {(R, V)}


def test_alertings_own_events_are_refused_as_input():
    book = book_with_alert()
    alert = book.alerts[(R, V)]
    retracted = envelop(
        AlertRetracted(
            alert_id=alert.alert_id,
            referral_id=R,
            vacancy_id=V,
            setting_id=S,
            authority_code=SEFTON,
            reason=AlertRetractionReason.REFERRAL_CLOSED,
        ),
        producer="tests",
        organisation_id=SEFTON,
        aggregate_id=alert.alert_id,
        sequence=2,
        occurred_at=NOW,
    )
    with pytest.raises(UnappliableEventError, match="AlertRetracted"):
        book.apply(retracted, Changes())
    assert set(book.alerts) == {(R, V)}
