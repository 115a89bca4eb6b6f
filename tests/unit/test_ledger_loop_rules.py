"""The ledger's rules for the loop from request to placement: holds, releases, takes."""

from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from builders import SAMPLE_PAYLOADS, sample_envelope
from ledger_states import ledger_state
from sqlalchemy import Table

from contracts.enums import DeclineReason, Need, OfstedRating, PlacementType
from services.ledger import tables
from services.ledger.domain import (
    AnswerRecord,
    AnswerStatus,
    CouncilFigures,
    CountedBy,
    Event,
    LedgerState,
    PlacementRecord,
    RecordKind,
    RequestRecord,
    RequestStatus,
    Responses,
    SettingRecord,
    Sufficiency,
    apply_event,
    council_figures,
    fold,
    footprint_responses,
    footprint_sufficiency,
    record_of,
)
from services.platform.errors import UnappliableEventError

W_AND_F, SEFTON = "E06000064", "E08000014"
HOMES = PlacementType.CHILDRENS_HOME
AT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
STALE_AFTER = timedelta(hours=72)

REQUEST_EVENTS = ("PlacementRequested", "RequestWithdrawn", "OfferAccepted")
ANSWER_EVENTS = ("PlacementOffered", "PlacementDeclined", "OfferExpired", "OfferWithdrawn")


class Home:
    """One Westmorland and Furness home with one open vacancy, and events about both."""

    def __init__(self, places: int = 4, vacancy_beds: int = 3) -> None:
        self.setting_id, self.vacancy_id = uuid4(), uuid4()
        self.vacancy_sequence = 1
        self.events: list[Event] = [
            sample_envelope(
                "SettingRegistered", setting_id=str(self.setting_id), registered_places=places
            ),
            self.vacancy("VacancyPosted", beds=vacancy_beds),
        ]

    def vacancy(self, event_type: str, at: datetime = AT, **changes: Any) -> Event:
        """The vacancy's next event (its sequence counts offers and answers too)."""
        event = sample_envelope(
            event_type,
            sequence=self.vacancy_sequence,
            aggregate_id=self.vacancy_id,
            setting_id=str(self.setting_id),
            vacancy_id=str(self.vacancy_id),
            **changes,
        )
        self.vacancy_sequence += 1
        return event.model_copy(update={"occurred_at": at})

    def answer(self, event_type: str, request_id: UUID, **changes: Any) -> Event:
        return self.vacancy(event_type, request_id=str(request_id), **changes)

    def placement(self, request_id: UUID | None, beds: int = 1) -> Event:
        placement_id = uuid4()
        return sample_envelope(
            "PlacementStarted",
            aggregate_id=placement_id,
            placement_id=str(placement_id),
            setting_id=str(self.setting_id),
            vacancy_id=str(self.vacancy_id),
            beds=beds,
            request_id=None if request_id is None else str(request_id),
            referral_id=None if request_id is None else str(uuid4()),
        )

    def figures(self, *events: Event) -> CouncilFigures:
        state = fold([*self.events, *events])
        return council_figures(state, AT, STALE_AFTER).figures[W_AND_F, HOMES]


def _expected(**figures: int) -> CouncilFigures:
    return CouncilFigures(**{"registered_places": 4, "vacant": 4, **figures})


# --- every new event type by name -----------------------------------------------------------------


@pytest.mark.parametrize("event_type", REQUEST_EVENTS + ANSWER_EVENTS)
def test_each_event_of_the_loop_changes_the_request_it_is_about(event_type: str) -> None:
    kind, record_id = record_of(sample_envelope(event_type).payload)

    assert kind is (RecordKind.REQUEST if event_type in REQUEST_EVENTS else RecordKind.ANSWER)
    assert record_id == UUID(SAMPLE_PAYLOADS[event_type]["request_id"])


