"""Matching (docs/domain.md, rules 1 and 2): which open vacancies fit which referrals, in order."""

from dataclasses import replace
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import pytest
from builders import SETTING_ID, VACANCY_ID, sample_payload
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import geography
from contracts.enums import RATING_RANK, Need, OfstedRating, PlacementType, SearchScope, Sex
from contracts.events import ReferralState, SettingState, VacancyPosted
from services.alerting.candidate_index import CandidateIndex
from services.alerting.matching import (
    RULE_NAMES,
    OpenReferral,
    OpenVacancy,
    VacancyOfAnotherSettingError,
    brute_force_referrals_fitting,
    brute_force_vacancies_fitting,
    failed_rules,
    fits,
    rank,
)

SEFTON = "E08000014"
CUMBERLAND = "E06000063"
CHESHIRE_EAST = "E06000049"
NORTH_WEST = "E12000002"
NEEDED_BY = date(2026, 12, 1)

_REFERRAL: dict[str, Any] = {
    "referral_id": UUID(int=1),
    "authority_code": SEFTON,
    "home_postcode_district": "L20",
    "age": 13,
    "sex": Sex.FEMALE,
    "needs": frozenset({Need.SEMH}),
    "sibling_group_size": 1,
    "placement_types": frozenset({PlacementType.CHILDRENS_HOME}),
    "needed_by": NEEDED_BY,
    "min_ofsted_rating": OfstedRating.GOOD,
    "accept_not_yet_inspected": False,
    "search_scope": SearchScope.LOCAL,
}
_VACANCY: dict[str, Any] = {
    "vacancy_id": UUID(int=1001),
    "setting_id": UUID(int=2001),
    "postcode_district": "WN8",  # Lancashire, 11.4 miles from L20
    "placement_type": PlacementType.CHILDRENS_HOME,
    "ofsted_rating": OfstedRating.GOOD,
    "age_min": 8,
    "age_max": 17,
    "sexes_accepted": frozenset({Sex.FEMALE, Sex.MALE}),
    "needs_met": frozenset({Need.SEMH, Need.AUTISM}),
    "beds": 1,
    "available_from": date(2026, 11, 23),
    "setting_has_other_children": False,
}


def a_referral(**changes: Any) -> OpenReferral:
    fields = {**_REFERRAL, **changes}
    fields.setdefault("region_code", geography.council(fields["authority_code"]).region_code)
    return OpenReferral(**fields)


def a_vacancy(**changes: Any) -> OpenVacancy:
    """A vacancy; its council is its district's unless given, and its region is its council's."""
    fields = {**_VACANCY, **changes}
    fields.setdefault(
        "authority_code", geography.district(fields["postcode_district"]).authority_code
    )
    fields.setdefault("region_code", geography.council(fields["authority_code"]).region_code)
    return OpenVacancy(**fields)


def needs(*items: Need) -> frozenset[Need]:
    return frozenset(items)


# --- rule by rule: a fit, and a near miss that breaks exactly that rule ---------------------------

SOLO = needs(Need.SEMH, Need.SOLO_PLACEMENT)
SIBLINGS = needs(Need.SEMH, Need.SIBLING_GROUP)

