"""The candidate index's own representation gives the answers of the rules it stands for.

The index files records by district with the districts within 20 miles of each worked out once,
checks rule 1 as bits (`required_bits`, `missing_bits`) and a few integer comparisons, and builds
fits without the dataclass's __init__ (`fit_of`). Each is held here to the plain rule it replaces;
test_alerting_matching.py holds the index as a whole to checking everyone.
"""

from dataclasses import FrozenInstanceError, replace
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import geography
from contracts.enums import RATING_RANK, Need, OfstedRating, PlacementType, SearchScope, Sex
from services.alerting import reach
from services.alerting.candidate_index import CandidateIndex
from services.alerting.matching import (
    Fit,
    OpenReferral,
    OpenVacancy,
    brute_force_referrals_fitting,
    brute_force_vacancies_fitting,
    fit_in_reach,
    fit_of,
    meets_rule_1,
    missing_bits,
    required_bits,
)

LONDON = "E12000007"
SOUTHWARK = "E09000028"
SOUTH_EAST = "E12000008"
NEEDED_BY = date(2026, 12, 1)
ALL_DISTRICTS = tuple(place.code for place in geography.districts())
# London and the South East: hundreds of districts, many within 20 miles of each other, where a
# match has the most candidates in reach, in and out of the setting's council and region.
DENSE = tuple(
    place.code for place in geography.districts() if place.region_code in {LONDON, SOUTH_EAST}
)
COUNCILS_THERE = tuple(
    council.code
    for region in (LONDON, SOUTH_EAST)
    for council in geography.councils_in_region(region)
)

TYPES = (PlacementType.CHILDRENS_HOME, PlacementType.FOSTER_CARE_IFA)
GRADES = st.sampled_from([rating for rating in OfstedRating if rating in RATING_RANK])
DAYS = st.integers(-2, 2).map(lambda days: NEEDED_BY + timedelta(days))


@st.composite
def referrals(draw: st.DrawFn, places: tuple[str, ...] = DENSE) -> OpenReferral:
    home = draw(st.sampled_from(places))
    council = draw(
        st.one_of(st.just(geography.district(home).authority_code), st.sampled_from(COUNCILS_THERE))
    )
    return OpenReferral(
        referral_id=UUID(int=draw(st.integers(1, 10**6))),
        authority_code=council,
        region_code=geography.council(council).region_code,
        home_postcode_district=home,
        age=draw(st.integers(0, 17)),
        sex=draw(st.sampled_from(Sex)),
        needs=draw(st.frozensets(st.sampled_from(Need), max_size=3)),
        sibling_group_size=draw(st.integers(1, 3)),
        placement_types=draw(st.frozensets(st.sampled_from(TYPES), min_size=1)),
        needed_by=draw(DAYS),
        min_ofsted_rating=draw(GRADES),
        accept_not_yet_inspected=draw(st.booleans()),
        search_scope=draw(st.sampled_from(SearchScope)),
    )


@st.composite
def vacancies(draw: st.DrawFn, places: tuple[str, ...] = DENSE) -> OpenVacancy:
    district = draw(st.sampled_from(places))
    council = draw(
        st.one_of(
            st.just(geography.district(district).authority_code), st.sampled_from(COUNCILS_THERE)
        )
    )
    age_min = draw(st.integers(0, 17))
    return OpenVacancy(
        vacancy_id=UUID(int=10**7 + draw(st.integers(1, 10**6))),
        setting_id=UUID(int=draw(st.integers(1, 10**6))),
        authority_code=council,
        region_code=geography.council(council).region_code,
        postcode_district=district,
        placement_type=draw(st.sampled_from(TYPES)),
        ofsted_rating=draw(st.sampled_from(OfstedRating)),
        age_min=age_min,
        age_max=draw(st.integers(age_min, 17)),
        sexes_accepted=draw(st.frozensets(st.sampled_from(Sex))),
        needs_met=draw(st.frozensets(st.sampled_from(Need))),
        beds=draw(st.integers(1, 3)),
        available_from=draw(DAYS),
        setting_has_other_children=draw(st.booleans()),
    )