def test_a_request_is_kept_with_the_childs_needs_and_home_and_then_accepted() -> None:
    referral_id, request_id = uuid4(), uuid4()

    def referral(event_type: str, sequence: int, **changes: Any) -> Event:
        return sample_envelope(
            event_type,
            sequence=sequence,
            referral_id=str(referral_id),
            request_id=str(request_id),
            **changes,
        )

    state = fold(
        [
            sample_envelope("ReferralOpened", referral_id=str(referral_id)),
            referral("PlacementRequested", 2, needs=["semh", "autism"]),
            referral("OfferAccepted", 3),
        ]
    )

    request = state.requests[request_id]
    assert request.needs == (Need.AUTISM, Need.SEMH)  # the contract sorts them
    assert (request.home_postcode_district, request.authority_code) == ("L20", SEFTON)
    assert (request.requested_at, request.status) == (AT, RequestStatus.ACCEPTED)
    apply_event(state, referral("RequestWithdrawn", 4))
    assert state.requests[request_id].status is RequestStatus.WITHDRAWN


def test_a_request_event_belongs_to_its_referral_and_an_answer_to_its_vacancy() -> None:
    wrong = uuid4()
    for event in (
        sample_envelope("PlacementRequested", sequence=2, aggregate_id=wrong),
        sample_envelope("PlacementOffered", sequence=2, aggregate_id=wrong),
    ):
        with pytest.raises(UnappliableEventError, match="aggregate_id"):
            apply_event(LedgerState(), event)


def test_an_offer_that_was_never_made_cannot_expire_or_be_withdrawn() -> None:
    home = Home()
    for event_type in ("OfferExpired", "OfferWithdrawn"):
        with pytest.raises(UnappliableEventError, match="unknown record"):
            fold([*home.events, home.answer(event_type, uuid4())])


# --- held beds ------------------------------------------------------------------------------------


def test_an_offer_holds_its_beds_which_are_no_longer_offered() -> None:
    home = Home(vacancy_beds=3)
    request_id = uuid4()

    figures = home.figures(home.answer("PlacementOffered", request_id, beds=2))

    assert figures == _expected(offered=1, held=2)


def test_a_decline_holds_nothing() -> None:
    home = Home(vacancy_beds=3)

    figures = home.figures(home.answer("PlacementDeclined", uuid4()))

    assert figures == _expected(offered=3, held=0)


@pytest.mark.parametrize("release", ["OfferExpired", "OfferWithdrawn", "PlacementDeclined"])
def test_an_offer_that_expires_is_withdrawn_or_declined_releases_its_beds(release: str) -> None:
    home = Home(vacancy_beds=3)
    request_id = uuid4()
    offered = home.answer("PlacementOffered", request_id, beds=2)

    figures = home.figures(offered, home.answer(release, request_id))

    assert figures == _expected(offered=3, held=0)


def test_a_placement_from_the_offer_takes_the_held_beds_whichever_the_ledger_sees_first() -> None:
    home = Home(vacancy_beds=3)
    request_id = uuid4()
    offered = home.answer("PlacementOffered", request_id, beds=2)
    placed = home.placement(request_id, beds=2)
    other = home.placement(None)  # a placement with no request takes no hold

    in_order = home.figures(offered, placed, other)
    placement_first = home.figures(placed, other, offered)

    # The held beds leave the vacancy for good: of its 3 beds, 1 is still offered.
    assert in_order == placement_first == _expected(occupied=3, vacant=1, offered=1, held=0)


def test_a_placement_from_an_offer_takes_its_beds_out_of_the_vacancy_for_good() -> None:
    home = Home(vacancy_beds=2)
    request_id = uuid4()
    offered = home.answer("PlacementOffered", request_id, beds=1)
    placed = home.placement(request_id, beds=1)

    figures = home.figures(offered, placed)

    # The provider shrinks the vacancy to 1 bed with no event: the ledger takes the placed bed
    # out of it, so occupied + held + offered never counts it twice.
    assert figures == _expected(occupied=1, vacant=3, offered=1, held=0)
    assert figures.occupied + figures.held + figures.offered <= figures.registered_places
    ended = sample_envelope(
        "PlacementEnded",
        sequence=2,
        aggregate_id=placed.aggregate_id,
        placement_id=str(placed.aggregate_id),
    )
    assert home.figures(offered, placed, ended) == _expected(occupied=0, vacant=4, offered=1)


