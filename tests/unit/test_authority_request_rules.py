"""A placement request's pure rules: sending, accepting, withdrawing, the provider's answers, and
a placement that ends the search."""

from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest
from builders import REFERRAL_DETAILS

from contracts.enums import (
    DeclineReason,
    Need,
    OfstedRating,
    PlacementType,
    ReferralOutcome,
    RequestWithdrawalReason,
    Sex,
)
from contracts.events import (
    OfferExpired,
    PlacementDeclined,
    PlacementOffered,
    ReferralClosed,
    RequestWithdrawn,
)
from services.authority.domain import (
    ReferralDetails,
    WideningPolicy,
    accept_offer,
    close_referral,
    open_referral,
    place_referral,
    record_answer,
    request_placement,
    withdraw_request,
)
from services.authority.tables import (
    PlacementRequest,
    ProviderSetting,
    ProviderVacancy,
    Referral,
    RequestStatus,
)
from services.platform.errors import ConflictError

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SEFTON = "E08000014"


def _referral(**changes: object) -> Referral:
    details = ReferralDetails.model_validate(
        {"reference": "SEF-2026-0042", **REFERRAL_DETAILS, **changes}
    )
    referral, _ = open_referral(
        referral_id=uuid4(),
        authority_code=SEFTON,
        details=details,
        chosen_widen_after=None,
        policy=WideningPolicy(timedelta(hours=4), timedelta(days=5)),
        now=NOW,
    )
    return referral


SETTING = ProviderSetting(
    setting_id=uuid4(),
    provider_id="acme-care",
    placement_type=PlacementType.CHILDRENS_HOME,
    registered_places=3,
    ofsted_rating=OfstedRating.GOOD,
    age_min=10,
    age_max=17,
    sexes_accepted=(Sex.FEMALE, Sex.MALE),
    needs_met=(Need.SEMH,),
    postcode_district="L20",
    authority_code=SEFTON,
    is_open=True,
    name="Seaview House",
)


def _vacancy(**changes: object) -> ProviderVacancy:
    fields = {
        "vacancy_id": uuid4(),
        "setting_id": SETTING.setting_id,
        "provider_id": "acme-care",
        "beds": 1,
        "available_from": date(2026, 11, 23),
        "is_open": True,
        **changes,
    }
    return ProviderVacancy(**fields)


def _request(referral: Referral, **changes: object) -> tuple[Referral, PlacementRequest]:
    referral, request, _ = request_placement(
        referral,
        request_id=uuid4(),
        setting=SETTING,
        vacancy=_vacancy(),
        occupied_beds=0,
        already_requested=False,
        now=NOW,
    )
    return referral, PlacementRequest(**{**request.model_dump(), **changes})


def test_a_fitting_request_is_the_referrals_next_event_and_carries_no_reference():
    referral = _referral()
    vacancy = _vacancy()
    after, request, event = request_placement(
        referral,
        request_id=uuid4(),
        setting=SETTING,
        vacancy=vacancy,
        occupied_beds=0,
        already_requested=False,
        now=NOW,
    )
    assert after.version == referral.version + 1
    assert referral.version == 1  # the loaded referral is left alone
    assert request.status is RequestStatus.REQUESTED
    assert (event.vacancy_id, event.setting_id, event.provider_id) == (
        vacancy.vacancy_id,
        SETTING.setting_id,
        "acme-care",
    )
    assert "reference" not in event.model_dump()


@pytest.mark.parametrize(
    ("referral_changes", "vacancy_changes", "occupied", "already", "reason"),
    [
        ({"needs": ["autism"]}, {}, 0, False, "`needs`"),
        ({}, {"beds": 5}, 3, False, "`beds`"),
        ({}, {"is_open": False}, 0, False, "no longer open"),
        ({}, {}, 0, True, "already has an open request"),
    ],
)
def test_a_request_is_refused_with_the_reason(
    referral_changes, vacancy_changes, occupied, already, reason
):
    with pytest.raises(ConflictError, match=reason):
        request_placement(
            _referral(**referral_changes),
            request_id=uuid4(),
            setting=SETTING,
            vacancy=_vacancy(**vacancy_changes),
            occupied_beds=occupied,
            already_requested=already,
            now=NOW,
        )


