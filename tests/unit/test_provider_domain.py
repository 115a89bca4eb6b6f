"""The provider's pure rules: capacity arithmetic and what a vacancy may offer at its setting."""

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts.enums import (
    Need,
    OfstedRating,
    PlacementEndReason,
    PlacementType,
    Sex,
    WithdrawalReason,
)
from contracts.events import (
    PlacementStarted,
    PlacementTerms,
    SettingDescription,
    SettingProfile,
    SettingRegistered,
    SettingUpdated,
    VacancyOffer,
    VacancyPosted,
    VacancyTerms,
)
from services.platform.errors import ConflictError, ForbiddenError
from services.provider import domain
from services.provider.domain import Capacity
from services.provider.tables import (
    Placement,
    PlacementStatus,
    Setting,
    SettingStatus,
    Vacancy,
    VacancyStatus,
)

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def a_setting(**changes: object) -> Setting:
    fields: dict[str, object] = {
        "setting_id": uuid4(),
        "provider_id": "acme-care",
        "status": SettingStatus.OPEN,
        "placement_type": PlacementType.CHILDRENS_HOME,
        "registered_places": 4,
        "ofsted_rating": OfstedRating.GOOD,
        "age_min": 8,
        "age_max": 17,
        "sexes_accepted": (Sex.FEMALE, Sex.MALE),
        "needs_met": (Need.AUTISM, Need.SEMH),
        "postcode_district": "LA9",
        "authority_code": "E06000064",
        "closed_on": None,
        "version": 1,
        "registered_at": NOW,
        "updated_at": NOW,
    }
    return Setting(**{**fields, **changes})  # type: ignore[arg-type]


def a_placement(**changes: object) -> Placement:
    fields: dict[str, object] = {
        "placement_id": uuid4(),
        "setting_id": uuid4(),
        "provider_id": "acme-care",
        "status": PlacementStatus.ACTIVE,
        "placing_authority_code": "E08000014",
        "start_date": date(2026, 11, 24),
        "beds": 1,
        "vacancy_id": None,
        "end_date": None,
        "end_reason": None,
        "version": 1,
        "recorded_at": NOW,
        "ended_at": None,
    }
    return Placement(**{**fields, **changes})  # type: ignore[arg-type]


def test_vacant_places_are_registered_places_less_those_occupied() -> None:
    assert Capacity(registered_places=4, occupied=1, offered=2).vacant == 3
    assert Capacity(registered_places=4, occupied=1, offered=2).room_for_vacancies == 1


def test_vacant_places_are_never_negative_when_placements_exceed_a_reduced_registration() -> None:
    assert Capacity(registered_places=2, occupied=3, offered=0).vacant == 0
    assert Capacity(registered_places=2, occupied=1, offered=5).room_for_vacancies == 0


def test_a_vacancy_may_offer_exactly_the_room_left() -> None:
    domain.check_room_for_vacancy(2, Capacity(registered_places=4, occupied=1, offered=1))


def test_a_vacancy_offering_more_than_the_room_left_names_the_arithmetic() -> None:
    with pytest.raises(ConflictError) as refused:
        domain.check_room_for_vacancy(3, Capacity(registered_places=4, occupied=1, offered=1))
    assert str(refused.value) == (
        "beds: 3 offered but only 2 free to offer (4 registered places, 1 occupied, "
        "1 already offered by open vacancies)"
    )


def test_a_placement_ignores_open_offers_and_needs_only_vacant_places() -> None:
    domain.check_room_for_placement(3, Capacity(registered_places=4, occupied=1, offered=3))
    with pytest.raises(ConflictError, match="beds: 4 needed but only 3 free"):
        domain.check_room_for_placement(4, Capacity(registered_places=4, occupied=1, offered=0))


def test_registered_places_may_not_fall_below_the_beds_occupied() -> None:
    domain.check_registered_places_cover_occupied(2, Capacity(4, occupied=2))
    with pytest.raises(ConflictError, match="registered_places: 1 is fewer than the 2 beds"):
        domain.check_registered_places_cover_occupied(1, Capacity(4, occupied=2))


def test_a_vacancy_without_terms_takes_its_settings_own() -> None:
    assert domain.vacancy_mismatches(VacancyTerms(), a_setting()) == []