def test_holds_at_a_closed_home_do_not_count_and_an_over_held_vacancy_offers_none() -> None:
    home = Home(vacancy_beds=1)
    first, second = uuid4(), uuid4()
    holds = (
        home.answer("PlacementOffered", first, beds=1),
        home.answer("PlacementOffered", second, beds=1),
    )

    assert home.figures(*holds) == _expected(offered=0, held=2)
    closed = sample_envelope("SettingClosed", sequence=2, setting_id=str(home.setting_id))
    state = fold([*home.events, *holds, closed])
    assert council_figures(state, AT, STALE_AFTER).figures == {}


def test_an_answer_remembers_when_it_first_came_and_why_it_declined() -> None:
    home = Home()
    request_id = uuid4()

    state = fold(
        [
            *home.events,
            home.answer("PlacementOffered", request_id, beds=1),
            home.answer("OfferWithdrawn", request_id),
            home.answer("PlacementDeclined", request_id, at=AT + timedelta(hours=5)),
        ]
    )

    answer = state.answers[request_id]
    assert answer.first_answered_at == AT
    assert (answer.status, answer.offered_beds) == (AnswerStatus.DECLINED, 1)
    assert answer.decline_reason is DeclineReason.STAFFING


@pytest.mark.parametrize(
    ("record", "table"),
    [(RequestRecord, tables.REQUESTS), (AnswerRecord, tables.ANSWERS)],
)
def test_each_half_of_a_request_is_stored_as_one_column_per_field(
    record: type, table: Table
) -> None:
    assert [f.name for f in fields(record)] == [column.name for column in table.columns]


# --- responses ------------------------------------------------------------------------------------

IFA = PlacementType.FOSTER_CARE_IFA


def _home_at(council: str, district: str, placement_type: PlacementType = HOMES) -> SettingRecord:
    return SettingRecord(
        uuid4(), "acme-care", placement_type, 4, OfstedRating.GOOD, district, council
    )


def _request(
    setting: SettingRecord, *needs: Need, home: str = "LA9", referral_id: UUID | None = None
) -> RequestRecord:
    return RequestRecord(
        uuid4(), referral_id or uuid4(), W_AND_F, uuid4(), setting.setting_id, AT, needs, home
    )


def _answer(
    request: RequestRecord, hours: float, beds: int = 0, reason: DeclineReason | None = None
) -> AnswerRecord:
    return AnswerRecord(
        request.request_id,
        request.vacancy_id,
        request.setting_id,
        request.authority_code,
        AT + timedelta(hours=hours),
        AnswerStatus.OFFERED if beds else AnswerStatus.DECLINED,
        beds,
        reason,
    )


def _placed(
    setting: SettingRecord,
    placing: str,
    request: RequestRecord | None = None,
    referral_id: UUID | None = None,
) -> PlacementRecord:
    return PlacementRecord(
        uuid4(),
        setting.setting_id,
        placing,
        1,
        request_id=None if request is None else request.request_id,
        referral_id=request.referral_id if request is not None else referral_id,
    )


def test_responses_count_requests_answers_and_placements_at_the_footprints_settings() -> None:
    kendal, bootle, windermere = (
        _home_at(W_AND_F, "LA9"),
        _home_at(SEFTON, "L20"),
        _home_at(W_AND_F, "LA23", IFA),
    )
    declined_for_staff = _request(kendal, Need.SEMH, Need.AUTISM)
    offered = _request(kendal, Need.SEMH)
    declined_for_risk = _request(kendal, Need.AUTISM)
    unanswered = _request(kendal, Need.SEMH)
    in_sefton = _request(bootle, Need.SEMH)
    fostering = _request(windermere, Need.SEMH)
    state = ledger_state(
        kendal,
        bootle,
        windermere,
        *(declined_for_staff, offered, declined_for_risk, unanswered, in_sefton, fostering),
        _answer(declined_for_staff, 2, reason=DeclineReason.STAFFING),
        _answer(offered, 4, beds=1),
        _answer(declined_for_risk, 1, reason=DeclineReason.MATCHING_RISK),
        _answer(in_sefton, 0.5, reason=DeclineReason.STAFFING),
        _answer(fostering, 3, beds=1),
        _placed(kendal, W_AND_F, offered),
        _placed(kendal, W_AND_F),  # not from a request
    )

    found = footprint_responses(state, frozenset({W_AND_F}))

    homes = found.by_type[HOMES]
    assert (homes.requests, homes.offers, homes.declines, homes.answered) == (4, 1, 2, 3)
    assert homes.declines_by_reason == {
        DeclineReason.MATCHING_RISK: 1,
        DeclineReason.STAFFING: 1,
    }
    # Needs of the two declined requests: (semh, autism) and (autism).
    assert homes.declines_by_need == {Need.AUTISM: 2, Need.SEMH: 1}
    assert homes.median_hours_to_first_answer == 2.0  # of 2, 4 and 1 hours
    assert (homes.placements_from_requests, homes.requests_per_placement) == (1, 4.0)
    ifa = found.by_type[IFA]
    assert (ifa.requests, ifa.offers, ifa.median_hours_to_first_answer) == (1, 1, 3.0)
    assert ifa.requests_per_placement is None, "no placement from a request yet"
    totals = found.totals
    assert (totals.requests, totals.offers, totals.declines, totals.answered) == (5, 2, 2, 4)
    assert totals.median_hours_to_first_answer == 2.5  # of 1, 2, 3 and 4 hours
    assert totals.requests_per_placement == 5.0
    assert found.by_type[PlacementType.SHORT_BREAKS] == Responses()


