"""Held beds are not alerted to other councils (docs/domain.md, "From alert to placement").

An offer holds beds of a vacancy for one referral: other referrals that no longer find enough free
beds there have their alerts retracted as `held`; the referral the offer is for keeps its alert.
Released (the offer expired or was withdrawn), the beds are alerted again; taken by a placement
started from the offer, they are gone.
"""

from typing import Any
from uuid import UUID, uuid4

from builders import LANCASHIRE, SEFTON
from hypothesis import given, settings
from hypothesis import strategies as st
from test_alerting_domain import (
    R,
    S,
    V,
    apply_all,
    beyond_loop_notices,
    loaded_again,
    new_book,
    placement,
    referral,
    referral_event,
    setting,
    told,
    vacancy,
    vacancy_event,
)

from services.alerting.domain import AlertBook, Changes, Event
from services.alerting.holds import Hold
from services.alerting.matching import OpenReferral, fits

OTHER = uuid4()  # another council's referral, for a child living near the setting
SIBLINGS = uuid4()
REQUEST = uuid4()


def other_referral(
    referral_id: UUID = OTHER, event_type: str = "ReferralOpened", **changes: Any
) -> Event:
    return referral(
        referral_id,
        event_type,
        **{
            "authority_code": LANCASHIRE,
            "reference": "LAN-7",
            "home_postcode_district": "L40",
            **changes,
        },
    )


def answer(
    event_type: str,
    *,
    request_id: UUID = REQUEST,
    referral_id: UUID = R,
    vacancy_id: UUID = V,
    authority_code: str = SEFTON,
    **fields: Any,
) -> Event:
    return vacancy_event(
        event_type,
        S,
        vacancy_id,
        request_id=str(request_id),
        referral_id=str(referral_id),
        authority_code=authority_code,
        **fields,
    )


def offered(beds: int = 1, **fields: Any) -> Event:
    return answer("PlacementOffered", beds=beds, expires_at="2026-11-25T09:00:00Z", **fields)


def expired(beds: int = 1, **fields: Any) -> Event:
    return answer("OfferExpired", beds=beds, **fields)


def withdrawn(beds: int = 1, **fields: Any) -> Event:
    return answer("OfferWithdrawn", beds=beds, reason="withdrawn_by_provider", **fields)


def placed_from_offer(request_id: UUID = REQUEST, referral_id: UUID = R) -> Event:
    return placement(
        "PlacementStarted",
        S,
        vacancy_id=str(V),
        request_id=str(request_id),
        referral_id=str(referral_id),
    )


def book_alerting_two_councils(beds: int = 1) -> AlertBook:
    """One vacancy fitting a Sefton referral (R) and a Lancashire one (OTHER), both alerted."""
    book = new_book()
    changes = apply_all(book, setting(S), vacancy(S, V, beds=beds), referral(R), other_referral())
    assert sorted(told(changes)) == sorted([("raised", R, V, None), ("raised", OTHER, V, None)])
    return book


# --- holding --------------------------------------------------------------------------------------


def test_an_offer_holding_the_only_bed_retracts_the_other_councils_alert_as_held():
    book = book_alerting_two_councils()
    kept = book.alerts[(R, V)]

    changes = apply_all(book, offered())

    assert told(changes) == [("retracted", OTHER, V, "held")]
    assert changes.notices[0].envelope().payload.reason.value == "held"
    assert book.alerts == {(R, V): kept}  # the referral the offer is for keeps its alert
    assert changes.holds == {REQUEST: Hold(REQUEST, V, R, 1)}


def test_a_hold_that_leaves_enough_beds_retracts_only_the_groups_it_leaves_too_few_for():
    book = book_alerting_two_councils(beds=2)
    apply_all(book, other_referral(SIBLINGS, sibling_group_size=2, needs=["semh", "sibling_group"]))
    assert set(book.alerts) == {(R, V), (OTHER, V), (SIBLINGS, V)}

    changes = apply_all(book, offered(beds=1))

    assert told(changes) == [("retracted", SIBLINGS, V, "held")]
    assert set(book.alerts) == {(R, V), (OTHER, V)}