def test_a_vacancy_may_narrow_ages_sexes_and_needs() -> None:
    narrower = VacancyTerms(
        age_min=12, age_max=16, sexes_accepted=(Sex.FEMALE,), needs_met=(Need.SEMH,)
    )
    domain.check_vacancy_fits_setting(narrower, a_setting())


@pytest.mark.parametrize(
    ("terms", "reason"),
    [
        (VacancyTerms(age_min=5), "age range 5-17 is outside the setting's 8-17"),
        (VacancyTerms(age_max=7), "age range 8-7 is inverted"),
        (VacancyTerms(sexes_accepted=(Sex.OTHER,)), "sexes_accepted other not accepted"),
        (
            VacancyTerms(needs_met=(Need.SEMH, Need.UASC, Need.CSE_RISK)),
            "needs_met cse_risk, uasc not met by the setting",
        ),
    ],
)
def test_a_vacancy_may_not_widen_its_settings_terms(terms: VacancyTerms, reason: str) -> None:
    with pytest.raises(ConflictError, match=reason):
        domain.check_vacancy_fits_setting(terms, a_setting())


def test_every_mismatch_is_named_at_once() -> None:
    # An age no child has: built without the contract's validation, to test the rule alone.
    terms = VacancyTerms.model_construct(
        age_max=18, sexes_accepted=(Sex.OTHER,), needs_met=(Need.UASC,)
    )
    assert len(domain.vacancy_mismatches(terms, a_setting())) == 3


def test_a_closed_setting_is_a_conflict() -> None:
    domain.check_setting_open(a_setting())
    with pytest.raises(ConflictError, match="is closed"):
        domain.check_setting_open(a_setting(status=SettingStatus.CLOSED))


def test_another_providers_record_is_forbidden() -> None:
    domain.check_owned_by("acme-care", "acme-care", "setting")
    with pytest.raises(ForbiddenError, match="another provider"):
        domain.check_owned_by("acme-care", "other-care", "setting")


def test_a_placement_may_end_on_its_start_date_but_not_before() -> None:
    placement = a_placement(start_date=date(2026, 11, 24))
    domain.check_end_date(placement, date(2026, 11, 24))
    with pytest.raises(ConflictError, match="end_date 2026-11-23 is before"):
        domain.check_end_date(placement, date(2026, 11, 23))


def test_a_vacancy_expires_its_freshness_window_after_its_last_confirmation() -> None:
    assert domain.vacancy_expires_at(NOW, timedelta(days=14)) == NOW + timedelta(days=14)


def test_a_settings_default_council_is_that_of_its_postcode_district() -> None:
    assert domain.council_of_district("LA9") == "E06000064"
    assert domain.council_of_district("PR8") == "E08000014"


def _post_in_turn(capacity: Capacity, requests: list[int]) -> list[int]:
    """Post each request at one setting, as the service does, keeping those the rule accepts."""
    accepted: list[int] = []
    for beds in requests:
        try:
            domain.check_room_for_vacancy(beds, capacity)
        except ConflictError:
            continue
        accepted.append(beds)
        capacity = Capacity(capacity.registered_places, capacity.occupied, capacity.offered + beds)
    return accepted


@given(
    registered=st.integers(min_value=1, max_value=20),
    occupied=st.integers(min_value=0, max_value=25),
    requests=st.lists(st.integers(min_value=1, max_value=6), max_size=15),
)
def test_accepted_vacancies_never_offer_more_beds_than_free_places(
    registered: int, occupied: int, requests: list[int]
) -> None:
    accepted = _post_in_turn(Capacity(registered, occupied), requests)

    assert sum(accepted) <= max(registered - occupied, 0)


@given(
    registered=st.integers(min_value=1, max_value=20),
    occupied=st.integers(min_value=0, max_value=20),
    requests=st.lists(st.integers(min_value=1, max_value=6), max_size=15),
)
def test_a_request_is_refused_only_when_it_would_not_fit(
    registered: int, occupied: int, requests: list[int]
) -> None:
    capacity = Capacity(registered, occupied)
    offered = 0
    for beds in requests:
        fits = offered + beds <= max(registered - occupied, 0)
        try:
            domain.check_room_for_vacancy(beds, Capacity(registered, occupied, offered))
        except ConflictError:
            assert not fits
        else:
            assert fits
            offered += beds
    assert offered <= capacity.vacant


ages = st.integers(min_value=0, max_value=17)
Terms = tuple[list[int], set[Sex], set[Need]]
terms = st.tuples(
    st.tuples(ages, ages).map(sorted),
    st.sets(st.sampled_from(Sex), min_size=1),
    st.sets(st.sampled_from(Need)),
)