RULE_CASES: list[tuple[str, dict[str, Any], dict[str, Any], str | None]] = [
    ("the baseline fits", {}, {}, None),
    # needs
    ("every need met", {"needs": needs(Need.SEMH, Need.AUTISM)}, {}, None),
    ("a need not met", {"needs": needs(Need.SEMH, Need.SELF_HARM)}, {}, "needs"),
    ("no needs at all", {"needs": needs()}, {"needs_met": needs()}, None),
    # age
    ("age at the minimum", {"age": 8}, {}, None),
    ("age at the maximum", {"age": 17}, {}, None),
    ("age below the range", {"age": 7}, {}, "age"),
    ("age above the range", {"age": 16}, {"age_max": 15}, "age"),
    # sex
    ("sex accepted", {"sex": Sex.MALE}, {}, None),
    ("sex not accepted", {"sex": Sex.OTHER}, {}, "sex"),
    # placement type
    (
        "one of the placement types wanted",
        {
            "placement_types": frozenset(
                {PlacementType.CHILDRENS_HOME, PlacementType.FOSTER_CARE_IFA}
            )
        },
        {"placement_type": PlacementType.FOSTER_CARE_IFA},
        None,
    ),
    (
        "a placement type not wanted",
        {},
        {"placement_type": PlacementType.SECURE_CHILDRENS_HOME},
        "placement_type",
    ),
    # Ofsted
    ("rated above the minimum", {}, {"ofsted_rating": OfstedRating.OUTSTANDING}, None),
    ("rated below the minimum", {}, {"ofsted_rating": OfstedRating.REQUIRES_IMPROVEMENT}, "ofsted"),
    (
        "rated at a lowered minimum",
        {"min_ofsted_rating": OfstedRating.REQUIRES_IMPROVEMENT},
        {"ofsted_rating": OfstedRating.REQUIRES_IMPROVEMENT},
        None,
    ),
    (
        "inadequate below a lowered minimum",
        {"min_ofsted_rating": OfstedRating.REQUIRES_IMPROVEMENT},
        {"ofsted_rating": OfstedRating.INADEQUATE},
        "ofsted",
    ),
    (
        "not yet inspected, by the referral's choice",
        {"accept_not_yet_inspected": True},
        {"ofsted_rating": OfstedRating.NOT_YET_INSPECTED},
        None,
    ),
    (
        "not yet inspected, by choice, whatever the minimum grade",
        {"accept_not_yet_inspected": True, "min_ofsted_rating": OfstedRating.OUTSTANDING},
        {"ofsted_rating": OfstedRating.NOT_YET_INSPECTED},
        None,
    ),
    (
        "not yet inspected, without that choice",
        {"min_ofsted_rating": OfstedRating.INADEQUATE},
        {"ofsted_rating": OfstedRating.NOT_YET_INSPECTED},
        "ofsted",
    ),
    # date
    ("open on the day needed", {}, {"available_from": NEEDED_BY}, None),
    ("open only after the day needed", {}, {"available_from": NEEDED_BY + timedelta(1)}, "date"),
    # beds for a sibling group
    (
        "enough beds for a sibling group",
        {"sibling_group_size": 3, "needs": SIBLINGS},
        {"beds": 3, "needs_met": SIBLINGS},
        None,
    ),
    (
        "too few beds for a sibling group",
        {"sibling_group_size": 3, "needs": SIBLINGS},
        {"beds": 2, "needs_met": SIBLINGS},
        "beds",
    ),
    (
        "a setting that cannot take a sibling group",
        {"sibling_group_size": 2, "needs": SIBLINGS},
        {"beds": 2},
        "needs",
    ),
    # solo placement
    ("solo, with no other child placed", {"needs": SOLO}, {"needs_met": SOLO}, None),
    (
        "solo, with another child placed",
        {"needs": SOLO},
        {"needs_met": SOLO, "setting_has_other_children": True},
        "solo",
    ),
    (
        "other children, for a child who needs no solo placement",
        {},
        {"setting_has_other_children": True},
        None,
    ),
    # location: local by distance or council, or regional by choice
    ("12 miles away in another council is local", {}, {}, None),
    ("19.9 miles away in another council is local", {}, {"postcode_district": "CH4"}, None),
    (
        "just over 20 miles away in another council is not local",
        {"home_postcode_district": "PR8"},
        {"postcode_district": "FY7"},
        "location",
    ),
    (
        "35 miles away inside the referring council is local",
        {"authority_code": CUMBERLAND, "home_postcode_district": "CA1"},
        {"postcode_district": "CA28"},
        None,
    ),
    ("30 miles away in another council is not local", {}, {"postcode_district": "M2"}, "location"),
    (
        "30 miles away in another council of the region, searching the region",
        {"search_scope": SearchScope.REGIONAL},
        {"postcode_district": "M2"},
        None,
    ),
    (
        "a regional search does not reach another region",
        {
            "authority_code": CHESHIRE_EAST,
            "home_postcode_district": "CW1",
            "search_scope": SearchScope.REGIONAL,
        },
        {"postcode_district": "DE6"},
        "location",
    ),
    (
        "a setting registered with the referring council, in another council's district",
        {"home_postcode_district": "L20"},
        {"postcode_district": "M2", "authority_code": SEFTON},
        None,
    ),
]


