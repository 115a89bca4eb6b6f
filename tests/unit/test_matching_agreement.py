"""The authority's view of a fit and the alerting service's agree (contracts/matching.py).

Both services ask the same rules, but each builds its own records from the events: the authority
an `OfferedBed` and a `SoughtPlacement` (to refuse a placement request that does not fit), alerting
an `OpenVacancy` and an `OpenReferral` (to alert the referring council). On any setting, vacancy,
occupancy and referral, the two must name the same broken rules, and alerting must find a fit
exactly when the authority would accept a request for it.
"""

from typing import Any

from builders import sample_payload
from hypothesis import given
from hypothesis import strategies as st

from contracts import geography
from contracts.enums import RATING_RANK, Need, OfstedRating, PlacementType, SearchScope, Sex
from contracts.events import ReferralState, SettingState, VacancyPosted
from contracts.matching import OfferedBed, SoughtPlacement
from contracts.matching import failed_rules as authority_failed_rules
from contracts.matching import fits as authority_fits
from services.alerting.domain import open_vacancy
from services.alerting.matching import OpenReferral, failed_rules, fits

SEFTON = "E08000014"
CUMBERLAND = "E06000063"
LANCASHIRE = "E10000017"
LEEDS = "E08000035"

# Districts of the North West, near and far from each other, and two across the Pennines.
DISTRICTS = ("L20", "L40", "WN8", "PR1", "LA9", "CA1", "M1", "CW1", "LS1", "BD1")
# Usually the district's own council; now and then another one (across a boundary).
OTHER_COUNCILS = st.sampled_from((None, None, CUMBERLAND, SEFTON, LANCASHIRE, LEEDS))
LAST_DAY = "2026-12-08"
DAYS = st.sampled_from(("2026-11-23", "2026-11-30", "2026-12-01", LAST_DAY))
YOUNGEST, OLDEST = st.integers(0, 9), st.integers(9, 17)
SOME_SEXES = st.lists(st.sampled_from(Sex), min_size=1, unique=True)
SOME_NEEDS = st.lists(st.sampled_from(Need), max_size=4, unique=True)
GRADES = st.sampled_from([rating for rating in OfstedRating if rating in RATING_RANK])
LOWEST_GRADE = min(RATING_RANK, key=RATING_RANK.__getitem__)


def _council(district: str, other: str | None) -> str:
    return other or geography.district(district).authority_code


@st.composite
def settings(draw: st.DrawFn) -> SettingState:
    district = draw(st.sampled_from(DISTRICTS))
    payload = sample_payload(
        "SettingRegistered",
        authority_code=_council(district, draw(OTHER_COUNCILS)),
        postcode_district=district,
        placement_type=draw(st.sampled_from(PlacementType)),
        registered_places=draw(st.integers(1, 4)),
        ofsted_rating=draw(st.sampled_from(OfstedRating)),
        age_min=draw(YOUNGEST),
        age_max=draw(OLDEST),
        sexes_accepted=draw(SOME_SEXES),
        needs_met=draw(SOME_NEEDS),
    )
    assert isinstance(payload, SettingState)
    return payload


@st.composite
def vacancies(draw: st.DrawFn) -> VacancyPosted:
    payload = sample_payload(
        "VacancyPosted",
        beds=draw(st.integers(1, 4)),
        available_from=draw(DAYS),
        age_min=draw(st.one_of(st.none(), YOUNGEST)),
        age_max=draw(st.one_of(st.none(), OLDEST)),
        sexes_accepted=draw(st.one_of(st.none(), SOME_SEXES)),
        needs_met=draw(st.one_of(st.none(), SOME_NEEDS)),
    )
    assert isinstance(payload, VacancyPosted)
    return payload