@given(setting_terms=terms, vacancy_terms=terms)
def test_a_vacancy_fits_exactly_when_its_terms_are_within_the_settings(
    setting_terms: Terms, vacancy_terms: Terms
) -> None:
    (setting_min, setting_max), setting_sexes, setting_needs = setting_terms
    (vacancy_min, vacancy_max), vacancy_sexes, vacancy_needs = vacancy_terms
    setting = a_setting(
        age_min=setting_min,
        age_max=setting_max,
        sexes_accepted=tuple(sorted(setting_sexes)),
        needs_met=tuple(sorted(setting_needs)),
    )
    vacancy = VacancyTerms(
        age_min=vacancy_min,
        age_max=vacancy_max,
        sexes_accepted=tuple(sorted(vacancy_sexes)),
        needs_met=tuple(sorted(vacancy_needs)),
    )
    within = (
        setting_min <= vacancy_min
        and vacancy_max <= setting_max
        and vacancy_sexes <= setting_sexes
        and vacancy_needs <= setting_needs
    )

    assert (domain.vacancy_mismatches(vacancy, setting) == []) is within


# --- commands: each returns a new record and the event that tells of it ---------------------------

LATER = NOW + timedelta(hours=3)


def a_vacancy(setting: Setting, **changes: object) -> Vacancy:
    fields: dict[str, object] = {
        "vacancy_id": uuid4(),
        "setting_id": setting.setting_id,
        "provider_id": setting.provider_id,
        "status": VacancyStatus.OPEN,
        "beds": 1,
        "available_from": date(2026, 12, 1),
        "posted_at": NOW,
        "last_confirmed_at": NOW,
        "version": 1,
    }
    return Vacancy(**{**fields, **changes})  # type: ignore[arg-type]  # each value as the field's


def _description(**changes: object) -> SettingDescription:
    fields: dict[str, object] = {
        "placement_type": PlacementType.CHILDRENS_HOME,
        "registered_places": 4,
        "ofsted_rating": OfstedRating.GOOD,
        "age_min": 8,
        "age_max": 17,
        "sexes_accepted": (Sex.MALE, Sex.FEMALE),
        "needs_met": (Need.SEMH, Need.AUTISM),
        "postcode_district": "LA9",
    }
    return SettingDescription.model_validate({**fields, **changes})


def test_a_registered_setting_is_open_at_version_1_in_the_council_of_its_district() -> None:
    setting_id = uuid4()

    setting, registered = domain.register_setting(
        setting_id, "acme-care", _description(), None, NOW
    )

    assert (setting.setting_id, setting.status, setting.version) == (
        setting_id,
        SettingStatus.OPEN,
        1,
    )
    assert (setting.registered_at, setting.updated_at, setting.closed_on) == (NOW, NOW, None)
    assert setting.authority_code == "E06000064"
    assert setting.sexes_accepted == (Sex.FEMALE, Sex.MALE), "as the contract sorted them"
    assert registered == SettingRegistered.model_validate(setting, from_attributes=True)


def test_a_setting_registered_with_a_council_keeps_it() -> None:
    # SN6 straddles Oxfordshire (its assigned council), Swindon and Wiltshire.
    setting, registered = domain.register_setting(
        uuid4(), "acme-care", _description(postcode_district="SN6"), "E06000054", NOW
    )

    assert setting.authority_code == registered.authority_code == "E06000054"


def test_an_update_returns_a_new_record_and_leaves_the_loaded_one_as_it_was() -> None:
    setting = a_setting()

    decided = domain.update_setting(setting, {"registered_places": 6}, Capacity(4), LATER)

    assert decided is not None
    updated, event = decided
    assert updated is not setting
    assert (setting.registered_places, setting.version, setting.updated_at) == (4, 1, NOW)
    assert (updated.registered_places, updated.version, updated.updated_at) == (6, 2, LATER)
    assert updated.registered_at == NOW
    assert event == SettingUpdated.model_validate(updated, from_attributes=True)


def test_an_update_that_changes_nothing_decides_nothing() -> None:
    same = {"registered_places": 4, "needs_met": (Need.SEMH, Need.AUTISM)}

    assert domain.update_setting(a_setting(), same, Capacity(4), NOW) is None


