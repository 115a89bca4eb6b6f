"""The alert book (docs/domain.md, rule 3): which events raise alerts, which retract them, why."""

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID, uuid4

import pytest
from builders import (
    IN_LANCASHIRE,
    LANCASHIRE,
    SEFTON,
    placement_keys,
    referral_fields,
    setting_fields,
    vacancy_fields,
    vacancy_keys,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from contracts.enums import AlertRetractionReason
from contracts.envelope import envelop
from contracts.events import EventPayload, ReferralState
from contracts.serialization import payload_from
from services.alerting.domain import (
    AlertBook,
    Changes,
    Event,
    NoticeKind,
    free_beds,
    occupancy_change,
    reason_vacancy_gone,
)
from services.alerting.holds import Hold
from services.alerting.matching import OpenReferral, fits
from services.alerting.metrics import AlertingMetrics
from services.alerting.projection import AlertingProjection, Batch
from services.platform.errors import UnappliableEventError

MANCHESTER = "E08000003"
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def event(event_type: str, aggregate_id: UUID | None = None, **fields: Any) -> Event:
    payload = payload_from(event_type, fields)
    return envelop(
        payload,
        producer="tests",
        organisation_id="acme-care",
        aggregate_id=aggregate_id or uuid4(),
        sequence=1,
        occurred_at=NOW,
    )


def setting(setting_id: UUID, event_type: str = "SettingRegistered", **changes: Any) -> Event:
    needs_met = ["semh", "autism", "solo_placement", "sibling_group"]
    return event(
        event_type,
        setting_id,
        **setting_fields(setting_id, **{"needs_met": needs_met, **IN_LANCASHIRE, **changes}),
    )


def vacancy(setting_id: UUID, vacancy_id: UUID, **changes: Any) -> Event:
    return event("VacancyPosted", vacancy_id, **vacancy_fields(setting_id, vacancy_id, **changes))


def vacancy_event(event_type: str, setting_id: UUID, vacancy_id: UUID, **fields: Any) -> Event:
    return event(event_type, vacancy_id, **vacancy_keys(setting_id, vacancy_id, **fields))


def placement(event_type: str, setting_id: UUID, beds: int = 1, **fields: Any) -> Event:
    if event_type == "PlacementStarted":
        fields = {"start_date": "2026-11-24", **fields}
    else:
        fields = {"end_date": "2027-01-10", "reason": "planned_move", **fields}
    return event(event_type, **placement_keys(setting_id, uuid4(), beds=beds, **fields))


def referral(referral_id: UUID, event_type: str = "ReferralOpened", **changes: Any) -> Event:
    return event(
        event_type, referral_id, **referral_fields(referral_id, **{"reference": "SEF-1", **changes})
    )


def referral_event(event_type: str, referral_id: UUID, **fields: Any) -> Event:
    return event(
        event_type, referral_id, referral_id=str(referral_id), authority_code=SEFTON, **fields
    )


def apply_all(book: AlertBook, *events: Event) -> Changes:
    changes = Changes()
    for each in events:
        book.apply(each, changes)
    return changes


def beyond_loop_notices(changes: Changes) -> Changes:
    """The changes to alerting's own state and alerts: the loop's notices left out."""
    return replace(changes, loop_notices=[])


def told(changes: Changes) -> list[tuple[str, UUID, UUID, str | None]]:
    """(raised | retracted, referral, vacancy, reason) for each notice, in order."""
    return [
        (
            notice.kind.value,
            notice.alert.fit.referral_id,
            notice.alert.fit.vacancy_id,
            None if notice.reason is None else notice.reason.value,
        )
        for notice in changes.notices
    ]


def new_book() -> AlertBook:
    return AlertBook(clock=lambda: NOW)


S, V, R = uuid4(), uuid4(), uuid4()


def book_with_alert(**referral_changes: Any) -> AlertBook:
    book = new_book()
    changes = apply_all(book, setting(S), vacancy(S, V), referral(R, **referral_changes))
    assert told(changes) == [("raised", R, V, None)]
    return book


# --- raising --------------------------------------------------------------------------------------


def test_a_vacancy_posted_near_an_open_referral_raises_one_alert_for_its_council():
    book = new_book()
    apply_all(book, referral(R), setting(S))
    changes = apply_all(book, vacancy(S, V))

    assert told(changes) == [("raised", R, V, None)]
    alert = changes.notices[0].alert
    assert alert.fit.authority_code == SEFTON
    assert (alert.fit.distance_miles, alert.fit.local) == (12.0, True)
    assert alert.raised_at == NOW
    assert set(book.alerts) == {(R, V)}


def test_a_new_referral_is_told_at_once_about_open_vacancies_that_already_fit():
    other = uuid4()
    book = new_book()
    apply_all(book, setting(S), vacancy(S, V), vacancy(S, other))
    changes = apply_all(book, referral(R))
    assert sorted(told(changes)) == sorted([("raised", R, V, None), ("raised", R, other, None)])


def test_a_vacancy_that_does_not_fit_raises_nothing():
    book = new_book()
    apply_all(book, referral(R), setting(S))
    assert told(apply_all(book, vacancy(S, V, age_min=14))) == []


def test_a_vacancy_posted_before_its_setting_is_alerted_once_the_setting_is_known():
    book = new_book()
    assert told(apply_all(book, referral(R), vacancy(S, V))) == []
    assert told(apply_all(book, setting(S))) == [("raised", R, V, None)]


def test_the_webhook_body_and_event_carry_the_alert():
    book = new_book()
    changes = apply_all(book, referral(R), setting(S), vacancy(S, V))
    notice = changes.notices[0]
    body = notice.webhook_body()
    assert body == {
        "alert_id": str(notice.alert.alert_id),
        "type": "raised",
        "referral_id": str(R),
        "vacancy_id": str(V),
        "setting_id": str(S),
        "authority_code": SEFTON,
        "distance_miles": 12.0,
        "local": True,
        "placement_type": "childrens_home",
        "ofsted_rating": "good",
        "postcode_district": "L40",
        "beds": 1,
        "raised_at": NOW.isoformat(),
        "setting_profile": None,  # the setting has no profile
    }
    envelope = notice.envelope()
    assert (envelope.event_type, envelope.sequence, envelope.key) == (
        "AlertRaised",
        1,
        str(R).encode(),
    )
    assert envelope.aggregate_id == notice.alert.alert_id


# --- retracting -----------------------------------------------------------------------------------


def test_withdrawing_a_vacancy_retracts_its_alerts_with_the_reason():
    book = book_with_alert()
    changes = apply_all(book, vacancy_event("VacancyWithdrawn", S, V, reason="filled_elsewhere"))
    assert told(changes) == [("retracted", R, V, "vacancy_withdrawn")]
    assert book.alerts == {}
    retraction = changes.notices[0]
    assert retraction.webhook_body()["reason"] == "vacancy_withdrawn"
    envelope = retraction.envelope()
    assert (envelope.event_type, envelope.sequence) == ("AlertRetracted", 2)


def test_an_expired_vacancy_retracts_its_alerts():
    book = book_with_alert()
    changes = apply_all(
        book,
        vacancy_event("VacancyExpired", S, V, last_confirmed_at="2026-11-10T10:00:00Z"),
    )
    assert told(changes) == [("retracted", R, V, "vacancy_expired")]


def test_a_placement_that_leaves_too_few_beds_for_the_sibling_group_retracts_as_taken():
    book = new_book()
    apply_all(book, setting(S), vacancy(S, V, beds=2))
    changes = apply_all(book, referral(R, sibling_group_size=2, needs=["semh", "sibling_group"]))
    assert told(changes) == [("raised", R, V, None)]

    # 4 places, 3 taken: the vacancy of 2 beds has 1 bed left, too few for two siblings.
    changes = apply_all(book, placement("PlacementStarted", S, beds=3))
    assert told(changes) == [("retracted", R, V, "vacancy_taken")]


def test_a_placement_ending_lets_the_vacancy_fit_again_under_a_new_alert():
    book = new_book()
    apply_all(
        book,
        setting(S),
        vacancy(S, V, beds=2),
        referral(R, sibling_group_size=2, needs=["semh", "sibling_group"]),
    )
    first = next(iter(book.alerts.values()))
    apply_all(book, placement("PlacementStarted", S, beds=3))

    changes = apply_all(book, placement("PlacementEnded", S, beds=3))
    assert told(changes) == [("raised", R, V, None)]
    assert book.alerts[(R, V)].alert_id != first.alert_id


def test_a_placement_ending_raises_nothing_for_a_pair_already_alerted():
    book = book_with_alert()
    apply_all(book, placement("PlacementStarted", S, beds=1))
    assert told(apply_all(book, placement("PlacementEnded", S, beds=1))) == []


def test_a_child_placed_at_the_setting_rules_out_a_solo_placement():
    book = book_with_alert(needs=["semh", "solo_placement"])
    changes = apply_all(book, placement("PlacementStarted", S))
    assert told(changes) == [("retracted", R, V, "vacancy_taken")]


def test_a_setting_updated_below_the_referrals_minimum_rating_retracts_saying_so():
    book = book_with_alert()
    changes = apply_all(book, setting(S, "SettingUpdated", ofsted_rating="requires_improvement"))
    assert told(changes) == [("retracted", R, V, "rating_below_minimum")]


def test_a_setting_updated_so_that_it_no_longer_meets_the_needs_retracts_as_no_longer_fits():
    book = book_with_alert()
    changes = apply_all(book, setting(S, "SettingUpdated", needs_met=["autism"]))
    assert told(changes) == [("retracted", R, V, "no_longer_fits")]


def test_a_setting_update_that_still_fits_tells_nobody_anything():
    book = book_with_alert()
    assert told(apply_all(book, setting(S, "SettingUpdated", registered_places=5))) == []


def test_closing_the_setting_retracts_its_vacancies_alerts():
    book = book_with_alert()
    changes = apply_all(
        book,
        event(
            "SettingClosed", S, setting_id=str(S), provider_id="acme-care", closed_on="2026-12-01"
        ),
    )
    assert told(changes) == [("retracted", R, V, "setting_closed")]
    assert book.index.vacancies == {}


def test_a_referral_updated_so_that_it_no_longer_fits_is_retracted():
    book = book_with_alert()
    changes = apply_all(book, referral(R, "ReferralUpdated", age=7))
    assert told(changes) == [("retracted", R, V, "no_longer_fits")]


def test_a_referral_update_that_still_fits_keeps_its_alert():
    book = book_with_alert()
    alert = book.alerts[(R, V)]
    assert told(apply_all(book, referral(R, "ReferralUpdated", needs=["autism"]))) == []
    assert book.alerts[(R, V)] == alert


def test_closing_a_referral_retracts_all_its_alerts():
    other = uuid4()
    book = book_with_alert()
    apply_all(book, vacancy(S, other))
    changes = apply_all(book, referral_event("ReferralClosed", R, outcome="placed"))
    assert sorted(told(changes)) == sorted(
        [("retracted", R, V, "referral_closed"), ("retracted", R, other, "referral_closed")]
    )
    assert book.referrals == {}


def test_a_vacancy_in_another_council_of_the_region_is_alerted_only_once_the_referral_widens():
    manchester = uuid4()
    book = new_book()
    apply_all(
        book,
        referral(R),
        setting(manchester, postcode_district="M1", authority_code=MANCHESTER),
    )
    assert told(apply_all(book, vacancy(manchester, V))) == []

    changes = apply_all(book, referral_event("ReferralWidened", R, search_scope="regional"))
    assert told(changes) == [("raised", R, V, None)]
    fit = changes.notices[0].alert.fit
    assert (fit.distance_miles, fit.local) == (31.0, False)


def test_free_beds_are_the_vacancys_own_but_never_more_than_the_setting_has_free():
    assert free_beds(registered_places=4, occupied_beds=1, vacancy_beds=2) == 2
    assert free_beds(registered_places=4, occupied_beds=3, vacancy_beds=2) == 1
    assert free_beds(registered_places=4, occupied_beds=5, vacancy_beds=2) == 0


# --- events of a type alerting does not know ----------------------------------------------------


class VacancyReserved(EventPayload):
    """A provider event alerting has never heard of, shaped like the ones it knows (a setting, a
    vacancy, beds): it must be refused, never taken for a placement or a closed vacancy."""

    key_field: ClassVar[str] = "setting_id"

    setting_id: UUID
    vacancy_id: UUID
    beds: int


def reserved(setting_id: UUID, vacancy_id: UUID) -> Event:
    return envelop(
        VacancyReserved(setting_id=setting_id, vacancy_id=vacancy_id, beds=1),
        producer="tests",
        organisation_id="acme-care",
        aggregate_id=vacancy_id,
        sequence=2,
        occurred_at=NOW,
    )


def test_an_event_of_an_unknown_type_is_refused_at_every_dispatch_point_and_changes_nothing():
    book = book_with_alert()
    before = (dict(book.alerts), dict(book.vacancies), dict(book.occupied))
    unknown = reserved(S, V)

    changes = Changes()
    with pytest.raises(UnappliableEventError, match="VacancyReserved"):
        book.apply(unknown, changes)
    with pytest.raises(UnappliableEventError, match="VacancyReserved"):
        reason_vacancy_gone(unknown)
    with pytest.raises(UnappliableEventError, match="VacancyReserved"):
        occupancy_change(unknown)

    assert changes == Changes()
    assert (book.alerts, book.vacancies, book.occupied) == before


def test_the_projection_refuses_an_event_of_an_unknown_type_and_counts_nothing_for_it():
    projection = AlertingProjection(AlertingMetrics(CollectorRegistry()), clock=lambda: NOW)
    projection._book = book_with_alert()  # as loaded from the database at start-up
    batch = Batch(epoch=1)

    with pytest.raises(UnappliableEventError, match="VacancyReserved"):
        projection.apply(batch, reserved(S, V))

    assert batch.changes == Changes()
    assert set(projection.book.alerts) == {(R, V)}


# --- the book's invariant, and loading it from its records ----------------------------------------

SETTINGS = (UUID(int=1), UUID(int=2))
VACANCIES = (UUID(int=11), UUID(int=12), UUID(int=13))
REFERRALS = (UUID(int=21), UUID(int=22), UUID(int=23))
# 12 and 0 miles from L20, 31 (Manchester, same region), 70 (Cumbria, same region)
COUNCILS = {"L40": LANCASHIRE, "L20": SEFTON, "M1": MANCHESTER, "LA9": "E06000064"}


@st.composite
def book_events(draw: st.DrawFn) -> Event:  # noqa: PLR0911 - one branch per kind of event
    kind = draw(
        st.sampled_from(
            ["setting", "close", "vacancy", "withdraw", "start", "end", "referral", "widen", "shut"]
        )
    )
    setting_id = draw(st.sampled_from(SETTINGS))
    vacancy_id = draw(st.sampled_from(VACANCIES))
    referral_id = draw(st.sampled_from(REFERRALS))
    if kind == "setting":
        district = draw(st.sampled_from(list(COUNCILS)))
        return setting(
            setting_id,
            draw(st.sampled_from(["SettingRegistered", "SettingUpdated"])),
            postcode_district=district,
            authority_code=COUNCILS[district],
            registered_places=draw(st.integers(1, 4)),
            ofsted_rating=draw(st.sampled_from(["good", "requires_improvement", "outstanding"])),
        )
    if kind == "close":
        return event(
            "SettingClosed",
            setting_id=str(setting_id),
            provider_id="acme-care",
            closed_on="2026-12-01",
        )
    if kind == "vacancy":
        return vacancy(setting_id, vacancy_id, beds=draw(st.integers(1, 3)))
    if kind == "withdraw":
        return vacancy_event("VacancyWithdrawn", setting_id, vacancy_id, reason="other")
    if kind in {"start", "end"}:
        event_type = "PlacementStarted" if kind == "start" else "PlacementEnded"
        return placement(event_type, setting_id, beds=draw(st.integers(1, 2)))
    if kind == "referral":
        siblings = draw(st.integers(1, 2))
        needs = ["semh"] + (["sibling_group"] if siblings > 1 else [])
        return referral(
            referral_id,
            draw(st.sampled_from(["ReferralOpened", "ReferralUpdated"])),
            sibling_group_size=siblings,
            needs=needs + draw(st.sampled_from([[], ["solo_placement"]])),
            age=draw(st.integers(7, 14)),
        )
    if kind == "widen":
        return referral_event("ReferralWidened", referral_id, search_scope="regional")
    return referral_event("ReferralClosed", referral_id, outcome="withdrawn")


@st.composite
def histories(draw: st.DrawFn) -> list[Event]:
    """Both settings, a vacancy at each and two referrals to begin with, then any events."""
    opening = [
        setting(setting_id, postcode_district=district, authority_code=council)
        for setting_id, (district, council) in zip(
            SETTINGS,
            draw(st.lists(st.sampled_from(list(COUNCILS.items())), min_size=2, max_size=2)),
            strict=True,
        )
    ]
    opening += [vacancy(SETTINGS[0], VACANCIES[0]), vacancy(SETTINGS[1], VACANCIES[1])]
    opening += [referral(REFERRALS[0]), referral(REFERRALS[1], age=draw(st.integers(7, 14)))]
    return opening + draw(st.lists(book_events(), max_size=25))


def apply_what_applies(book: AlertBook, events: list[Event]) -> list[Changes]:
    """Apply each event in its own batch; skip those the book refuses (unknown records)."""
    applied = []
    for each in events:
        changes = Changes()
        try:
            book.apply(each, changes)
        except ValueError:
            continue
        applied.append(changes)
    return applied


def current_fits(book: AlertBook) -> set[tuple[UUID, UUID]]:
    """Every (referral, vacancy) pair that fits now, checked pair by pair without the index."""
    offers = [book.open_vacancy(vacancy_id) for vacancy_id in book.vacancies]
    referrals = [OpenReferral.from_event(state) for state in book.referrals.values()]
    return {
        (referral.referral_id, offer.vacancy_id)
        for referral in referrals
        for offer in offers
        if offer is not None and fits(referral, offer) is not None
    }


@settings(max_examples=150, deadline=None)
@given(histories())
def test_the_open_alerts_are_exactly_the_pairs_that_fit_now(events: list[Event]):
    book = new_book()
    for changes in apply_what_applies(book, events):
        # Each notice changes a pair's state: raised pairs were not open before, and so on.
        for notice in changes.notices:
            if notice.kind is NoticeKind.RETRACTED:
                assert notice.reason in set(AlertRetractionReason)
    assert set(book.alerts) == current_fits(book)


def loaded_again(book: AlertBook, holds: Iterable[Hold] = ()) -> AlertBook:
    """A book loaded from `book`'s records (as the service does at start-up) and `holds`."""
    return AlertBook.of(
        settings=list(book.settings.values()),
        occupied=book.occupied,
        vacancies=list(book.vacancies.values()),
        referrals=list(book.referrals.values()),
        alerts=list(book.alerts.values()),
        holds=holds,
        clock=lambda: NOW,
    )


@settings(max_examples=100, deadline=None)
@given(histories())
def test_a_book_loaded_from_its_records_is_the_book_that_applied_the_events(events: list[Event]):
    book = new_book()
    apply_what_applies(book, events)
    loaded = loaded_again(book)
    assert loaded.alerts == book.alerts
    assert loaded.index.vacancies == book.index.vacancies
    assert loaded.index.referrals == book.index.referrals
    for referral_state in book.referrals.values():
        assert _fits_of(loaded, referral_state) == _fits_of(book, referral_state)


def _fits_of(book: AlertBook, state: ReferralState) -> list[tuple[UUID, float]]:
    return [
        (fit.vacancy_id, fit.distance_miles)
        for fit in book.index.vacancies_fitting(OpenReferral.from_event(state))
    ]
