"""Whether an open vacancy fits an open referral (docs/domain.md, rules 1 and 2), and how fits rank.

Pure functions over small frozen records; no I/O. The rules themselves are the shared ones of
contracts/matching.py (the authority checks a placement request by them too); `CandidateIndex`
(candidate_index.py) uses `fits` to match one new event against only the candidates nearby.
"""

from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from typing import Any, Final, Self
from uuid import UUID

from contracts import geography
from contracts.enums import RATING_RANK, Need, OfstedRating, PlacementType, SearchScope, Sex
from contracts.events import ReferralState, SettingState, VacancyPosted
from contracts.matching import (
    RULE_NAMES,
    NarrowedVacancy,
    SoughtTerms,
    failed_rules,
    meets_rule_1,
    reach,
)

__all__ = [
    "RULE_NAMES",
    "failed_rules",
    "meets_rule_1",
]  # the shared rules, as the alerting service names them


class VacancyOfAnotherSettingError(ValueError):
    """A vacancy narrowed by a setting that is not its own."""


@dataclass(frozen=True, slots=True)
class OpenVacancy(NarrowedVacancy):
    """The effective offer: a vacancy narrowed by its setting, as matching sees it."""

    region_code: str  # the region of the setting's council
    beds: int

    @classmethod
    def from_events(cls, setting: SettingState, vacancy: VacancyPosted, occupied_beds: int) -> Self:
        """The vacancy's own ages, sexes and needs where given, never wider than the setting's.

        `occupied_beds` is the number of beds taken at the setting now; any taken bed means another
        child is placed there, which rules the setting out for a child who needs a solo placement.
        """
        if vacancy.setting_id != setting.setting_id:
            raise VacancyOfAnotherSettingError(
                f"vacancy {vacancy.vacancy_id} belongs to setting {vacancy.setting_id}, "
                f"not {setting.setting_id}"
            )
        return cls.narrowed(
            setting,
            vacancy,
            occupied_beds,
            vacancy_id=vacancy.vacancy_id,
            setting_id=setting.setting_id,
            authority_code=setting.authority_code,
            available_from=vacancy.available_from,
            region_code=geography.council(setting.authority_code).region_code,
            beds=vacancy.beds,
        )


@dataclass(frozen=True, slots=True)
class OpenReferral(SoughtTerms):
    """What matching knows of an open referral: the child's needs and where home is."""

    referral_id: UUID
    region_code: str  # the region of the referring council

    def __post_init__(self) -> None:
        if self.min_ofsted_rating not in RATING_RANK:
            raise ValueError(
                "min_ofsted_rating must be a grade; use accept_not_yet_inspected for new settings"
            )

    @classmethod
    def from_event(cls, state: ReferralState) -> Self:
        return cls.of_referral(
            state.authority_code,
            state,
            referral_id=state.referral_id,
            region_code=geography.council(state.authority_code).region_code,
        )

    def with_scope(self, search_scope: SearchScope) -> Self:
        """The same referral searching `search_scope` (after a ReferralWidened)."""
        return replace(self, search_scope=search_scope)


@dataclass(frozen=True, slots=True)
class Fit:
    """A vacancy that fits a referral: what an alert to the referring council says."""

    referral_id: UUID
    vacancy_id: UUID
    setting_id: UUID
    authority_code: str  # the referring council: the only one an alert about this fit goes to
    distance_miles: float  # between district centroids, rounded to 0.1
    local: bool
    placement_type: PlacementType
    ofsted_rating: OfstedRating
    postcode_district: str
    beds: int


# A frozen dataclass's __init__ sets each field through object.__setattr__, some ten times slower
# than setting a slot, which counts when a vacancy fits thousands of referrals
# (bench/alerting/bench_matching.py). `_OpenFit` has Fit's slots and no __setattr__ of its own: a
# fit is built as one, slot by slot, then made the Fit it is (a class change Python allows between
# classes of the same slots); the Fit is frozen as soon as it is one.
_FIT_FIELDS: Final = (
    "referral_id",
    "vacancy_id",
    "setting_id",
    "authority_code",
    "distance_miles",
    "local",
    "placement_type",
    "ofsted_rating",
    "postcode_district",
    "beds",
)
if tuple(field.name for field in fields(Fit)) != _FIT_FIELDS:
    raise RuntimeError("fits_of_vacancy sets every field of Fit: add the new one to _FIT_FIELDS")


class _OpenFit:
    """A Fit being built: Fit's slots, in Fit's order, and nothing else."""

    __slots__ = _FIT_FIELDS


def fits_of_vacancy(
    vacancy: OpenVacancy,
    referrals: Iterable[OpenReferral],
    distances_miles: Iterable[float],
    *,
    local: bool,
) -> list[Fit]:
    """The fits of the vacancy to referrals found to fit it, each at its distance (rounded to 0.1)
    and all at one reach, in the referrals' order: each the same Fit as `fit_in_reach` makes,
    built without the dataclass's __init__ (see `_OpenFit`)."""
    vacancy_id, setting_id, placement_type, ofsted_rating, postcode_district, beds = (
        vacancy.vacancy_id,
        vacancy.setting_id,
        vacancy.placement_type,
        vacancy.ofsted_rating,
        vacancy.postcode_district,
        vacancy.beds,
    )
    built: list[Fit] = []
    for referral, distance_miles in zip(referrals, distances_miles, strict=True):
        fit: Any = _OpenFit()  # mypy cannot see slots named by a constant, nor the class change
        fit.referral_id = referral.referral_id
        fit.vacancy_id = vacancy_id
        fit.setting_id = setting_id
        fit.authority_code = referral.authority_code
        fit.distance_miles = distance_miles
        fit.local = local
        fit.placement_type = placement_type
        fit.ofsted_rating = ofsted_rating
        fit.postcode_district = postcode_district
        fit.beds = beds
        fit.__class__ = Fit  # the same slots: now a (frozen) Fit
        built.append(fit)
    return built


