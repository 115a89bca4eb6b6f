"""Whether an open vacancy fits an open referral (docs/domain.md, rules 1 and 2), and how fits rank.

Pure functions over small frozen records; no I/O. The rules themselves are the shared ones of
contracts/matching.py (the authority checks a placement request by them too); `CandidateIndex`
(candidate_index.py) uses `fits` to match one new event against only the candidates nearby.
"""

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Self
from uuid import UUID

from contracts import geography
from contracts.enums import RATING_RANK, OfstedRating, PlacementType, SearchScope
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