@st.composite
def referrals(draw: st.DrawFn, near: OfferedBed) -> ReferralState:
    """A referral; half the time for a child the bed could take but for where home is."""
    aim_to_fit = draw(st.booleans())

    def either(likely: st.SearchStrategy[Any], anything: st.SearchStrategy[Any]) -> Any:
        return draw(likely if aim_to_fit else st.one_of(likely, anything))

    home = draw(st.sampled_from(DISTRICTS))
    types = st.lists(st.sampled_from(PlacementType), min_size=1, unique=True)
    ages = range(near.age_min, near.age_max + 1) or range(18)
    return _referral(
        authority_code=_council(home, draw(OTHER_COUNCILS)),
        home_postcode_district=home,
        age=either(st.sampled_from(ages), st.integers(0, 17)),
        sex=either(st.sampled_from(sorted(near.sexes_accepted) or list(Sex)), st.sampled_from(Sex)),
        needs=either(
            st.lists(st.sampled_from(sorted(near.needs_met - {Need.SOLO_PLACEMENT})), unique=True)
            if near.needs_met - {Need.SOLO_PLACEMENT}
            else st.just([]),
            st.lists(st.sampled_from(Need), max_size=2, unique=True),
        ),
        sibling_group_size=either(st.integers(1, max(near.free_beds, 1)), st.integers(1, 3)),
        placement_types=either(types.map(lambda wanted: [*wanted, near.placement_type]), types),
        needed_by=either(st.just(LAST_DAY), DAYS),
        min_ofsted_rating=either(st.just(LOWEST_GRADE), GRADES),
        accept_not_yet_inspected=either(st.just(True), st.booleans()),  # noqa: FBT003
        search_scope=draw(st.sampled_from(SearchScope)),
    )


def _referral(**fields: Any) -> ReferralState:
    payload = sample_payload("ReferralOpened", **fields)
    assert isinstance(payload, ReferralState)
    return payload


def _authoritys_bed(setting: SettingState, vacancy: VacancyPosted, occupied: int) -> OfferedBed:
    return OfferedBed.of(
        vacancy_id=vacancy.vacancy_id,
        setting_id=setting.setting_id,
        setting=setting,
        setting_authority_code=setting.authority_code,
        terms=vacancy,
        beds=vacancy.beds,
        available_from=vacancy.available_from,
        occupied_beds=occupied,
    )


@given(settings(), vacancies(), st.integers(0, 2), st.data())
def test_the_authority_and_alerting_agree_on_every_fit(
    setting: SettingState, vacancy: VacancyPosted, occupied: int, data: st.DataObject
) -> None:
    bed = _authoritys_bed(setting, vacancy, occupied)
    referral = data.draw(referrals(near=bed))
    sought = SoughtPlacement.of(referral.authority_code, referral)
    open_referral = OpenReferral.from_event(referral)
    offer = open_vacancy(setting, vacancy, occupied)

    broken = authority_failed_rules(sought, bed)
    assert failed_rules(open_referral, offer) == broken
    fit = fits(open_referral, offer)
    assert (fit is not None) == authority_fits(sought, bed) == (not broken)
    if fit is not None:
        assert (fit.referral_id, fit.vacancy_id, fit.setting_id) == (
            referral.referral_id,
            vacancy.vacancy_id,
            setting.setting_id,
        )
        assert fit.beds == bed.free_beds
        miles = geography.distance_miles(referral.home_postcode_district, setting.postcode_district)
        assert fit.distance_miles == round(miles, 1)
        assert fit.local == geography.is_local(
            referral.home_postcode_district,
            referral.authority_code,
            setting.postcode_district,
            setting.authority_code,
        )


@given(settings(), vacancies(), st.integers(0, 4))
def test_both_narrow_a_vacancy_by_its_setting_alike(
    setting: SettingState, vacancy: VacancyPosted, occupied: int
) -> None:
    bed = _authoritys_bed(setting, vacancy, occupied)
    offer = open_vacancy(setting, vacancy, occupied)

    assert (offer.age_min, offer.age_max) == (bed.age_min, bed.age_max)
    assert (offer.sexes_accepted, offer.needs_met) == (bed.sexes_accepted, bed.needs_met)
    assert (offer.beds, offer.region_code) == (bed.free_beds, bed.region_code)
    assert offer.setting_has_other_children == bed.setting_has_other_children


def test_the_agreement_is_not_vacuous() -> None:
    """The sample referral fits the sample vacancy for both: the strategies vary from a fit."""
    setting = sample_payload("SettingRegistered", postcode_district="WN8")
    vacancy = sample_payload("VacancyPosted")
    referral = sample_payload("ReferralOpened")
    assert isinstance(setting, SettingState)
    assert isinstance(vacancy, VacancyPosted)
    assert isinstance(referral, ReferralState)
    sought = SoughtPlacement.of(referral.authority_code, referral)

    assert authority_fits(sought, _authoritys_bed(setting, vacancy, 0))
    assert fits(OpenReferral.from_event(referral), open_vacancy(setting, vacancy, 0)) is not None