def _meets_rule_1_as_the_index_checks(referral: OpenReferral, vacancy: OpenVacancy) -> bool:
    return (
        not required_bits(referral) & missing_bits(vacancy)
        and vacancy.age_min <= referral.age <= vacancy.age_max
        and referral.sibling_group_size <= vacancy.beds
        and vacancy.available_from <= referral.needed_by
        and vacancy.placement_type in referral.placement_types
    )


@settings(max_examples=500)
@given(referral=referrals(), vacancy=vacancies())
def test_rule_1_as_bits_is_rule_1(referral: OpenReferral, vacancy: OpenVacancy):
    assert _meets_rule_1_as_the_index_checks(referral, vacancy) == meets_rule_1(referral, vacancy)


@given(referral=referrals(), vacancy=vacancies(), data=st.data())
def test_each_part_of_rule_1_as_bits_decides_alone(
    referral: OpenReferral, vacancy: OpenVacancy, data: st.DataObject
):
    """A pair made to fit every part, then broken in one part the bits hold, is refused by the
    bits alone."""
    fitting = replace(
        vacancy,
        age_min=0,
        age_max=17,
        sexes_accepted=frozenset(Sex),
        needs_met=frozenset(Need),
        ofsted_rating=OfstedRating.OUTSTANDING,
        beds=3,
        available_from=referral.needed_by,
        setting_has_other_children=False,
        placement_type=min(referral.placement_types),
    )
    assert not required_bits(referral) & missing_bits(fitting)
    assert _meets_rule_1_as_the_index_checks(referral, fitting)
    broken: dict[str, Any] = data.draw(
        st.sampled_from(
            [
                {"sexes_accepted": frozenset(Sex) - {referral.sex}},
                {"ofsted_rating": OfstedRating.NOT_YET_INSPECTED},
                {"ofsted_rating": OfstedRating.INADEQUATE},
                {"age_min": referral.age + 1},
                {"age_max": referral.age - 1},
                *({"needs_met": frozenset(Need) - {need}} for need in referral.needs),
                *(
                    [{"setting_has_other_children": True}]
                    if Need.SOLO_PLACEMENT in referral.needs
                    else []
                ),
            ]
        )
    )
    vacancy = replace(fitting, **broken)

    refused = bool(required_bits(referral) & missing_bits(vacancy))
    assert refused == (not meets_rule_1(referral, vacancy))
    assert _meets_rule_1_as_the_index_checks(referral, vacancy) == meets_rule_1(referral, vacancy)


@given(referral=referrals(), vacancy=vacancies())
def test_a_fit_built_for_speed_is_the_fit(referral: OpenReferral, vacancy: OpenVacancy):
    fit = fit_in_reach(referral.with_scope(SearchScope.REGIONAL), vacancy)
    if fit is not None:
        assert fit_of(referral, vacancy, fit.distance_miles, local=fit.local) == fit


# --- distances and the districts within 20 miles -------------------------------------------------

PAIRS = st.tuples(st.sampled_from(ALL_DISTRICTS), st.sampled_from(ALL_DISTRICTS))


@settings(max_examples=2_000)
@given(pair=PAIRS)
def test_distances_between_positions_are_the_distances_between_districts(pair: tuple[str, str]):
    first, second = pair
    miles = geography.distance_miles(first, second)
    there, back = geography.position(first), geography.position(second)

    assert geography.miles_apart(there, back) == miles
    assert geography.miles_apart(back, there) == miles


def test_a_position_is_asked_of_a_known_district():
    assert geography.position(" l20 ") == geography.position("L20")
    try:
        geography.position("ZZ99")
    except geography.UnknownDistrictError:
        pass
    else:
        raise AssertionError("an unknown district has no position")


@settings(max_examples=40, deadline=None)
@given(here=st.sampled_from(ALL_DISTRICTS))
def test_the_districts_within_20_miles_are_every_one_of_them(here: str):
    local = reach.local_districts(here)

    within = {
        other: round(miles, 1)
        for other in ALL_DISTRICTS
        if (miles := geography.distance_miles(other, here)) <= geography.LOCAL_RADIUS_MILES
    }
    assert dict(local) == within


