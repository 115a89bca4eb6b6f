"""Whether an open vacancy fits an open referral (docs/domain.md, rules 1 and 2), each rule named.

Shared, pure rules over small frozen records: no I/O. A service that must say *why* a vacancy does
not fit a referral (the authority refusing a placement request with 409) asks `failed_rules`; the
names and their order are those of docs/domain.md. The rules read any record shaped as a `Sought`
and an `Offered`: the authority's `SoughtPlacement` and `OfferedBed` here, and the alerting
service's own records, whose candidate index asks `meets_rule_1` and `reach` of every candidate.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any, Final, Protocol, Self
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


class Sought(Protocol):
    """What the rules read of a referral: the child, where home is, and what is wanted."""

    @property
    def authority_code(self) -> str: ...  # the referring council
    @property
    def region_code(self) -> str: ...  # the region of the referring council
    @property
    def home_postcode_district(self) -> str: ...
    @property
    def age(self) -> int: ...
    @property
    def sex(self) -> Sex: ...
    @property
    def needs(self) -> frozenset[Need]: ...
    @property
    def sibling_group_size(self) -> int: ...
    @property
    def placement_types(self) -> frozenset[PlacementType]: ...
    @property
    def needed_by(self) -> date: ...
    @property
    def min_ofsted_rating(self) -> OfstedRating: ...
    @property
    def accept_not_yet_inspected(self) -> bool: ...
    @property
    def search_scope(self) -> SearchScope: ...


class Offered(Protocol):
    """What the rules read of a vacancy: its terms narrowed by its setting, and its free beds."""

    @property
    def authority_code(self) -> str: ...  # the setting's council
    @property
    def region_code(self) -> str: ...  # the region of the setting's council
    @property
    def postcode_district(self) -> str: ...
    @property
    def placement_type(self) -> PlacementType: ...
    @property
    def ofsted_rating(self) -> OfstedRating: ...
    @property
    def age_min(self) -> int: ...
    @property
    def age_max(self) -> int: ...
    @property
    def sexes_accepted(self) -> frozenset[Sex]: ...
    @property
    def needs_met(self) -> frozenset[Need]: ...
    @property
    def beds(self) -> int: ...  # free to fill
    @property
    def available_from(self) -> date: ...
    @property
    def setting_has_other_children(self) -> bool: ...


def narrowed_terms(
    setting: SettingDescription, terms: VacancyTerms
) -> tuple[int, int, frozenset[Sex], frozenset[Need]]:
    """The vacancy's ages, sexes and needs where given, intersected with its setting's.

    Intersected, not replaced: a vacancy cannot offer what its setting is not registered for.
    """
    sexes, needs = frozenset(setting.sexes_accepted), frozenset(setting.needs_met)
    if terms.sexes_accepted is not None:
        sexes &= frozenset(terms.sexes_accepted)
    if terms.needs_met is not None:
        needs &= frozenset(terms.needs_met)
    return (
        max(setting.age_min, terms.age_min if terms.age_min is not None else 0),
        min(setting.age_max, terms.age_max if terms.age_max is not None else 17),
        sexes,
        needs,
    )


@dataclass(frozen=True, slots=True)
class NarrowedVacancy:
    """A vacancy narrowed by its setting: what the authority's `OfferedBed` and the alerting
    service's `OpenVacancy` both hold (each adds its free beds, and says its region)."""

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
    available_from: date
    setting_has_other_children: bool

    @classmethod
    def narrowed(
        cls,
        setting: SettingDescription,
        terms: VacancyTerms,
        occupied_beds: int,
        **own: Any,  # noqa: ANN401 - the subclass's fields: ids, council, date and beds
    ) -> Self:
        """The vacancy's terms intersected with its setting's (a vacancy never widens them).

        `occupied_beds` is the number of beds taken at the setting now; any occupied bed means
        another child lives there (rule 1.8).
        """
        if occupied_beds < 0:
            raise ValueError(f"occupied_beds must not be negative, got {occupied_beds}")
        age_min, age_max, sexes, needs = narrowed_terms(setting, terms)
        return cls(
            postcode_district=setting.postcode_district,
            placement_type=setting.placement_type,
            ofsted_rating=setting.ofsted_rating,
            age_min=age_min,
            age_max=age_max,
            sexes_accepted=sexes,
            needs_met=needs,
            setting_has_other_children=occupied_beds > 0,
            **own,
        )


@dataclass(frozen=True, slots=True)
class OfferedBed(NarrowedVacancy):
    """A vacancy as matching sees it: its setting's terms narrowed by its own, and its free beds."""

    free_beds: int

    @property
    def beds(self) -> int:
        return self.free_beds

    @property
    def region_code(self) -> str:
        return geography.council(self.authority_code).region_code

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
        """The vacancy narrowed by its setting (`NarrowedVacancy.narrowed`). Its free beds are its
        own, but never more than the setting's registered places minus the beds occupied."""
        return cls.narrowed(
            setting,
            terms,
            occupied_beds,
            vacancy_id=vacancy_id,
            setting_id=setting_id,
            authority_code=setting_authority_code,
            available_from=available_from,
            free_beds=free_beds(beds, setting.registered_places, occupied_beds),
        )


