"""The provider's pure rules for placement requests: receive, offer, decline, expire, release."""

from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest

from contracts.enums import (
    DeclineReason,
    Need,
    OfferWithdrawalReason,
    RequestWithdrawalReason,
    Sex,
    Urgency,
)
from contracts.events import PlacementOffered, PlacementRequested, PlacementTerms
from services.platform.errors import ConflictError, UnappliableEventError
from services.provider import domain
from services.provider.tables import Request, RequestStatus, Vacancy, VacancyStatus

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
# A setting with every place free: only the vacancy's own beds limit an offer.
ROOMY = domain.Capacity(registered_places=4)


def a_vacancy(**changes: object) -> Vacancy:
    fields: dict[str, object] = {
        "vacancy_id": uuid4(),
        "setting_id": uuid4(),
        "provider_id": "acme-care",
        "status": VacancyStatus.OPEN,
        "beds": 2,
        "available_from": date(2026, 12, 1),
        "posted_at": NOW,
        "last_confirmed_at": NOW,
        "version": 1,
    }
    return Vacancy(**{**fields, **changes})  # type: ignore[arg-type]


def requested_for(vacancy: Vacancy, **changes: object) -> PlacementRequested:
    return PlacementRequested.model_validate(
        {
            "referral_id": str(uuid4()),
            "authority_code": "E08000014",
            "request_id": str(uuid4()),
            "vacancy_id": str(vacancy.vacancy_id),
            "setting_id": str(vacancy.setting_id),
            "provider_id": vacancy.provider_id,
            "age": 14,
            "sex": "female",
            "sibling_group_size": 2,
            "needs": ["semh"],
            "home_postcode_district": "L20",
            "needed_by": "2026-12-07",
            "urgency": "planned",
            **changes,
        }
    )


def a_request(vacancy: Vacancy, **changes: object) -> Request:
    received = domain.receive_request(requested_for(vacancy), vacancy, NOW)
    return Request(**{**received.model_dump(), **changes})


def test_a_received_request_keeps_only_the_childs_pseudonymous_profile() -> None:
    vacancy = a_vacancy()

    request = domain.receive_request(requested_for(vacancy), vacancy, NOW)

    assert request.status is RequestStatus.REQUESTED
    assert (request.age, request.sex, request.needs) == (14, Sex.FEMALE, (Need.SEMH,))
    assert (request.urgency, request.requested_at) == (Urgency.PLANNED, NOW)
    assert not {"reference", "name", "date_of_birth"} & set(Request.model_fields)


def test_a_request_for_another_providers_vacancy_or_an_unknown_one_cannot_be_applied() -> None:
    vacancy = a_vacancy()

    with pytest.raises(UnappliableEventError, match="no vacancy"):
        domain.receive_request(requested_for(vacancy), None, NOW)
    with pytest.raises(UnappliableEventError, match="is not at setting"):
        domain.receive_request(requested_for(vacancy, provider_id="other-care"), vacancy, NOW)


def test_an_offer_holds_the_sibling_group_by_default_and_bumps_the_vacancy() -> None:
    vacancy = a_vacancy()
    request = a_request(vacancy)

    offered, bumped, event = _offer(request, vacancy)

    assert (offered.status, offered.offered_beds, offered.offer_expires_at) == (
        RequestStatus.OFFERED,
        2,
        LATER,
    )
    assert (bumped.version, vacancy.version) == (2, 1), "a new vacancy; the loaded one unchanged"
    assert (event.beds, event.expires_at, event.request_id) == (2, LATER, request.request_id)


def test_an_offer_may_not_take_beds_another_offer_holds() -> None:
    vacancy = a_vacancy(beds=2)

    with pytest.raises(ConflictError, match="only 1 of vacancy"):
        _offer(a_request(vacancy), vacancy, beds=2, held_by_others=1)


@pytest.mark.parametrize("status", [s for s in RequestStatus if s is not RequestStatus.REQUESTED])
def test_only_a_request_waiting_for_an_answer_is_offered_or_declined(status) -> None:
    vacancy = a_vacancy()
    request = a_request(vacancy, status=status, offered_beds=1)

    with pytest.raises(ConflictError, match=f"is {status.value}, not requested"):
        domain.decline_request(request, vacancy, DeclineReason.STAFFING, NOW)
    with pytest.raises(ConflictError, match=f"is {status.value}, not requested"):
        _offer(request, vacancy)


def test_an_offer_expires_or_is_released_with_its_beds() -> None:
    vacancy = a_vacancy()
    offered = a_request(vacancy, status=RequestStatus.OFFERED, offered_beds=2)

    expired, _, expiry = domain.expire_offer(offered, vacancy, LATER)
    released, _, release = domain.release_offer(
        offered, vacancy, OfferWithdrawalReason.VACANCY_WITHDRAWN, LATER
    )

    assert (expired.status, expiry.beds) == (RequestStatus.OFFER_EXPIRED, 2)
    assert (released.status, release.beds, release.reason) == (
        RequestStatus.OFFER_WITHDRAWN,
        2,
        OfferWithdrawalReason.VACANCY_WITHDRAWN,
    )


def test_a_withdrawn_request_releases_its_offer_and_a_late_withdrawal_changes_nothing() -> None:
    vacancy = a_vacancy()
    offered = a_request(vacancy, status=RequestStatus.OFFERED, offered_beds=1)
    declined = a_request(vacancy, status=RequestStatus.DECLINED)

    withdrawn, bumped, event = domain.withdraw_request(
        offered, vacancy, RequestWithdrawalReason.REFERRAL_PLACED, LATER
    )
    unchanged = domain.withdraw_request(
        declined, vacancy, RequestWithdrawalReason.REFERRAL_PLACED, LATER
    )

    assert withdrawn.status is RequestStatus.WITHDRAWN
    assert bumped is not None
    assert bumped.version == 2
    assert event is not None
    assert event.reason is OfferWithdrawalReason.REQUEST_WITHDRAWN
    assert unchanged == (declined, None, None)