# --- the index against checking everyone, where it is densest ------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    population=st.tuples(
        st.lists(referrals(), min_size=1, max_size=60, unique_by=lambda r: r.referral_id),
        st.lists(vacancies(), min_size=1, max_size=30, unique_by=lambda v: v.vacancy_id),
    ),
    queries=st.tuples(st.lists(referrals(), max_size=5), st.lists(vacancies(), max_size=5)),
    # Referrals all in the columns (0), all among the new ones a match checks one by one (64).
    tail_limit=st.sampled_from([0, 64]),
)
def test_the_index_agrees_with_checking_everyone_in_london_and_the_south_east(
    population: tuple[list[OpenReferral], list[OpenVacancy]],
    queries: tuple[list[OpenReferral], list[OpenVacancy]],
    tail_limit: int,
):
    open_referrals, open_vacancies = population
    index = CandidateIndex(tail_limit=tail_limit)
    for referral in open_referrals:
        index.add_referral(referral)
    for vacancy in open_vacancies:
        index.add_vacancy(vacancy)
    new_referrals, new_vacancies = queries

    for vacancy in [*open_vacancies, *new_vacancies]:
        assert index.referrals_fitting(vacancy) == brute_force_referrals_fitting(
            vacancy, open_referrals
        )
        examined = index.candidate_referrals(vacancy)
        assert len(examined) == len({r.referral_id for r in examined})
    for referral in [*open_referrals, *new_referrals]:
        assert index.vacancies_fitting(referral) == brute_force_vacancies_fitting(
            referral, open_vacancies
        )


# A change: a referral opened (or replaced by a new version) or a vacancy posted (likewise), one
# closed or withdrawn (by its place among those filed so far), a vacancy or a referral matched
# against those open then, or every record put into its columns' arrays (as after a load).
CHANGES = st.lists(
    st.one_of(
        st.tuples(st.just("open"), referrals()),
        st.tuples(st.just("post"), vacancies()),
        st.tuples(st.just("close"), st.integers(0, 200)),
        st.tuples(st.just("withdraw"), st.integers(0, 200)),
        st.tuples(st.just("match vacancy"), vacancies()),
        st.tuples(st.just("match referral"), referrals()),
        st.tuples(st.just("settle"), st.none()),
    ),
    min_size=1,
    max_size=80,
)


@settings(max_examples=120, deadline=None)
@given(changes=CHANGES, tail_limit=st.sampled_from([0, 1, 5, 64]))
def test_the_index_agrees_with_checking_everyone_as_records_come_and_go(
    changes: list[tuple[str, Any]], tail_limit: int
):
    """Records wait among the new ones, join the arrays when those are rebuilt, are replaced and
    taken out wherever they are: every match in between finds what checking everyone finds."""
    index = CandidateIndex(tail_limit=tail_limit)
    open_referrals: dict[UUID, OpenReferral] = {}
    open_vacancies: dict[UUID, OpenVacancy] = {}
    filed: list[UUID] = []
    for change, subject in changes:
        if change == "open":
            index.add_referral(subject)
            open_referrals[subject.referral_id] = subject
            filed.append(subject.referral_id)
        elif change == "post":
            index.add_vacancy(subject)
            open_vacancies[subject.vacancy_id] = subject
            filed.append(subject.vacancy_id)
        elif change == "close" and filed:
            referral_id = filed[subject % len(filed)]
            assert index.remove_referral(referral_id) == open_referrals.pop(referral_id, None)
        elif change == "withdraw" and filed:
            vacancy_id = filed[subject % len(filed)]
            assert index.remove_vacancy(vacancy_id) == open_vacancies.pop(vacancy_id, None)
        elif change == "match vacancy":
            found = index.referrals_fitting(subject)
            assert found == brute_force_referrals_fitting(subject, open_referrals.values())
            examined = {referral.referral_id for referral in index.candidate_referrals(subject)}
            assert examined >= {fit.referral_id for fit in found}
        elif change == "match referral":
            found = index.vacancies_fitting(subject)
            assert found == brute_force_vacancies_fitting(subject, open_vacancies.values())
            examined = {vacancy.vacancy_id for vacancy in index.candidate_vacancies(subject)}
            assert examined >= {fit.vacancy_id for fit in found}
        elif change == "settle":
            index.settle()
    assert dict(index.referrals) == open_referrals
    assert dict(index.vacancies) == open_vacancies


