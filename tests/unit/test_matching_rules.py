"""The shared fit rules (contracts/matching.py): each rule named, in the documented order."""

from dataclasses import fields, replace
from datetime import date
from uuid import uuid4

from hypothesis import given
from hypothesis import strategies as st

from contracts.enums import Need, OfstedRating, PlacementType, SearchScope, Sex
from contracts.events import SettingDescription, VacancyTerms
from contracts.matching import (
    RULE_NAMES,
    OfferedBed,
    SoughtPlacement,
    failed_rules,
    fits,
    free_beds,
)

SEFTON = "E08000014"
WESTMORLAND_AND_FURNESS = "E06000064"
LEEDS = "E08000035"

SOUGHT = SoughtPlacement(
    authority_code=SEFTON,
    home_postcode_district="L20",
    age=13,
    sex=Sex.FEMALE,
    needs=frozenset({Need.SEMH}),
    sibling_group_size=1,
    placement_types=frozenset({PlacementType.CHILDRENS_HOME}),
    needed_by=date(2026, 12, 1),
    min_ofsted_rating=OfstedRating.GOOD,
    accept_not_yet_inspected=False,
    search_scope=SearchScope.LOCAL,
)
BED = OfferedBed(
    vacancy_id=uuid4(),
    setting_id=uuid4(),
    authority_code=SEFTON,
    postcode_district="L20",
    placement_type=PlacementType.CHILDRENS_HOME,
    ofsted_rating=OfstedRating.GOOD,
    age_min=10,
    age_max=17,
    sexes_accepted=frozenset({Sex.FEMALE, Sex.MALE}),
    needs_met=frozenset({Need.SEMH, Need.SOLO_PLACEMENT}),
    free_beds=1,
    available_from=date(2026, 11, 23),
    setting_has_other_children=False,
)
# Far from L20 (Sefton), in another council of the same region.
KENDAL = {"postcode_district": "LA9", "authority_code": WESTMORLAND_AND_FURNESS}


def test_a_bed_that_meets_every_rule_fits():
    assert failed_rules(SOUGHT, BED) == []
    assert fits(SOUGHT, BED)


BREAKING = {
    "needs": (replace(SOUGHT, needs=frozenset({Need.AUTISM})), BED),
    "age": (replace(SOUGHT, age=8), BED),
    "sex": (SOUGHT, replace(BED, sexes_accepted=frozenset({Sex.MALE}))),
    "placement_type": (SOUGHT, replace(BED, placement_type=PlacementType.FOSTER_CARE_IFA)),
    "ofsted": (SOUGHT, replace(BED, ofsted_rating=OfstedRating.REQUIRES_IMPROVEMENT)),
    "date": (SOUGHT, replace(BED, available_from=date(2026, 12, 2))),
    "beds": (replace(SOUGHT, sibling_group_size=2), BED),
    "solo": (
        replace(SOUGHT, needs=frozenset({Need.SOLO_PLACEMENT})),
        replace(BED, setting_has_other_children=True),
    ),
    "location": (SOUGHT, replace(BED, **KENDAL)),
}


def test_each_rule_broken_alone_is_the_only_one_named():
    assert tuple(BREAKING) == RULE_NAMES
    for rule, (sought, bed) in BREAKING.items():
        assert failed_rules(sought, bed) == [rule]


def test_a_regional_search_reaches_the_referring_councils_region_only():
    regional = replace(SOUGHT, search_scope=SearchScope.REGIONAL)
    assert failed_rules(regional, replace(BED, **KENDAL)) == []
    leeds = replace(BED, postcode_district="LS1", authority_code=LEEDS)
    assert failed_rules(regional, leeds) == ["location"]


def test_a_setting_inside_the_referring_council_is_local_however_far():
    assert (
        failed_rules(
            replace(SOUGHT, authority_code=WESTMORLAND_AND_FURNESS), replace(BED, **KENDAL)
        )
        == []
    )


def test_not_yet_inspected_fits_only_a_referral_that_accepts_it():
    new_home = replace(BED, ofsted_rating=OfstedRating.NOT_YET_INSPECTED)
    assert failed_rules(SOUGHT, new_home) == ["ofsted"]
    assert failed_rules(replace(SOUGHT, accept_not_yet_inspected=True), new_home) == []


@given(
    broken=st.sets(st.sampled_from([name for name in RULE_NAMES if name != "location"]), min_size=1)
)
def test_every_broken_rule_is_named_in_the_documented_order(broken):
    sought, bed = SOUGHT, BED
    for rule in broken:
        rule_sought, rule_bed = BREAKING[rule]
        sought = _merge(sought, rule_sought, SOUGHT)
        bed = _merge(bed, rule_bed, BED)
    named = failed_rules(sought, bed)
    assert set(named) >= broken
    assert named == [name for name in RULE_NAMES if name in named]


def _merge(current, changed, base):
    """`current` with every field in which `changed` differs from `base`."""
    changes = {
        name: getattr(changed, name)
        for name in (field.name for field in fields(base))
        if getattr(changed, name) != getattr(base, name)
    }
    if "needs" in changes and current.needs != base.needs:
        changes["needs"] = current.needs | changes["needs"]
    return replace(current, **changes)


@given(beds=st.integers(1, 10), places=st.integers(1, 10), occupied=st.integers(0, 12))
def test_free_beds_never_exceed_the_vacancy_nor_the_places_left(beds, places, occupied):
    free = free_beds(beds, places, occupied)
    assert 0 <= free <= beds
    assert free <= max(places - occupied, 0)
    assert free == beds or free == max(places - occupied, 0)


@given(
    age_min=st.integers(0, 17),
    age_max=st.integers(0, 17),
    sexes=st.sets(st.sampled_from(list(Sex)), min_size=1),
    needs=st.sets(st.sampled_from(list(Need))),
)
def test_a_vacancy_narrows_its_settings_terms_and_never_widens_them(age_min, age_max, sexes, needs):
    setting = SettingDescription(
        placement_type=PlacementType.CHILDRENS_HOME,
        registered_places=3,
        ofsted_rating=OfstedRating.GOOD,
        age_min=10,
        age_max=15,
        sexes_accepted=(Sex.FEMALE,),
        needs_met=(Need.SEMH, Need.AUTISM),
        postcode_district="L20",
    )
    low, high = sorted((age_min, age_max))
    terms = VacancyTerms(
        age_min=low,
        age_max=high,
        sexes_accepted=tuple(sorted(sexes)),
        needs_met=tuple(sorted(needs)),
    )
    bed = OfferedBed.of(
        vacancy_id=uuid4(),
        setting_id=uuid4(),
        setting=setting,
        setting_authority_code=SEFTON,
        terms=terms,
        beds=2,
        available_from=date(2026, 11, 23),
        occupied_beds=2,
    )
    assert bed.age_min >= 10
    assert bed.age_max <= 15
    assert bed.sexes_accepted <= {Sex.FEMALE}
    assert bed.needs_met <= {Need.SEMH, Need.AUTISM}
    assert bed.free_beds == 1
    assert bed.setting_has_other_children