def test_moving_a_setting_to_another_district_moves_it_to_that_districts_council() -> None:
    decided = domain.update_setting(a_setting(), {"postcode_district": "PR8"}, Capacity(4), NOW)

    assert decided is not None
    assert decided[0].authority_code == decided[1].authority_code == "E08000014"


def test_an_update_that_inverts_the_ages_names_the_end_it_changed() -> None:
    with pytest.raises(ValidationError) as refused:
        domain.update_setting(a_setting(age_max=12), {"age_min": 14}, Capacity(4), NOW)

    [error] = refused.value.errors()
    assert (error["loc"], error["type"], error["input"]) == (("age_min",), "value_error", 14)
    assert error["msg"] == "age_min (14) must not be greater than age_max (12)"


def test_an_update_may_not_leave_fewer_places_than_children_placed() -> None:
    with pytest.raises(ConflictError, match="registered_places: 1 is fewer than the 2 beds"):
        domain.update_setting(a_setting(), {"registered_places": 1}, Capacity(4, 2), NOW)


def test_a_closed_setting_takes_no_change_vacancy_or_placement() -> None:
    closed, event = domain.close_setting(a_setting(), None, LATER)

    assert (closed.status, closed.closed_on, closed.version) == (
        SettingStatus.CLOSED,
        LATER.date(),
        2,
    )
    assert event.closed_on == LATER.date()
    offer = VacancyOffer(beds=1, available_from=date(2026, 12, 1))
    terms = PlacementTerms(placing_authority_code="E08000014", start_date=date(2026, 12, 1))
    refusals: list[Callable[[], object]] = [
        lambda: domain.close_setting(closed, None, LATER),
        lambda: domain.update_setting(closed, {"registered_places": 6}, Capacity(4), LATER),
        lambda: domain.post_vacancy(uuid4(), closed, Capacity(4), offer, LATER),
        lambda: domain.start_placement(
            uuid4(), closed, Capacity(4), terms, vacancy=None, now=LATER
        ),
    ]
    for refusal in refusals:
        with pytest.raises(ConflictError, match="is closed"):
            refusal()


def test_a_posted_vacancy_is_open_and_its_event_carries_the_offer() -> None:
    setting = a_setting()
    offer = VacancyOffer(
        beds=2, available_from=date(2026, 12, 1), age_min=12, sexes_accepted=(Sex.FEMALE,)
    )

    vacancy, posted = domain.post_vacancy(uuid4(), setting, Capacity(4), offer, NOW)

    assert (vacancy.status, vacancy.version, vacancy.posted_at, vacancy.last_confirmed_at) == (
        VacancyStatus.OPEN,
        1,
        NOW,
        NOW,
    )
    assert (vacancy.setting_id, vacancy.provider_id) == (setting.setting_id, "acme-care")
    assert (vacancy.age_min, vacancy.age_max, vacancy.needs_met) == (12, None, None)
    assert posted == VacancyPosted.model_validate(vacancy, from_attributes=True)
    assert posted.beds == 2


def test_a_vacancy_is_posted_only_within_its_settings_terms_and_room() -> None:
    wider = VacancyOffer(beds=1, available_from=date(2026, 12, 1), age_min=5)
    with pytest.raises(ConflictError, match="outside the setting's 8-17"):
        domain.post_vacancy(uuid4(), a_setting(), Capacity(4), wider, NOW)
    too_many = VacancyOffer(beds=2, available_from=date(2026, 12, 1))
    with pytest.raises(ConflictError, match="beds: 2 offered but only 1 free"):
        domain.post_vacancy(uuid4(), a_setting(), Capacity(4, 2, 1), too_many, NOW)


def test_confirming_a_vacancy_restarts_its_freshness_window() -> None:
    setting = a_setting()
    vacancy = a_vacancy(setting)

    confirmed, event = domain.confirm_vacancy(vacancy, setting, LATER)

    assert (confirmed.last_confirmed_at, confirmed.version) == (LATER, 2)
    assert vacancy.last_confirmed_at == NOW, "the loaded record is left as it was"
    assert (event.vacancy_id, event.confirmed_at) == (vacancy.vacancy_id, LATER)