def test_a_district_written_otherwise_is_the_same_district():
    home = "L20"
    index = CandidateIndex()
    referral = _always_fitting_referral(
        authority_code="E08000014",
        region_code="E12000002",
        home_postcode_district=" l20",
        min_ofsted_rating=OfstedRating.GOOD,
        accept_not_yet_inspected=False,
    )
    vacancy = OpenVacancy(
        vacancy_id=UUID(int=2),
        setting_id=UUID(int=3),
        authority_code="E10000017",  # Lancashire: local to the child by distance only
        region_code="E12000002",
        postcode_district="wn8",
        placement_type=PlacementType.CHILDRENS_HOME,
        ofsted_rating=OfstedRating.GOOD,
        age_min=8,
        age_max=17,
        sexes_accepted=frozenset(Sex),
        needs_met=frozenset(),
        beds=1,
        available_from=NEEDED_BY,
        setting_has_other_children=False,
    )
    index.add_referral(referral)
    index.add_vacancy(vacancy)

    assert index.referrals_fitting(vacancy) == brute_force_referrals_fitting(vacancy, [referral])
    assert index.vacancies_fitting(replace(referral, home_postcode_district=home)) == (
        brute_force_vacancies_fitting(referral, [vacancy])
    )
    assert [fit.postcode_district for fit in index.vacancies_fitting(referral)] == ["wn8"]


@given(needed_by=st.dates(), available_from=st.dates(), referral=referrals(), vacancy=vacancies())
def test_days_far_from_now_are_compared_as_days(
    needed_by: date, available_from: date, referral: OpenReferral, vacancy: OpenVacancy
):
    """The index keeps the days of this century in its keys; any other day is compared too."""
    referral = replace(referral, needed_by=needed_by, search_scope=SearchScope.REGIONAL)
    vacancy = replace(
        vacancy,
        available_from=available_from,
        postcode_district=referral.home_postcode_district,
        placement_type=min(referral.placement_types),
        age_min=0,
        age_max=17,
        sexes_accepted=frozenset(Sex),
        needs_met=frozenset(Need),
        ofsted_rating=OfstedRating.OUTSTANDING,
        beds=3,
        setting_has_other_children=False,
    )
    index = CandidateIndex()
    index.add_referral(referral)
    index.add_vacancy(vacancy)

    assert index.referrals_fitting(vacancy) == brute_force_referrals_fitting(vacancy, [referral])
    assert index.vacancies_fitting(referral) == brute_force_vacancies_fitting(referral, [vacancy])
    assert bool(index.vacancies_fitting(referral)) == (available_from <= needed_by)


# --- what the index builds for speed is what the rules give -------------------------------------


@given(referral=referrals(), vacancy=vacancies())
def test_a_fit_built_for_speed_is_a_frozen_fit(referral: OpenReferral, vacancy: OpenVacancy):
    fit = fit_in_reach(referral.with_scope(SearchScope.REGIONAL), vacancy)
    if fit is not None:
        built = fit_of(referral, vacancy, fit.distance_miles, local=fit.local)
        assert type(built) is Fit
        assert hash(built) == hash(fit)
        with pytest.raises(FrozenInstanceError):
            built.beds = fit.beds + 1  # type: ignore[misc]
        assert built == fit


EDGE_DAYS = (
    date.min,
    date.min + timedelta(1),
    NEEDED_BY - timedelta(1),
    NEEDED_BY,
    NEEDED_BY + timedelta(1),
    date.max - timedelta(1),
    date.max,
)


@pytest.mark.parametrize("needed_by", EDGE_DAYS)
@pytest.mark.parametrize("available_from", EDGE_DAYS)
def test_days_at_the_edges_of_the_calendar_are_compared_as_days(
    needed_by: date, available_from: date
):
    """The first and last dates, the days beside them, and days beside each other now."""
    referral = _always_fitting_referral(needed_by=needed_by)
    vacancy = _always_fitting_vacancy(referral, available_from=available_from)
    index = CandidateIndex()
    index.add_referral(referral)
    index.add_vacancy(vacancy)

    fit = available_from <= needed_by
    assert bool(index.referrals_fitting(vacancy)) == fit
    assert bool(index.vacancies_fitting(referral)) == fit


