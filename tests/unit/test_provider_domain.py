"""The provider's pure rules: capacity arithmetic and what a vacancy may offer at its setting."""

from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.enums import Need, OfstedRating, PlacementType, Sex
from contracts.events import VacancyTerms
from services.platform.errors import ConflictError, ForbiddenError
from services.provider import domain
from services.provider.domain import Capacity
from services.provider.tables import Placement, PlacementStatus, Setting, SettingStatus

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