def test_new_referrals_are_not_alerted_about_held_beds_but_the_held_for_one_still_fits():
    book = new_book()
    apply_all(book, setting(S), vacancy(S, V), referral(R), offered())

    assert told(apply_all(book, other_referral())) == []
    # The referral the offer is for, updated, still fits the beds held for it.
    changes = apply_all(book, referral(R, "ReferralUpdated", needs=["autism"]))
    assert told(changes) == []
    assert set(book.alerts) == {(R, V)}


def test_the_referral_an_offer_is_for_is_alerted_on_its_held_beds_if_it_was_not_yet():
    book = new_book()
    apply_all(book, setting(S), vacancy(S, V), other_referral())
    # The offer reaches alerting before the referral it is for (no order across topics).
    changes = apply_all(book, offered(), referral(R))
    assert told(changes) == [("retracted", OTHER, V, "held"), ("raised", R, V, None)]


# --- releasing ------------------------------------------------------------------------------------


def test_an_expired_offer_frees_its_beds_and_the_other_council_is_alerted_again():
    book = book_alerting_two_councils()
    first = book.alerts[(OTHER, V)]
    kept = book.alerts[(R, V)]
    apply_all(book, offered())

    changes = apply_all(book, expired())

    assert told(changes) == [("raised", OTHER, V, None)]
    assert book.alerts[(OTHER, V)].alert_id != first.alert_id  # a new alert
    assert book.alerts[(R, V)] == kept
    assert changes.holds_released == {REQUEST}
    assert book.holds.all() == []


def test_a_withdrawn_offer_frees_its_beds_too():
    book = book_alerting_two_councils()
    apply_all(book, offered())
    assert told(apply_all(book, withdrawn())) == [("raised", OTHER, V, None)]


def test_releasing_an_offer_alerting_never_saw_changes_nothing():
    book = book_alerting_two_councils()
    changes = apply_all(book, expired(request_id=uuid4()))
    assert beyond_loop_notices(changes) == Changes()


def test_a_withdrawn_vacancy_takes_its_holds_with_it():
    book = book_alerting_two_councils()
    apply_all(book, offered())

    changes = apply_all(
        book,
        vacancy_event("VacancyWithdrawn", S, V, reason="no_longer_available"),
    )

    assert told(changes) == [("retracted", R, V, "vacancy_withdrawn")]
    assert changes.holds_released == {REQUEST}
    assert book.holds.all() == []
    # The offer's own release, arriving after, finds nothing to free.
    assert beyond_loop_notices(apply_all(book, withdrawn())) == Changes()


def test_an_offer_on_a_vacancy_that_closed_holds_nothing():
    book = new_book()
    apply_all(
        book,
        setting(S),
        vacancy(S, V),
        vacancy_event("VacancyExpired", S, V, last_confirmed_at="2026-11-10T10:00:00Z"),
    )
    assert beyond_loop_notices(apply_all(book, offered())) == Changes()
    assert book.holds.all() == []


# --- taking ---------------------------------------------------------------------------------------


def test_a_placement_started_from_the_offer_takes_the_held_beds_for_good():
    book = book_alerting_two_councils()
    apply_all(book, offered())

    changes = apply_all(book, placed_from_offer())

    # The bed is the placed child's now: nobody is alerted about it, the other council neither.
    assert told(changes) == [("retracted", R, V, "vacancy_taken")]
    assert book.alerts == {}
    assert changes.holds == {REQUEST: Hold(REQUEST, V, R, 1, taken=True)}
    # An offer taken up neither expires nor frees its beds.
    assert beyond_loop_notices(apply_all(book, expired())) == Changes()
    assert told(apply_all(book, other_referral(uuid4()))) == []


def test_a_placement_naming_a_request_alerting_never_saw_is_an_ordinary_placement():
    book = book_alerting_two_councils(beds=2)
    changes = apply_all(book, placed_from_offer(request_id=uuid4()))
    assert told(changes) == []
    assert changes.holds == {}
    assert book.occupied == {S: 1}


# --- closing the referral an offer was for (step 4 of the loop) -----------------------------------