def test_referrals_from_districts_at_one_distance_rank_by_id_across_the_districts():
    """Each district gives its fits in id order; two at the same distance are merged by id."""
    setting = "SE1"
    by_distance: dict[float, list[str]] = {}
    for home in ALL_DISTRICTS:
        miles = geography.distance_miles(home, setting)
        if miles <= geography.LOCAL_RADIUS_MILES:
            by_distance.setdefault(round(miles, 1), []).append(home)
    miles, (first, second, *_) = next(
        (miles, homes) for miles, homes in sorted(by_distance.items()) if len(homes) > 1
    )
    nearer = min(by_distance)
    referrals = [
        _always_fitting_referral(referral_id=UUID(int=number), home_postcode_district=home)
        for number, home in enumerate([first, second] * 3 + by_distance[nearer][:1], start=1)
    ]
    vacancy = _always_fitting_vacancy(referrals[0], postcode_district=setting)
    index = CandidateIndex()
    for referral in reversed(referrals):
        index.add_referral(referral)

    found = index.referrals_fitting(vacancy)

    assert found == brute_force_referrals_fitting(vacancy, referrals)
    assert [(fit.distance_miles, fit.referral_id.int) for fit in found] == [
        (nearer, 7),
        *((miles, number) for number in range(1, 7)),
    ]


@pytest.mark.parametrize("tail_limit", [0, 64])
def test_a_home_in_the_council_just_beyond_20_miles_ranks_by_id_with_those_shown_as_as_far(
    tail_limit: int,
):
    """From GU4 in Surrey, SW15 is 19.96 miles and CR3, also in Surrey, 20.02: both are shown as
    20.0 miles, so ids decide between the one found within 20 miles and the one found through
    the setting's council."""
    surrey, wandsworth = "E10000030", "E09000032"
    assert geography.distance_miles("SW15", "GU4") <= geography.LOCAL_RADIUS_MILES
    assert geography.distance_miles("CR3", "GU4") > geography.LOCAL_RADIUS_MILES
    within = _always_fitting_referral(
        referral_id=UUID(int=2), authority_code=wandsworth, home_postcode_district="SW15"
    )
    beyond = _always_fitting_referral(
        referral_id=UUID(int=1),
        authority_code=surrey,
        region_code=SOUTH_EAST,
        home_postcode_district="CR3",
    )
    vacancy = _always_fitting_vacancy(
        within, postcode_district="GU4", authority_code=surrey, region_code=SOUTH_EAST
    )
    index = CandidateIndex(tail_limit=tail_limit)
    index.add_referral(within)
    index.add_referral(beyond)

    found = index.referrals_fitting(vacancy)

    assert found == brute_force_referrals_fitting(vacancy, [within, beyond])
    assert [(fit.referral_id.int, fit.distance_miles, fit.local) for fit in found] == [
        (1, 20.0, True),
        (2, 20.0, True),
    ]


def _always_fitting_referral(**changes: Any) -> OpenReferral:
    referral = OpenReferral(
        referral_id=UUID(int=1),
        authority_code=SOUTHWARK,
        region_code=LONDON,
        home_postcode_district="SE1",
        age=13,
        sex=Sex.FEMALE,
        needs=frozenset(),
        sibling_group_size=1,
        placement_types=frozenset({PlacementType.CHILDRENS_HOME}),
        needed_by=NEEDED_BY,
        min_ofsted_rating=OfstedRating.REQUIRES_IMPROVEMENT,
        accept_not_yet_inspected=True,
        search_scope=SearchScope.LOCAL,
    )
    return replace(referral, **changes)


def _always_fitting_vacancy(referral: OpenReferral, **changes: Any) -> OpenVacancy:
    vacancy = OpenVacancy(
        vacancy_id=UUID(int=10**7),
        setting_id=UUID(int=10**7 + 1),
        authority_code=referral.authority_code,
        region_code=referral.region_code,
        postcode_district=referral.home_postcode_district,
        placement_type=PlacementType.CHILDRENS_HOME,
        ofsted_rating=OfstedRating.OUTSTANDING,
        age_min=0,
        age_max=17,
        sexes_accepted=frozenset(Sex),
        needs_met=frozenset(Need),
        beds=3,
        available_from=NEEDED_BY,
        setting_has_other_children=False,
    )
    return replace(vacancy, **changes)