def test_only_an_open_offer_is_accepted() -> None:
    vacancy = a_vacancy()

    accepted = domain.accept_offer(a_request(vacancy, status=RequestStatus.OFFERED), LATER)

    assert accepted is not None
    assert accepted.status is RequestStatus.ACCEPTED
    assert (
        domain.accept_offer(a_request(vacancy, status=RequestStatus.OFFER_EXPIRED), LATER) is None
    )


def _open_setting(vacancy: Vacancy):
    from test_provider_domain import a_setting  # noqa: PLC0415 - the other module's builder

    return a_setting(setting_id=vacancy.setting_id, provider_id=vacancy.provider_id)


def _offer(
    request: Request,
    vacancy: Vacancy,
    *,
    beds: int | None = None,
    held_by_others: int = 0,
    capacity: domain.Capacity = ROOMY,
) -> tuple[Request, Vacancy, PlacementOffered]:
    """The provider offers `request` a place at `vacancy` of an open setting, for an hour."""
    return domain.offer_placement(
        request,
        vacancy,
        _open_setting(vacancy),
        beds=beds,
        held_by_others=held_by_others,
        capacity=capacity,
        expires_at=LATER,
        weekly_fee_gbp=None,
        now=NOW,
    )


# --- a placement started from an accepted offer --------------------------------------------------


def _accepted(vacancy: Vacancy, beds: int = 2) -> Request:
    return a_request(vacancy, status=RequestStatus.ACCEPTED, offered_beds=beds)


def _place(request: Request, vacancy: Vacancy, **asked: object) -> domain.PlacementFromOffer:
    return domain.start_placement_from_offer(
        uuid4(),
        request,
        _open_setting(vacancy),
        vacancy,
        start_date=date(2026, 12, 1),
        now=LATER,
        **asked,  # type: ignore[arg-type]
    )


def test_a_placement_from_an_accepted_offer_takes_its_held_beds_and_fills_the_vacancy() -> None:
    vacancy = a_vacancy(beds=2)
    request = _accepted(vacancy, beds=2)

    decided = _place(request, vacancy)

    assert (decided.placement.beds, decided.placement.placing_authority_code) == (2, "E08000014")
    assert decided.placement.vacancy_id == vacancy.vacancy_id
    assert (decided.started.request_id, decided.started.referral_id) == (
        request.request_id,
        request.referral_id,
    )
    assert (decided.request.status, decided.request.placement_id) == (
        RequestStatus.PLACED,
        decided.placement.placement_id,
    )
    assert (decided.vacancy.status, decided.vacancy.beds, decided.vacancy.version) == (
        VacancyStatus.WITHDRAWN,
        0,
        2,
    )
    assert decided.filled is not None
    assert decided.filled.reason == "filled"


def test_an_offer_of_fewer_beds_than_its_vacancy_has_placed_leaves_it_open_with_the_rest() -> None:
    vacancy = a_vacancy(beds=2)

    decided = _place(_accepted(vacancy, beds=1), vacancy, beds=1)

    assert decided.filled is None
    assert decided.placement.beds == 1
    assert (decided.vacancy.status, decided.vacancy.beds, decided.vacancy.version) == (
        VacancyStatus.OPEN,
        1,
        1,
    ), "fewer beds is no event: the vacancy's version stays"


@pytest.mark.parametrize("status", [s for s in RequestStatus if s is not RequestStatus.ACCEPTED])
def test_only_an_accepted_offer_is_placed(status) -> None:
    vacancy = a_vacancy()

    with pytest.raises(ConflictError, match=f"is {status.value}, not accepted: it cannot be"):
        _place(a_request(vacancy, status=status, offered_beds=1), vacancy)


@pytest.mark.parametrize(
    ("asked", "problem"),
    [
        ({"placing_authority_code": "E06000064"}, "placing_authority_code: E06000064 is not"),
        ({"setting_id": uuid4()}, "setting_id: .* is not the setting_id of request"),
        ({"vacancy_id": uuid4()}, "vacancy_id: .* is not the vacancy_id of request"),
        ({"beds": 3}, "beds: 3 given but the offer for request .* holds 2: a placement"),
        ({"beds": 1}, "beds: 1 given but the offer for request .* holds 2: a placement"),
    ],
)
def test_a_placement_from_an_offer_is_for_its_council_setting_vacancy_and_held_beds(
    asked, problem
) -> None:
    vacancy = a_vacancy(beds=3)

    with pytest.raises(ConflictError, match=problem):
        _place(_accepted(vacancy), vacancy, **asked)


def test_a_placement_without_a_request_may_not_take_beds_an_offer_holds() -> None:
    terms = PlacementTerms(placing_authority_code="E08000014", start_date=date(2026, 12, 1))
    vacancy = a_vacancy()

    with pytest.raises(ConflictError, match=r"only 0 free .* 2 held by offers"):
        domain.start_placement(
            uuid4(),
            _open_setting(vacancy),
            domain.Capacity(registered_places=3, occupied=1, offered=2, held=2),
            terms,
            vacancy=None,
            now=NOW,
        )


def test_an_offer_may_not_hold_places_a_placement_took() -> None:
    vacancy = a_vacancy(beds=2)

    with pytest.raises(ConflictError, match="only 1 of the setting's places are free"):
        _offer(
            a_request(vacancy),
            vacancy,
            beds=2,
            capacity=domain.Capacity(registered_places=2, occupied=1, offered=2),
        )