def test_a_placed_referral_has_every_open_alert_retracted():
    other_vacancy = uuid4()
    book = book_alerting_two_councils()
    apply_all(book, vacancy(S, other_vacancy), offered())
    assert set(book.alerts) == {(R, V), (R, other_vacancy), (OTHER, other_vacancy)}

    changes = apply_all(
        book,
        placed_from_offer(),
        referral_event("ReferralClosed", R, outcome="placed"),
    )

    assert sorted(told(changes)) == sorted(
        [
            ("retracted", R, V, "vacancy_taken"),
            ("retracted", R, other_vacancy, "referral_closed"),
        ]
    )
    assert set(book.alerts) == {(OTHER, other_vacancy)}


# --- the book's invariant with holds, and loading it from its records -----------------------------

REFERRALS = (R, OTHER, SIBLINGS)
REQUESTS = (UUID(int=31), UUID(int=32), UUID(int=33))


@st.composite
def hold_events(draw: st.DrawFn) -> Event:
    kind = draw(st.sampled_from(["offer", "expire", "withdraw", "start", "end", "update"]))
    request_id = draw(st.sampled_from(REQUESTS))
    referral_id = draw(st.sampled_from(REFERRALS))
    beds = draw(st.integers(1, 2))
    if kind == "offer":
        return offered(beds, request_id=request_id, referral_id=referral_id)
    if kind == "expire":
        return expired(beds, request_id=request_id, referral_id=referral_id)
    if kind == "withdraw":
        return withdrawn(beds, request_id=request_id, referral_id=referral_id)
    if kind == "start":
        return placed_from_offer(request_id, referral_id)
    if kind == "end":
        return placement("PlacementEnded", S)
    siblings = draw(st.integers(1, 2))
    build = referral if referral_id == R else other_referral
    return build(
        referral_id,
        "ReferralUpdated",
        sibling_group_size=siblings,
        needs=["semh"] + (["sibling_group"] if siblings > 1 else []),
    )


@st.composite
def histories(draw: st.DrawFn) -> list[Event]:
    opening = [
        setting(S, registered_places=draw(st.integers(2, 4))),
        vacancy(S, V, beds=draw(st.integers(1, 3))),
        referral(R),
        other_referral(),
        other_referral(SIBLINGS, sibling_group_size=2, needs=["semh", "sibling_group"]),
    ]
    return opening + draw(st.lists(hold_events(), max_size=20))


def current_fits(book: AlertBook) -> set[tuple[UUID, UUID]]:
    """Each pair that fits now, checked pair by pair: the held-for referral counts its own beds."""
    found = set()
    for state in book.referrals.values():
        referral_ = OpenReferral.from_event(state)
        for vacancy_id in book.vacancies:
            offers = [book.open_vacancy(vacancy_id)]
            if vacancy_id in book.holds.vacancies_held_for(referral_.referral_id):
                offers.append(book.open_vacancy(vacancy_id, sparing=referral_.referral_id))
            if any(o is not None and fits(referral_, o) is not None for o in offers):
                found.add((referral_.referral_id, vacancy_id))
    return found


@settings(max_examples=150, deadline=None)
@given(histories())
def test_with_holds_the_open_alerts_are_exactly_the_pairs_that_fit_now(events: list[Event]):
    book = new_book()
    for each in events:
        book.apply(each, Changes())
        assert set(book.alerts) == current_fits(book)


@settings(max_examples=100, deadline=None)
@given(histories())
def test_a_book_loaded_with_its_holds_is_the_book_that_applied_the_events(events: list[Event]):
    book = new_book()
    kept: dict[UUID, Hold] = {}
    for each in events:
        changes = Changes()
        book.apply(each, changes)
        for request_id in changes.holds_released:
            kept.pop(request_id, None)
        kept |= changes.holds
    assert sorted(kept.values(), key=str) == sorted(book.holds.all(), key=str)

    loaded = loaded_again(book, kept.values())
    assert loaded.alerts == book.alerts
    assert loaded.index.vacancies == book.index.vacancies
    probe = offered(request_id=uuid4(), referral_id=OTHER)
    assert sorted(told(apply_all(loaded, probe))) == sorted(told(apply_all(book, probe)))