@pytest.mark.parametrize(
    ("referral_changes", "vacancy_changes", "broken"),
    [pytest.param(r, v, b, id=name) for name, r, v, b in RULE_CASES],
)
def test_a_vacancy_fits_only_when_every_rule_holds(
    referral_changes: dict[str, Any], vacancy_changes: dict[str, Any], broken: str | None
):
    referral, vacancy = a_referral(**referral_changes), a_vacancy(**vacancy_changes)

    if broken is None:
        assert fits(referral, vacancy) is not None
        assert failed_rules(referral, vacancy) == []
    else:
        assert fits(referral, vacancy) is None
        assert failed_rules(referral, vacancy) == [broken]


def test_every_rule_has_a_near_miss():
    assert {broken for *_, broken in RULE_CASES} - {None} == set(RULE_NAMES)


def test_failed_rules_names_every_rule_broken_in_order():
    referral = a_referral(age=3, sex=Sex.OTHER, sibling_group_size=2)
    vacancy = a_vacancy(postcode_district="DE6", ofsted_rating=OfstedRating.INADEQUATE)

    assert failed_rules(referral, vacancy) == ["age", "sex", "ofsted", "beds", "location"]


def test_a_fit_is_addressed_to_the_referring_council_with_its_rounded_distance():
    referral = a_referral(search_scope=SearchScope.REGIONAL)
    vacancy = a_vacancy(postcode_district="M2")

    fit = fits(referral, vacancy)

    assert fit is not None
    assert fit.authority_code == SEFTON != vacancy.authority_code
    assert fit.distance_miles == round(geography.distance_miles("L20", "M2"), 1) == 30.7
    assert fit.local is False
    assert (fit.referral_id, fit.vacancy_id, fit.setting_id) == (
        referral.referral_id,
        vacancy.vacancy_id,
        vacancy.setting_id,
    )
    assert (fit.placement_type, fit.ofsted_rating, fit.postcode_district, fit.beds) == (
        PlacementType.CHILDRENS_HOME,
        OfstedRating.GOOD,
        "M2",
        1,
    )


def test_a_fit_inside_the_referring_council_is_local_however_far():
    referral = a_referral(authority_code=CUMBERLAND, home_postcode_district="CA1")

    fit = fits(referral, a_vacancy(postcode_district="CA28"))

    assert fit is not None
    assert fit.local is True
    assert fit.distance_miles > 30


# --- ranking ------------------------------------------------------------------------------------


def _ranked_vacancy_ids(referral: OpenReferral, *vacancies: OpenVacancy) -> list[int]:
    return [fit.vacancy_id.int for fit in brute_force_vacancies_fitting(referral, vacancies)]


def test_local_fits_rank_before_non_local_ones_whatever_their_rating():
    referral = a_referral(
        search_scope=SearchScope.REGIONAL, min_ofsted_rating=OfstedRating.REQUIRES_IMPROVEMENT
    )
    far_outstanding = a_vacancy(
        vacancy_id=UUID(int=1), postcode_district="M2", ofsted_rating=OfstedRating.OUTSTANDING
    )
    local_requires_improvement = a_vacancy(
        vacancy_id=UUID(int=2),
        postcode_district="WN8",
        ofsted_rating=OfstedRating.REQUIRES_IMPROVEMENT,
    )

    assert _ranked_vacancy_ids(referral, far_outstanding, local_requires_improvement) == [2, 1]


def test_a_local_fit_far_inside_the_council_ranks_before_a_nearer_regional_one():
    referral = a_referral(
        authority_code=CUMBERLAND, home_postcode_district="CA1", search_scope=SearchScope.REGIONAL
    )
    inside_at_35_miles = a_vacancy(vacancy_id=UUID(int=1), postcode_district="CA28")
    outside_at_27_miles = a_vacancy(vacancy_id=UUID(int=2), postcode_district="CA16")

    ranked = brute_force_vacancies_fitting(referral, [outside_at_27_miles, inside_at_35_miles])

    assert [(f.vacancy_id.int, f.local) for f in ranked] == [(1, True), (2, False)]
    assert ranked[0].distance_miles > ranked[1].distance_miles


def test_nearer_fits_rank_first():
    referral = a_referral()
    at_12_miles = a_vacancy(vacancy_id=UUID(int=1), postcode_district="PR8")
    at_home = a_vacancy(vacancy_id=UUID(int=2), postcode_district="L20")
    at_4_miles = a_vacancy(vacancy_id=UUID(int=3), postcode_district="CH41")

    assert _ranked_vacancy_ids(referral, at_12_miles, at_home, at_4_miles) == [2, 3, 1]