def test_a_closed_referral_cannot_be_sent():
    closed, _ = close_referral(_referral(), ReferralOutcome.WITHDRAWN, NOW)
    with pytest.raises(ConflictError, match="closed"):
        _request(closed)


def test_only_a_standing_offer_can_be_accepted():
    referral, requested = _request(_referral())
    with pytest.raises(ConflictError, match="only an offer"):
        accept_offer(referral, requested, NOW)
    expired = PlacementRequest(
        **{
            **requested.model_dump(),
            "status": RequestStatus.OFFERED,
            "offer_expires_at": NOW,
        }
    )
    with pytest.raises(ConflictError, match="expired at"):
        accept_offer(referral, expired, NOW)
    standing = PlacementRequest(
        **{**expired.model_dump(), "offer_expires_at": NOW + timedelta(hours=1)}
    )
    after, accepted, event = accept_offer(referral, standing, NOW)
    assert accepted.status is RequestStatus.ACCEPTED
    assert (after.version, event.request_id) == (referral.version + 1, standing.request_id)


@pytest.mark.parametrize(
    "status",
    [RequestStatus.DECLINED, RequestStatus.EXPIRED, RequestStatus.WITHDRAWN, RequestStatus.PLACED],
)
def test_a_request_no_longer_in_play_cannot_be_withdrawn(status):
    referral, request = _request(_referral(), status=status)
    with pytest.raises(ConflictError, match="still in play"):
        withdraw_request(referral, request, RequestWithdrawalReason.BY_COUNCIL, NOW)


def _answer(kind, request: PlacementRequest, **fields: object):
    return kind(
        setting_id=request.setting_id,
        provider_id=request.provider_id,
        vacancy_id=request.vacancy_id,
        request_id=request.request_id,
        referral_id=request.referral_id,
        authority_code=request.authority_code,
        **fields,
    )


def test_the_providers_answers_move_a_request_and_an_answer_crossing_a_withdrawal_is_ignored():
    _, request = _request(_referral())
    expires = NOW + timedelta(hours=24)
    offered = record_answer(
        request, _answer(PlacementOffered, request, beds=1, expires_at=expires), NOW
    )
    assert offered is not None
    assert (offered.status, offered.offer_expires_at) == (RequestStatus.OFFERED, expires)
    expired = record_answer(offered, _answer(OfferExpired, offered, beds=1), NOW)
    assert expired is not None
    assert expired.status is RequestStatus.EXPIRED
    declined = record_answer(
        request, _answer(PlacementDeclined, request, reason=DeclineReason.STAFFING), NOW
    )
    assert declined is not None
    assert declined.decline_reason is DeclineReason.STAFFING
    withdrawn = PlacementRequest(**{**request.model_dump(), "status": RequestStatus.WITHDRAWN})
    assert (
        record_answer(
            withdrawn, _answer(PlacementOffered, request, beds=1, expires_at=expires), NOW
        )
        is None
    )


def test_a_placement_withdraws_the_other_requests_then_closes_the_referral():
    referral, chosen = _request(_referral(), status=RequestStatus.ACCEPTED)
    referral, other = _request(referral)
    referral, declined = _request(referral, status=RequestStatus.DECLINED)
    placement_id = uuid4()
    after, changed, events = place_referral(
        referral,
        [chosen, other, declined],
        request_id=chosen.request_id,
        placement_id=placement_id,
        now=NOW,
    )
    by_id = {request.request_id: request for request in changed}
    assert by_id[chosen.request_id].status is RequestStatus.PLACED
    assert by_id[chosen.request_id].placement_id == placement_id
    assert by_id[other.request_id].status is RequestStatus.WITHDRAWN
    assert declined.request_id not in by_id
    assert [type(event) for event in events] == [RequestWithdrawn, ReferralClosed]
    assert after.outcome is ReferralOutcome.PLACED
    assert after.version == referral.version + 2
