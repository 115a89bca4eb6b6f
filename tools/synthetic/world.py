"""The synthetic world's records: settings with their placements and vacancies, and referrals.

The simulator's plan keeps them as the state it has asked the services to create and change (it
assumes each request succeeds, so this is what the services should hold); the open market of the
matching benchmarks draws them over England.
"""

from dataclasses import dataclass, field
from datetime import date

from contracts import geography
from contracts.enums import RATING_RANK, Need, OfstedRating, PlacementType, SearchScope, Sex


@dataclass(eq=False, slots=True)
class SimPlacement:
    handle: str
    setting: "SimSetting"
    placing_authority: str
    beds: int
    start_date: date
    active: bool = True


@dataclass(eq=False, slots=True)
class SimVacancy:
    handle: str
    setting: "SimSetting"
    beds: int
    available_from: date
    age_min: int | None = None
    age_max: int | None = None
    sexes: tuple[Sex, ...] | None = None
    open: bool = True


@dataclass(eq=False, slots=True)
class SimSetting:
    handle: str
    provider_id: str
    council: str
    district: str
    placement_type: PlacementType
    places: int
    rating: OfstedRating
    age_min: int
    age_max: int
    sexes: tuple[Sex, ...]
    needs: tuple[Need, ...]
    open: bool = True
    placements: list[SimPlacement] = field(default_factory=list)
    vacancies: list[SimVacancy] = field(default_factory=list)

    @property
    def occupied(self) -> int:
        return sum(p.beds for p in self.placements)

    @property
    def offered(self) -> int:
        return sum(v.beds for v in self.vacancies)

    @property
    def vacant(self) -> int:
        return max(self.places - self.occupied, 0)

    @property
    def room_to_offer(self) -> int:
        """Vacant places not already offered: what the provider service lets a vacancy offer."""
        return max(self.vacant - self.offered, 0)


@dataclass(eq=False, slots=True)
class SimReferral:
    handle: str
    council: str
    age: int
    sex: Sex
    needs: tuple[Need, ...]
    sibling_group_size: int
    placement_types: tuple[PlacementType, ...]
    home_district: str
    needed_by: date
    emergency: bool
    min_rating: OfstedRating
    accept_not_yet_inspected: bool
    scope: SearchScope = SearchScope.LOCAL
    open: bool = True


def rating_accepted(rating: OfstedRating, referral: SimReferral) -> bool:
    if rating is OfstedRating.NOT_YET_INSPECTED:
        return referral.accept_not_yet_inspected
    return RATING_RANK[rating] >= RATING_RANK[referral.min_rating]


def fits(vacancy: SimVacancy, referral: SimReferral) -> bool:
    """Rule 1 of docs/domain.md: the child's needs, age and sex, the type, rating, date and beds."""
    setting = vacancy.setting
    age_min = setting.age_min if vacancy.age_min is None else vacancy.age_min
    age_max = setting.age_max if vacancy.age_max is None else vacancy.age_max
    sexes = setting.sexes if vacancy.sexes is None else vacancy.sexes
    return (
        setting.open
        and vacancy.open
        and setting.placement_type in referral.placement_types
        and set(referral.needs) <= set(setting.needs)
        and age_min <= referral.age <= age_max
        and referral.sex in sexes
        and rating_accepted(setting.rating, referral)
        and vacancy.available_from <= referral.needed_by
        and vacancy.beds >= referral.sibling_group_size
        and (Need.SOLO_PLACEMENT not in referral.needs or not setting.placements)
    )


def is_local(setting: SimSetting, referral: SimReferral) -> bool:
    """Rule 2 of docs/domain.md: within 20 miles of the child's home, or in the council's area."""
    return geography.is_local(
        referral.home_district, referral.council, setting.district, setting.council
    )