def test_better_rated_fits_rank_first_at_the_same_distance():
    referral = a_referral(accept_not_yet_inspected=True)
    ratings = [OfstedRating.NOT_YET_INSPECTED, OfstedRating.GOOD, OfstedRating.OUTSTANDING]
    vacancies = [
        a_vacancy(vacancy_id=UUID(int=number), ofsted_rating=rating)
        for number, rating in enumerate(ratings, start=1)
    ]

    assert _ranked_vacancy_ids(referral, *vacancies) == [3, 2, 1]


def test_full_ties_rank_by_id_so_the_order_is_the_same_every_time():
    vacancy = a_vacancy()
    referrals = [a_referral(referral_id=UUID(int=number)) for number in (3, 1, 2)]

    ranked = brute_force_referrals_fitting(vacancy, referrals)

    assert [fit.referral_id.int for fit in ranked] == [1, 2, 3]
    assert rank(reversed(ranked)) == ranked


# --- from the events ----------------------------------------------------------------------------


def _setting(**changes: Any) -> SettingState:
    payload = sample_payload("SettingRegistered", **changes)
    assert isinstance(payload, SettingState)
    return payload


def _vacancy_posted(**changes: Any) -> VacancyPosted:
    payload = sample_payload("VacancyPosted", **changes)
    assert isinstance(payload, VacancyPosted)
    return payload


def test_an_open_vacancy_is_the_vacancy_narrowed_by_its_setting():
    setting = _setting()  # LA9, ages 8-17, female and male, semh and autism
    posted = _vacancy_posted(
        age_min=12, age_max=16, sexes_accepted=["female", "other"], needs_met=["semh", "uasc"]
    )

    vacancy = OpenVacancy.from_events(setting, posted, occupied_beds=0)

    assert vacancy == OpenVacancy(
        vacancy_id=VACANCY_ID,
        setting_id=SETTING_ID,
        authority_code="E06000064",
        postcode_district="LA9",
        region_code=NORTH_WEST,
        placement_type=PlacementType.CHILDRENS_HOME,
        ofsted_rating=OfstedRating.GOOD,
        age_min=12,
        age_max=16,
        sexes_accepted=frozenset({Sex.FEMALE}),
        needs_met=needs(Need.SEMH),
        beds=1,
        available_from=date(2026, 11, 23),
        setting_has_other_children=False,
    )


def test_an_open_vacancy_takes_the_settings_terms_where_it_states_none():
    posted = _vacancy_posted(age_min=None, age_max=None)

    vacancy = OpenVacancy.from_events(_setting(), posted, occupied_beds=2)

    assert (vacancy.age_min, vacancy.age_max) == (8, 17)
    assert vacancy.sexes_accepted == {Sex.FEMALE, Sex.MALE}
    assert vacancy.needs_met == {Need.SEMH, Need.AUTISM}
    assert vacancy.setting_has_other_children is True


def test_a_vacancy_cannot_be_narrowed_by_another_setting():
    posted = _vacancy_posted(setting_id=str(UUID(int=99)))

    with pytest.raises(VacancyOfAnotherSettingError):
        OpenVacancy.from_events(_setting(), posted, occupied_beds=0)


def test_an_open_referral_is_in_its_councils_region():
    state = sample_payload("ReferralOpened", search_scope="regional", needs=["semh", "autism"])
    assert isinstance(state, ReferralState)

    referral = OpenReferral.from_event(state)

    assert referral.region_code == NORTH_WEST
    assert referral.needs == {Need.SEMH, Need.AUTISM}
    assert referral.search_scope is SearchScope.REGIONAL
    assert referral.with_scope(SearchScope.LOCAL).search_scope is SearchScope.LOCAL


def test_a_referral_minimum_must_be_a_grade():
    with pytest.raises(ValueError, match="must be a grade"):
        a_referral(min_ofsted_rating=OfstedRating.NOT_YET_INSPECTED)


# --- the index ----------------------------------------------------------------------------------


def test_adding_a_referral_again_replaces_it():
    index = CandidateIndex()
    index.add_referral(a_referral(age=13))
    index.add_referral(a_referral(age=5))

    assert index.referrals_fitting(a_vacancy()) == []
    assert len(index.referrals) == 1


