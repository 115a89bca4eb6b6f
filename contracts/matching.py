"""Whether an open vacancy fits an open referral (docs/domain.md, rules 1 and 2), each rule named.

Shared, pure rules over small frozen records: no I/O. A service that must say *why* a vacancy does
not fit a referral (the authority refusing a placement request with 409) asks `failed_rules`; the
names and their order are those of docs/domain.md.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Final, Self
from uuid import UUID

from contracts import geography
from contracts.enums import (
    RATING_RANK,
    Need,
    OfstedRating,
    PlacementType,
    SearchScope,
    Sex,
)
from contracts.events import ReferralDescription, SettingDescription, VacancyTerms


@dataclass(frozen=True, slots=True)
class OfferedBed:
    """A vacancy as matching sees it: its setting's terms narrowed by its own, and its free beds."""

    vacancy_id: UUID
    setting_id: UUID
    authority_code: str  # the setting's council
    postcode_district: str
    placement_type: PlacementType
    ofsted_rating: OfstedRating
    age_min: int
    age_max: int
    sexes_accepted: frozenset[Sex]
    needs_met: frozenset[Need]
    free_beds: int
    available_from: date
    setting_has_other_children: bool

    @classmethod
    def of(  # noqa: PLR0913 - the setting, the vacancy and the facts about the beds
        cls,
        *,
        vacancy_id: UUID,
        setting_id: UUID,
        setting: SettingDescription,
        setting_authority_code: str,
        terms: VacancyTerms,
        beds: int,
        available_from: date,
        occupied_beds: int,
    ) -> Self:
        """The vacancy's terms intersected with its setting's (a vacancy never widens them).

        Its free beds are its own, but never more than the setting's registered places minus the
        beds occupied; any occupied bed means another child lives there (rule 1.8).
        """
        if occupied_beds < 0:
            raise ValueError(f"occupied_beds must not be negative, got {occupied_beds}")
        sexes = frozenset(setting.sexes_accepted)
        needs = frozenset(setting.needs_met)
        if terms.sexes_accepted is not None:
            sexes &= frozenset(terms.sexes_accepted)
        if terms.needs_met is not None:
            needs &= frozenset(terms.needs_met)
        return cls(
            vacancy_id=vacancy_id,
            setting_id=setting_id,
            authority_code=setting_authority_code,
            postcode_district=setting.postcode_district,
            placement_type=setting.placement_type,
            ofsted_rating=setting.ofsted_rating,
            age_min=max(setting.age_min, terms.age_min if terms.age_min is not None else 0),
            age_max=min(setting.age_max, terms.age_max if terms.age_max is not None else 17),
            sexes_accepted=sexes,
            needs_met=needs,
            free_beds=free_beds(beds, setting.registered_places, occupied_beds),
            available_from=available_from,
            setting_has_other_children=occupied_beds > 0,
        )


def free_beds(vacancy_beds: int, registered_places: int, occupied_beds: int) -> int:
    """A vacancy's beds, capped by the places its setting has left (never below 0)."""
    return max(min(vacancy_beds, registered_places - occupied_beds), 0)


@dataclass(frozen=True, slots=True)
class SoughtPlacement:
    """What a referral asks for, and where the child's home is."""

    authority_code: str  # the referring council
    home_postcode_district: str
    age: int
    sex: Sex
    needs: frozenset[Need]
    sibling_group_size: int
    placement_types: frozenset[PlacementType]
    needed_by: date
    min_ofsted_rating: OfstedRating
    accept_not_yet_inspected: bool
    search_scope: SearchScope

    @classmethod
    def of(cls, authority_code: str, referral: ReferralDescription) -> Self:
        return cls(
            authority_code=authority_code,
            home_postcode_district=referral.home_postcode_district,
            age=referral.age,
            sex=referral.sex,
            needs=frozenset(referral.needs),
            sibling_group_size=referral.sibling_group_size,
            placement_types=frozenset(referral.placement_types),
            needed_by=referral.needed_by,
            min_ofsted_rating=referral.min_ofsted_rating,
            accept_not_yet_inspected=referral.accept_not_yet_inspected,
            search_scope=referral.search_scope,
        )


# --- rule 1: what the child needs against what the vacancy offers ---------------------------------


def needs_met(sought: SoughtPlacement, bed: OfferedBed) -> bool:
    return sought.needs <= bed.needs_met


def age_in_range(sought: SoughtPlacement, bed: OfferedBed) -> bool:
    return bed.age_min <= sought.age <= bed.age_max


def sex_accepted(sought: SoughtPlacement, bed: OfferedBed) -> bool:
    return sought.sex in bed.sexes_accepted


def placement_type_wanted(sought: SoughtPlacement, bed: OfferedBed) -> bool:
    return bed.placement_type in sought.placement_types


def rating_accepted(sought: SoughtPlacement, bed: OfferedBed) -> bool:
    rank = RATING_RANK.get(bed.ofsted_rating)
    if rank is None:  # not yet inspected: never "at least" a grade, only the referral's choice
        return sought.accept_not_yet_inspected
    return rank >= RATING_RANK[sought.min_ofsted_rating]


def available_when_needed(sought: SoughtPlacement, bed: OfferedBed) -> bool:
    return bed.available_from <= sought.needed_by


def enough_beds(sought: SoughtPlacement, bed: OfferedBed) -> bool:
    return bed.free_beds >= sought.sibling_group_size


def solo_if_needed(sought: SoughtPlacement, bed: OfferedBed) -> bool:
    return Need.SOLO_PLACEMENT not in sought.needs or not bed.setting_has_other_children


# --- rule 2: where --------------------------------------------------------------------------------


def distance_miles(sought: SoughtPlacement, bed: OfferedBed) -> float:
    """Between the centroids of the child's home district and the setting's."""
    return geography.distance_miles(sought.home_postcode_district, bed.postcode_district)


def is_local(sought: SoughtPlacement, bed: OfferedBed) -> bool:
    """Within 20 miles of home, or inside the referring council."""
    return geography.is_local(
        sought.home_postcode_district,
        sought.authority_code,
        bed.postcode_district,
        bed.authority_code,
    )


def within_reach(sought: SoughtPlacement, bed: OfferedBed) -> bool:
    """Local; or, for a regional search, at a setting in the referring council's region."""
    if is_local(sought, bed):
        return True
    return (
        sought.search_scope is SearchScope.REGIONAL
        and geography.council(bed.authority_code).region_code
        == geography.council(sought.authority_code).region_code
    )


Rule = Callable[[SoughtPlacement, OfferedBed], bool]

RULES: Final[tuple[tuple[str, Rule], ...]] = (
    ("needs", needs_met),
    ("age", age_in_range),
    ("sex", sex_accepted),
    ("placement_type", placement_type_wanted),
    ("ofsted", rating_accepted),
    ("date", available_when_needed),
    ("beds", enough_beds),
    ("solo", solo_if_needed),
    ("location", within_reach),
)
RULE_NAMES: Final[tuple[str, ...]] = tuple(name for name, _ in RULES)


def failed_rules(sought: SoughtPlacement, bed: OfferedBed) -> list[str]:
    """The names of the rules the bed breaks for this referral, in RULE_NAMES order."""
    return [name for name, rule in RULES if not rule(sought, bed)]


def fits(sought: SoughtPlacement, bed: OfferedBed) -> bool:
    return not failed_rules(sought, bed)