def fit_of(
    referral: OpenReferral, vacancy: OpenVacancy, distance_miles: float, *, local: bool
) -> Fit:
    """The fit of a pair found to fit at that distance (rounded to 0.1) and reach."""
    return fits_of_vacancy(vacancy, (referral,), (distance_miles,), local=local)[0]


RankKey = tuple[bool, float, int, UUID, UUID]


def rank_key(fit: Fit) -> RankKey:
    """Local first, then nearer, then better rated, then by ids so that the order is total."""
    # The rounded distance, so that two fits shown at the same distance are ordered by rating.
    return (
        not fit.local,
        fit.distance_miles,
        -RATING_RANK.get(fit.ofsted_rating, 0),
        fit.referral_id,
        fit.vacancy_id,
    )


def rank(fits_found: Iterable[Fit]) -> list[Fit]:
    return sorted(fits_found, key=rank_key)


# --- rules 1 and 2, and the regional widening (contracts/matching.py) -----------------------------


def fits(referral: OpenReferral, vacancy: OpenVacancy) -> Fit | None:
    """The fit when the vacancy meets every part of rules 1 and 2 (or the regional widening)."""
    return fit_in_reach(referral, vacancy) if meets_rule_1(referral, vacancy) else None


def fit_in_reach(referral: OpenReferral, vacancy: OpenVacancy) -> Fit | None:
    """The fit of a pair that meets rule 1 (`meets_rule_1`), when it meets rule 2 as well."""
    where = reach(referral, vacancy)
    if where is None:
        return None
    miles, local = where
    return Fit(
        referral_id=referral.referral_id,
        vacancy_id=vacancy.vacancy_id,
        setting_id=vacancy.setting_id,
        authority_code=referral.authority_code,
        distance_miles=round(miles, 1),
        local=local,
        placement_type=vacancy.placement_type,
        ofsted_rating=vacancy.ofsted_rating,
        postcode_district=vacancy.postcode_district,
        beds=vacancy.beds,
    )


# --- rule 1 as bits, for the candidate index --------------------------------------------------

# One bit for each need, each sex, each rating a referral may refuse, a child's need to live
# alone, and each age a child may be. A referral sets the bits of what it needs, its child's sex
# and age and the ratings it refuses; a vacancy the bits of what it does not offer. The two share
# no bit exactly when the needs, sex, rating and solo parts of rule 1 hold and, for a child of an
# age the events allow (`AGES`), the age part: one integer operation instead of five tests.
AGES: Final = range(18)
_NEED_BITS: Final = {need: 1 << number for number, need in enumerate(Need)}
_SEX_BITS: Final = {sex: 1 << (len(Need) + number) for number, sex in enumerate(Sex)}
_RATING_BITS: Final = {
    rating: 1 << (len(Need) + len(Sex) + number) for number, rating in enumerate(OfstedRating)
}
_SOLO_BIT: Final = 1 << (len(Need) + len(Sex) + len(OfstedRating))
_AGE_BITS: Final = {age: _SOLO_BIT << (1 + age) for age in AGES}
RULE_1_BITS: Final = len(Need) + len(Sex) + len(OfstedRating) + 1 + len(AGES)  # how many in all


def required_bits(referral: OpenReferral) -> int:
    """The referral's needs, its child's sex and age, the ratings it refuses, and whether it needs
    a setting with no other child: what `missing_bits` of a vacancy must not share. A child of an
    age outside `AGES` sets no age bit, so that only comparing the ages can refuse it."""
    bits = _SEX_BITS[referral.sex]
    for need in referral.needs:
        bits |= _NEED_BITS[need]
    for rating, bit in _RATING_BITS.items():
        if not _accepts(referral, rating):
            bits |= bit
    if Need.SOLO_PLACEMENT in referral.needs:
        bits |= _SOLO_BIT
    return bits | _AGE_BITS.get(referral.age, 0)


def missing_bits(vacancy: OpenVacancy) -> int:
    """The needs the vacancy does not meet, the sexes and ages it does not accept, its own rating,
    and whether another child lives at its setting: what a referral's `required_bits` must not
    share."""
    bits = _RATING_BITS[vacancy.ofsted_rating]
    for need, bit in _NEED_BITS.items():
        if need not in vacancy.needs_met:
            bits |= bit
    for sex, bit in _SEX_BITS.items():
        if sex not in vacancy.sexes_accepted:
            bits |= bit
    if vacancy.setting_has_other_children:
        bits |= _SOLO_BIT
    for age, bit in _AGE_BITS.items():
        if not vacancy.age_min <= age <= vacancy.age_max:
            bits |= bit
    return bits


def _accepts(referral: OpenReferral, rating: OfstedRating) -> bool:
    """Rule 1's Ofsted part (contracts/matching.py, `rating_accepted`) for a setting so rated."""
    rank = RATING_RANK.get(rating)
    if rank is None:
        return referral.accept_not_yet_inspected
    return rank >= RATING_RANK[referral.min_ofsted_rating]


def brute_force_referrals_fitting(
    vacancy: OpenVacancy, referrals: Iterable[OpenReferral]
) -> list[Fit]:
    """Every referral checked, best first: the reference the index is tested against."""
    return rank(fit for referral in referrals if (fit := fits(referral, vacancy)) is not None)


def brute_force_vacancies_fitting(
    referral: OpenReferral, vacancies: Iterable[OpenVacancy]
) -> list[Fit]:
    """Every vacancy checked, best first: the reference the index is tested against."""
    return rank(fit for vacancy in vacancies if (fit := fits(referral, vacancy)) is not None)