def test_a_withdrawn_vacancy_ends_and_cannot_be_withdrawn_or_confirmed_again() -> None:
    setting = a_setting()

    withdrawn, event = domain.withdraw(a_vacancy(setting), WithdrawalReason.FILLED, LATER)

    assert (withdrawn.status, withdrawn.withdrawal_reason, withdrawn.ended_at) == (
        VacancyStatus.WITHDRAWN,
        WithdrawalReason.FILLED,
        LATER,
    )
    assert (event.reason, event.setting_id) == (WithdrawalReason.FILLED, setting.setting_id)
    with pytest.raises(ConflictError, match="is withdrawn, not open"):
        domain.withdraw(withdrawn, WithdrawalReason.OTHER, LATER)
    with pytest.raises(ConflictError, match="is withdrawn, not open"):
        domain.confirm_vacancy(withdrawn, setting, LATER)


def test_an_expired_vacancy_tells_when_it_was_last_confirmed() -> None:
    vacancy = a_vacancy(a_setting(), last_confirmed_at=NOW, version=2)

    expired, event = domain.expire(vacancy, LATER)

    assert (expired.status, expired.ended_at, expired.version) == (
        VacancyStatus.EXPIRED,
        LATER,
        3,
    )
    assert event.last_confirmed_at == NOW


def test_a_placement_may_fill_only_an_open_vacancy_at_its_own_setting() -> None:
    setting = a_setting()
    elsewhere = a_vacancy(a_setting())
    withdrawn = a_vacancy(setting, status=VacancyStatus.WITHDRAWN)
    open_here = a_vacancy(setting)

    def start(vacancy: Vacancy) -> tuple[Placement, PlacementStarted]:
        terms = PlacementTerms(
            placing_authority_code="E08000014",
            start_date=date(2026, 12, 1),
            vacancy_id=vacancy.vacancy_id,
        )
        return domain.start_placement(
            uuid4(), setting, Capacity(4), terms, vacancy=vacancy, now=NOW
        )

    with pytest.raises(ConflictError, match="is not a vacancy at setting"):
        start(elsewhere)
    with pytest.raises(ConflictError, match="withdrawn, not open"):
        start(withdrawn)
    placement, started = start(open_here)
    assert (placement.status, placement.vacancy_id, placement.version) == (
        PlacementStatus.ACTIVE,
        open_here.vacancy_id,
        1,
    )
    assert started == PlacementStarted.model_validate(placement, from_attributes=True)


def test_a_placement_needs_its_beds_free_of_other_placements() -> None:
    terms = PlacementTerms(placing_authority_code="E08000014", start_date=date(2026, 12, 1), beds=2)
    with pytest.raises(ConflictError, match="beds: 2 needed but only 1 free"):
        domain.start_placement(uuid4(), a_setting(), Capacity(4, 3), terms, vacancy=None, now=NOW)


def test_an_ended_placement_records_why_and_cannot_end_again() -> None:
    placement = a_placement(beds=2)

    ended, event = domain.end_placement(
        placement, date(2027, 1, 1), PlacementEndReason.ADOPTION, LATER
    )

    assert (ended.status, ended.end_date, ended.end_reason, ended.ended_at, ended.version) == (
        PlacementStatus.ENDED,
        date(2027, 1, 1),
        PlacementEndReason.ADOPTION,
        LATER,
        2,
    )
    assert placement.status is PlacementStatus.ACTIVE, "the loaded record is left as it was"
    assert (event.reason, event.beds, event.end_date) == (
        PlacementEndReason.ADOPTION,
        2,
        date(2027, 1, 1),
    )
    with pytest.raises(ConflictError, match="has already ended"):
        domain.end_placement(ended, date(2027, 1, 2), PlacementEndReason.ADOPTION, LATER)


def test_a_setting_registered_with_its_profile_carries_it_on_the_event() -> None:
    profile = SettingProfile(
        name="Ashdale House",
        ofsted_urn="SC123456",
        referrals_email="referrals@acme-care.example",
        referrals_phone="01539 000 123",
        description="A four-bed home near Kendal.",
    )

    setting, registered = domain.register_setting(
        uuid4(), "acme-care", _description(), None, NOW, profile=profile
    )

    assert setting.name == registered.name == "Ashdale House"
    assert registered.model_dump(include=set(domain.PROFILE_FIELDS)) == profile.model_dump()


@pytest.mark.parametrize("placement_type", list(PlacementType))
def test_only_foster_households_may_register_without_a_profile(placement_type) -> None:
    fostering = {PlacementType.FOSTER_CARE_IN_HOUSE, PlacementType.FOSTER_CARE_IFA}

    assert domain.profile_required(placement_type) is (placement_type not in fostering)