# --- sufficiency ----------------------------------------------------------------------------------


def test_sufficiency_shares_with_distances_worked_out_by_hand() -> None:
    # LA9 (Kendal) to LA23 (Windermere) 7.5 miles; LA9 to LA14 (Barrow) 24.3; LA9 to L20 61.1.
    kendal, barrow, bootle = (
        _home_at(W_AND_F, "LA9"),
        _home_at(W_AND_F, "LA14"),
        _home_at(SEFTON, "L20"),
    )
    from_windermere = _request(kendal, home="LA23")
    from_kendal_referral = uuid4()
    from_kendal = _request(barrow, home="LA9", referral_id=from_kendal_referral)
    from_kendal_too = _request(bootle, home="LA9")
    from_bootle = _request(kendal, home="L20")
    placements = (
        _placed(kendal, W_AND_F, from_windermere),  # 7.5 mi, inside W&F
        # Its own request is not named: the home comes from its referral's request. 24.3 mi.
        _placed(barrow, W_AND_F, referral_id=from_kendal_referral),
        _placed(bootle, W_AND_F, from_kendal_too),  # 61.1 mi, outside W&F
        _placed(kendal, SEFTON, from_bootle),  # 61.1 mi, outside Sefton
        _placed(kendal, W_AND_F, referral_id=uuid4()),  # no request known: home unknown
        _placed(kendal, W_AND_F),  # not from a referral: not counted
    )
    state = ledger_state(
        kendal,
        barrow,
        bootle,
        from_windermere,
        from_kendal,
        from_kendal_too,
        from_bootle,
        *placements,
    )

    by_setting = footprint_sufficiency(state, frozenset({W_AND_F}), CountedBy.SETTING)
    by_placing = footprint_sufficiency(state, frozenset({W_AND_F}), CountedBy.PLACING_COUNCIL)
    in_sefton = footprint_sufficiency(state, frozenset({SEFTON}), CountedBy.SETTING)

    # In W&F's homes: Windermere's, Kendal's in Barrow, Bootle's in Kendal, the unknown home.
    assert by_setting.by_type[HOMES] == Sufficiency(
        placements=4, home_known=3, within_20_miles=1, inside_placing_council=3
    )
    assert by_setting.totals.share_within_20_miles == pytest.approx(1 / 3)
    assert by_setting.totals.share_inside_placing_council == 0.75
    # Placed by W&F: Windermere's, Kendal's in Barrow and in Bootle, the unknown home.
    assert by_placing.totals == Sufficiency(
        placements=4, home_known=3, within_20_miles=1, inside_placing_council=3
    )
    assert in_sefton.totals == Sufficiency(
        placements=1, home_known=1, within_20_miles=0, inside_placing_council=0
    )
    assert in_sefton.totals.share_inside_placing_council == 0.0
    assert footprint_sufficiency(LedgerState(), frozenset({SEFTON}), CountedBy.SETTING).totals == (
        Sufficiency()
    )
    assert Sufficiency().share_within_20_miles is None