def test_a_vacancy_removed_is_no_longer_matched_and_removing_it_again_does_nothing():
    index = CandidateIndex()
    vacancy = a_vacancy()
    index.add_vacancy(vacancy)
    assert [fit.vacancy_id for fit in index.vacancies_fitting(a_referral())] == [vacancy.vacancy_id]

    assert index.remove_vacancy(vacancy.vacancy_id) == vacancy
    assert index.remove_vacancy(vacancy.vacancy_id) is None
    assert index.vacancies_fitting(a_referral()) == []


def test_a_referral_widened_to_its_region_is_reached_through_its_region():
    index = CandidateIndex()
    referral = a_referral()
    index.add_referral(referral)
    far_vacancy = a_vacancy(postcode_district="M2")
    assert index.referrals_fitting(far_vacancy) == []

    index.add_referral(referral.with_scope(SearchScope.REGIONAL))

    assert [fit.referral_id for fit in index.referrals_fitting(far_vacancy)] == [
        referral.referral_id
    ]


def test_a_vacancy_query_looks_only_at_referrals_in_reach():
    index = CandidateIndex()
    near = a_referral(referral_id=UUID(int=1))
    far_away = a_referral(
        referral_id=UUID(int=2), authority_code="E09000030", home_postcode_district="E1"
    )
    other_type = a_referral(
        referral_id=UUID(int=3), placement_types=frozenset({PlacementType.FOSTER_CARE_IFA})
    )
    for referral in (near, far_away, other_type):
        index.add_referral(referral)

    assert index.candidate_referrals(a_vacancy()) == [near]


# --- the index finds exactly what checking everyone finds ---------------------------------------

# Real districts in six regions: the North West (Merseyside, Lancashire, Greater Manchester,
# Cumbria, Cheshire), the West and East Midlands beside Cheshire, Yorkshire, London, the North East.
DISTRICTS = (
    *("L1", "L20", "L37", "PR8", "PR1", "WN8", "CH41", "CH4", "FY7", "BB1", "LA1", "LA9"),
    *("M2", "M21", "BL1", "BL8", "WA14", "SK1", "OL1", "WA1", "CA1", "CA28", "LA23", "LA14"),
    *("CW1", "CW12", "SK17", "ST1", "ST5", "ST16", "DE6", "DE1", "S1", "S10", "HD1", "HX1"),
    *("LS1", "BD1", "WF1", "YO1", "DN1", "E1", "N1", "SE1", "W2", "NW1", "E17", "CR0"),
    *("HA1", "EN1", "NE1", "DH1", "SR1", "TS1", "DL1", "NE46", "BR1", "KT1", "IG1", "UB1"),
)
TYPES = (PlacementType.CHILDRENS_HOME, PlacementType.FOSTER_CARE_IFA)
NEEDS = (Need.SEMH, Need.AUTISM, Need.SIBLING_GROUP, Need.SOLO_PLACEMENT)
# Strategies are built once: Hypothesis validates each new strategy object, which is slow.
PLACES = st.sampled_from(DISTRICTS)
# Usually the district's own council; now and then another one (a child living outside the
# referring council, a setting registered with the council across a boundary).
OTHER_COUNCILS = st.sampled_from((None, None, None, CUMBERLAND, SEFTON, CHESHIRE_EAST))
AGES = st.integers(0, 17)
YOUNGEST, OLDEST = st.integers(0, 9), st.integers(9, 17)
SEXES = st.sampled_from(Sex)
CHILD_NEEDS = st.frozensets(st.sampled_from(NEEDS), max_size=1)
NEEDS_MET = st.frozensets(st.sampled_from(NEEDS), min_size=2)
TYPES_WANTED = st.frozensets(st.sampled_from(TYPES), min_size=1)
SEXES_ACCEPTED = st.frozensets(SEXES, min_size=2)
GRADES = st.sampled_from([rating for rating in OfstedRating if rating in RATING_RANK])
DAYS = st.integers(0, 3).map(lambda days: NEEDED_BY + timedelta(days))
GROUP_SIZES = st.integers(1, 3)


@st.composite
def open_referrals(draw: st.DrawFn) -> OpenReferral:
    home = draw(PLACES)
    return a_referral(
        authority_code=draw(OTHER_COUNCILS) or geography.district(home).authority_code,
        home_postcode_district=home,
        age=draw(AGES),
        sex=draw(SEXES),
        needs=draw(CHILD_NEEDS),
        sibling_group_size=draw(GROUP_SIZES),
        placement_types=draw(TYPES_WANTED),
        needed_by=draw(DAYS),
        min_ofsted_rating=draw(GRADES),
        accept_not_yet_inspected=draw(st.booleans()),
        search_scope=draw(st.sampled_from(SearchScope)),
    )