def free_beds(vacancy_beds: int, registered_places: int, occupied_beds: int) -> int:
    """A vacancy's beds, capped by the places its setting has left (never below 0)."""
    return max(min(vacancy_beds, registered_places - occupied_beds), 0)


@dataclass(frozen=True, slots=True)
class SoughtTerms:
    """What a referral asks for, and where the child's home is: what the authority's
    `SoughtPlacement` and the alerting service's `OpenReferral` both hold."""

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
    def of_referral(
        cls,
        authority_code: str,
        referral: ReferralDescription,
        **own: Any,  # noqa: ANN401 - the subclass's other fields
    ) -> Self:
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
            **own,
        )


@dataclass(frozen=True, slots=True)
class SoughtPlacement(SoughtTerms):
    """What a referral asks for, and where the child's home is."""

    @property
    def region_code(self) -> str:
        return geography.council(self.authority_code).region_code

    @classmethod
    def of(cls, authority_code: str, referral: ReferralDescription) -> Self:
        return cls.of_referral(authority_code, referral)


# --- rule 1: what the child needs against what the vacancy offers ---------------------------------


def needs_met(sought: Sought, bed: Offered) -> bool:
    return sought.needs <= bed.needs_met


def age_in_range(sought: Sought, bed: Offered) -> bool:
    return bed.age_min <= sought.age <= bed.age_max


def sex_accepted(sought: Sought, bed: Offered) -> bool:
    return sought.sex in bed.sexes_accepted


def placement_type_wanted(sought: Sought, bed: Offered) -> bool:
    return bed.placement_type in sought.placement_types


def rating_accepted(sought: Sought, bed: Offered) -> bool:
    rank = RATING_RANK.get(bed.ofsted_rating)
    if rank is None:  # not yet inspected: never "at least" a grade, only the referral's choice
        return sought.accept_not_yet_inspected
    return rank >= RATING_RANK[sought.min_ofsted_rating]


def available_when_needed(sought: Sought, bed: Offered) -> bool:
    return bed.available_from <= sought.needed_by


def enough_beds(sought: Sought, bed: Offered) -> bool:
    return bed.beds >= sought.sibling_group_size


def solo_if_needed(sought: Sought, bed: Offered) -> bool:
    return Need.SOLO_PLACEMENT not in sought.needs or not bed.setting_has_other_children


def meets_rule_1(sought: Sought, bed: Offered) -> bool:
    """Every part of rule 1 at once: what the candidate index asks of each candidate nearby.

    The named rules restated inline, where it costs half as much as calling each of them; the
    tests hold it to `failed_rules`.
    """
    return (
        sought.needs <= bed.needs_met
        and bed.age_min <= sought.age <= bed.age_max
        and sought.sex in bed.sexes_accepted
        and bed.placement_type in sought.placement_types
        and rating_accepted(sought, bed)
        and bed.available_from <= sought.needed_by
        and bed.beds >= sought.sibling_group_size
        and (Need.SOLO_PLACEMENT not in sought.needs or not bed.setting_has_other_children)
    )


# --- rule 2 and the regional widening: where ------------------------------------------------------


# Matching asks for the same pairs of districts again and again. England has some 2,200 districts,
# too many pairs to keep them all, so the cache keeps those asked for most recently.
@lru_cache(maxsize=1 << 16)
def miles_between(home_district: str, setting_district: str) -> float:
    """Between the centroids of the child's home district and the setting's."""
    return geography.distance_miles(home_district, setting_district)


def reach(sought: Sought, bed: Offered) -> tuple[float, bool] | None:
    """(miles, local) when the bed is local, or in reach of a regional search; else None.

    Local is within 20 miles of home, or inside the referring council; a regional search also
    reaches any setting in the referring council's region.
    """
    miles = miles_between(sought.home_postcode_district, bed.postcode_district)
    if miles <= geography.LOCAL_RADIUS_MILES or bed.authority_code == sought.authority_code:
        return miles, True
    if sought.search_scope is SearchScope.REGIONAL and bed.region_code == sought.region_code:
        return miles, False
    return None


def within_reach(sought: Sought, bed: Offered) -> bool:
    return reach(sought, bed) is not None


Rule = Callable[[Sought, Offered], bool]

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


def failed_rules(sought: Sought, bed: Offered) -> list[str]:
    """The names of the rules the bed breaks for this referral, in RULE_NAMES order."""
    return [name for name, rule in RULES if not rule(sought, bed)]


def fits(sought: Sought, bed: Offered) -> bool:
    return not failed_rules(sought, bed)