@st.composite
def open_vacancies(draw: st.DrawFn) -> OpenVacancy:
    district = draw(PLACES)
    return a_vacancy(
        postcode_district=district,
        authority_code=draw(OTHER_COUNCILS) or geography.district(district).authority_code,
        placement_type=draw(st.sampled_from(TYPES)),
        ofsted_rating=draw(st.sampled_from(OfstedRating)),
        age_min=draw(YOUNGEST),
        age_max=draw(OLDEST),
        sexes_accepted=draw(SEXES_ACCEPTED),
        needs_met=draw(NEEDS_MET),
        beds=draw(GROUP_SIZES),
        available_from=draw(DAYS),
        setting_has_other_children=draw(st.booleans()),
    )


REFERRALS = open_referrals()
VACANCIES = open_vacancies()
POPULATIONS = st.tuples(
    st.lists(REFERRALS, min_size=5, max_size=30), st.lists(VACANCIES, min_size=5, max_size=30)
).map(
    lambda drawn: (
        [replace(r, referral_id=UUID(int=n)) for n, r in enumerate(drawn[0])],
        [
            replace(v, vacancy_id=UUID(int=100_000 + n), setting_id=UUID(int=200_000 + n))
            for n, v in enumerate(drawn[1])
        ],
    )
)


def _assert_index_agrees_with_brute_force(
    index: CandidateIndex,
    referrals: list[OpenReferral],
    vacancies: list[OpenVacancy],
    queries: tuple[list[OpenReferral], list[OpenVacancy]],
) -> None:
    referral_queries, vacancy_queries = queries
    for vacancy in vacancy_queries:
        assert index.referrals_fitting(vacancy) == brute_force_referrals_fitting(vacancy, referrals)
    for referral in referral_queries:
        assert index.vacancies_fitting(referral) == brute_force_vacancies_fitting(
            referral, vacancies
        )


@settings(max_examples=150, deadline=None)
@given(population=POPULATIONS, data=st.data())
def test_the_index_finds_exactly_the_fits_that_checking_everyone_finds(
    population: tuple[list[OpenReferral], list[OpenVacancy]], data: st.DataObject
):
    referrals, vacancies = population
    index = CandidateIndex()
    for referral in referrals:
        index.add_referral(referral)
    for vacancy in vacancies:
        index.add_vacancy(vacancy)
    everyone = (referrals, vacancies)

    _assert_index_agrees_with_brute_force(index, referrals, vacancies, everyone)

    gone_referrals = data.draw(st.sets(st.sampled_from(referrals))) if referrals else set()
    gone_vacancies = data.draw(st.sets(st.sampled_from(vacancies))) if vacancies else set()
    for referral in gone_referrals:
        assert index.remove_referral(referral.referral_id) == referral
    for vacancy in gone_vacancies:
        assert index.remove_vacancy(vacancy.vacancy_id) == vacancy
    widened = [r.with_scope(SearchScope.REGIONAL) for r in referrals if r not in gone_referrals]
    for referral in widened[::2]:
        index.add_referral(referral)  # an update: remove and add again
    still_open = {r.referral_id: r for r in referrals if r not in gone_referrals}
    still_open.update((r.referral_id, r) for r in widened[::2])
    remaining_vacancies = [v for v in vacancies if v not in gone_vacancies]

    _assert_index_agrees_with_brute_force(
        index, list(still_open.values()), remaining_vacancies, everyone
    )


@settings(max_examples=200, deadline=None)
@given(referral=REFERRALS, vacancy=VACANCIES)
def test_a_vacancy_fits_exactly_when_it_breaks_no_rule(referral, vacancy):
    fit = fits(referral, vacancy)

    assert (fit is None) == bool(failed_rules(referral, vacancy))
    if fit is not None:
        assert fits(referral.with_scope(SearchScope.REGIONAL), vacancy) == fit
        assert fit.local == (
            geography.is_local(
                referral.home_postcode_district,
                referral.authority_code,
                vacancy.postcode_district,
                vacancy.authority_code,
            )
        )
