"""Drawing settings, children and councils at random, in realistic proportions.

Every function takes the caller's `random.Random` and nothing else that varies, so a seed always
draws the same world. Proportions not sourced in figures.py are our assumptions, chosen so that
a typical child's needs fit some but not all local settings.
"""

import hashlib
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TypeVar

from contracts import geography
from contracts.enums import Need, OfstedRating, PlacementType, Sex
from tools.synthetic import figures
from tools.synthetic.area import districts_of, slug

K = TypeVar("K")

ALL_SEXES = (Sex.FEMALE, Sex.MALE, Sex.OTHER)
FOSTERING = (PlacementType.FOSTER_CARE_IN_HOUSE, PlacementType.FOSTER_CARE_IFA)
# Children's ages in whole years, as the contracts bound them; supported accommodation is for
# 16- and 17-year-olds only.
YOUNGEST, OLDEST = 0, 17
SUPPORTED_ACCOMMODATION_AGES = (16, 17)
# Needs a child may have on its own: a sibling group's comes with the group's size, a solo
# placement's with whether other children live there.
PLAIN_NEEDS: tuple[Need, ...] = tuple(
    need for need in Need if need not in {Need.SIBLING_GROUP, Need.SOLO_PLACEMENT}
)


def draw(rng: random.Random, weights: Mapping[K, float]) -> K:
    """One key, with probability in proportion to its weight."""
    keys = list(weights)
    return rng.choices(keys, weights=[weights[key] for key in keys])[0]


def some(rng: random.Random, chances: Mapping[Need, float]) -> tuple[Need, ...]:
    """Each need with its own chance, sorted as the contracts sort them."""
    return tuple(sorted(need for need, chance in chances.items() if rng.random() < chance))


def sizes_to_total(
    rng: random.Random, count: int, total: int, weights: Mapping[int, float]
) -> list[int]:
    """`count` sizes drawn from `weights`, then nudged one place at a time to add up to `total`."""
    if count <= 0:
        return []
    smallest, largest = min(weights), max(weights)
    total = max(count * smallest, min(count * largest, total))
    sizes = [draw(rng, weights) for _ in range(count)]
    while sum(sizes) != total:
        step = 1 if sum(sizes) < total else -1
        movable = [i for i, size in enumerate(sizes) if smallest <= size + step <= largest]
        sizes[rng.choice(movable)] += step
    return sizes


def home_district(rng: random.Random, council_code: str) -> str:
    """A postcode district of the council, more likely where more people live."""
    districts = districts_of(council_code)
    return rng.choices([code for code, _ in districts], weights=[n for _, n in districts])[0]


# --- settings -------------------------------------------------------------------------------------

RATINGS = {
    OfstedRating.OUTSTANDING: 17,
    OfstedRating.GOOD: 63,
    OfstedRating.REQUIRES_IMPROVEMENT: 14,
    OfstedRating.INADEQUATE: 2,
    OfstedRating.NOT_YET_INSPECTED: 4,
}
# Supported accommodation has been registered with Ofsted only since 2023.
SUPPORTED_ACCOMMODATION_RATINGS = {
    OfstedRating.OUTSTANDING: 5,
    OfstedRating.GOOD: 35,
    OfstedRating.REQUIRES_IMPROVEMENT: 12,
    OfstedRating.NOT_YET_INSPECTED: 48,
}
# After an inspection: most keep their grade; the rest move one grade either way.
REINSPECTION_DRIFT = {-1: 12, 0: 74, 1: 14}
GRADES = (
    OfstedRating.INADEQUATE,
    OfstedRating.REQUIRES_IMPROVEMENT,
    OfstedRating.GOOD,
    OfstedRating.OUTSTANDING,
)

_HOME_NEEDS = {
    Need.SEMH: 0.95,
    Need.MISSING_EPISODES: 0.7,
    Need.CSE_RISK: 0.6,
    Need.CCE_RISK: 0.6,
    Need.SELF_HARM: 0.55,
    Need.SUBSTANCE_MISUSE: 0.4,
    Need.YOUTH_JUSTICE: 0.35,
    Need.AUTISM: 0.3,
    Need.LEARNING_DISABILITY: 0.25,
    Need.UASC: 0.15,
    Need.COMPLEX_HEALTH: 0.08,
    Need.PHYSICAL_DISABILITY: 0.05,
    Need.EMERGENCY: 0.3,
}
_SCHOOL_NEEDS = {
    Need.AUTISM: 0.9,
    Need.LEARNING_DISABILITY: 0.85,
    Need.SEMH: 0.7,
    Need.COMPLEX_HEALTH: 0.5,
    Need.PHYSICAL_DISABILITY: 0.4,
    Need.SELF_HARM: 0.3,
}
_SHORT_BREAK_NEEDS = {
    Need.LEARNING_DISABILITY: 1.0,
    Need.AUTISM: 0.8,
    Need.COMPLEX_HEALTH: 0.7,
    Need.PHYSICAL_DISABILITY: 0.7,
}
_FOSTER_NEEDS = {
    Need.SEMH: 0.55,
    Need.EMERGENCY: 0.35,
    Need.AUTISM: 0.2,
    Need.LEARNING_DISABILITY: 0.2,
    Need.MISSING_EPISODES: 0.2,
    Need.SELF_HARM: 0.2,
    Need.CSE_RISK: 0.15,
    Need.UASC: 0.12,
    Need.CCE_RISK: 0.1,
    Need.COMPLEX_HEALTH: 0.08,
    Need.PHYSICAL_DISABILITY: 0.05,
    Need.SUBSTANCE_MISUSE: 0.05,
    Need.YOUTH_JUSTICE: 0.05,
}
_SUPPORTED_ACCOMMODATION_NEEDS = {
    Need.SEMH: 0.7,
    Need.UASC: 0.6,
    Need.MISSING_EPISODES: 0.4,
    Need.SELF_HARM: 0.3,
    Need.CCE_RISK: 0.3,
    Need.CSE_RISK: 0.3,
    Need.SUBSTANCE_MISUSE: 0.3,
    Need.EMERGENCY: 0.3,
    Need.YOUTH_JUSTICE: 0.2,
    Need.AUTISM: 0.1,
    Need.LEARNING_DISABILITY: 0.1,
}


@dataclass(frozen=True, slots=True)
class SettingTerms:
    """Whom a setting cares for."""

    age_min: int
    age_max: int
    sexes: tuple[Sex, ...]
    needs: tuple[Need, ...]


def setting_terms(rng: random.Random, placement_type: PlacementType, places: int) -> SettingTerms:
    """The ages, sexes and needs of a new setting of this type and size."""
    if placement_type is PlacementType.CHILDRENS_HOME:
        needs = set(some(rng, _HOME_NEEDS))
        if places == 1:
            needs.add(Need.SOLO_PLACEMENT)
        elif rng.random() < 0.1:
            needs.add(Need.SIBLING_GROUP)
        age_min = draw(rng, {5: 5, 7: 10, 8: 25, 10: 35, 11: 15, 12: 10})
        sexes = draw(rng, _HOME_SEXES)
        return SettingTerms(age_min, OLDEST, sexes, tuple(sorted(needs)))
    if placement_type is PlacementType.RESIDENTIAL_SPECIAL_SCHOOL:
        age_min = draw(rng, {5: 20, 8: 40, 11: 40})
        return SettingTerms(age_min, OLDEST, ALL_SEXES, some(rng, _SCHOOL_NEEDS))
    if placement_type is PlacementType.SHORT_BREAKS:
        age_min = draw(rng, {5: 60, 8: 40})
        return SettingTerms(age_min, OLDEST, ALL_SEXES, some(rng, _SHORT_BREAK_NEEDS))
    if placement_type is PlacementType.SUPPORTED_ACCOMMODATION:
        sexes = draw(rng, {ALL_SEXES: 60, (Sex.MALE,): 25, (Sex.FEMALE,): 15})
        return SettingTerms(
            *SUPPORTED_ACCOMMODATION_AGES, sexes, some(rng, _SUPPORTED_ACCOMMODATION_NEEDS)
        )
    needs = set(some(rng, _FOSTER_NEEDS))
    if places >= 2 and rng.random() < 0.85:
        needs.add(Need.SIBLING_GROUP)
    age_min, age_max = draw(rng, {(0, 17): 50, (0, 10): 20, (5, 17): 15, (10, 17): 15})
    sexes = draw(rng, {ALL_SEXES: 85, (Sex.FEMALE, Sex.MALE): 15})
    return SettingTerms(age_min, age_max, sexes, tuple(sorted(needs)))


_HOME_SEXES: dict[tuple[Sex, ...], float] = {
    ALL_SEXES: 60,
    (Sex.FEMALE, Sex.MALE): 20,
    (Sex.MALE,): 12,
    (Sex.FEMALE,): 8,
}


def rating(rng: random.Random, placement_type: PlacementType) -> OfstedRating:
    if placement_type is PlacementType.SUPPORTED_ACCOMMODATION:
        return draw(rng, SUPPORTED_ACCOMMODATION_RATINGS)
    return draw(rng, RATINGS)


def reinspected(rng: random.Random, current: OfstedRating) -> OfstedRating:
    """The grade after an inspection: a new setting gets a grade, others keep or move one."""
    if current is OfstedRating.NOT_YET_INSPECTED:
        return draw(rng, {rating: weight for rating, weight in RATINGS.items() if rating in GRADES})
    index = GRADES.index(current) + draw(rng, REINSPECTION_DRIFT)
    return GRADES[min(max(index, 0), len(GRADES) - 1)]


# --- children -------------------------------------------------------------------------------------

# Ages of children needing a new home: entries to care (a fifth under one) and moves (older).
REFERRAL_AGES = {
    0: 12, 1: 4, 2: 4, 3: 4, 4: 4, 5: 3.5, 6: 3.5, 7: 3.5, 8: 3.5, 9: 3.5,
    10: 5, 11: 5, 12: 6, 13: 7, 14: 8, 15: 8, 16: 8, 17: 4,
}  # fmt: skip
# Children living in homes and schools are mostly 10-17.
RESIDENT_AGES = {8: 2, 9: 3, 10: 5, 11: 7, 12: 10, 13: 13, 14: 17, 15: 19, 16: 15, 17: 9}
# 56% of looked-after children are boys; a few are neither.
SEXES = {Sex.MALE: 55.5, Sex.FEMALE: 44, Sex.OTHER: 0.5}


def resident_age(
    rng: random.Random, placement_type: PlacementType, age_min: int, age_max: int
) -> float:
    """The age in years (with its fraction) of a child living at a setting."""
    if placement_type in FOSTERING or placement_type is PlacementType.SHORT_BREAKS:
        weights: Mapping[int, float] = REFERRAL_AGES
    else:
        weights = RESIDENT_AGES
    fitting = {age: w for age, w in weights.items() if age_min <= age <= age_max}
    whole = draw(rng, fitting) if fitting else rng.randint(age_min, age_max)
    return whole + rng.random()


@dataclass(frozen=True, slots=True)
class Child:
    """What a referral says about a child: nothing that identifies them."""

    age: int
    sex: Sex
    needs: tuple[Need, ...]
    sibling_group_size: int
    placement_types: tuple[PlacementType, ...]
    emergency: bool


_HOME_CHILD_NEEDS = {
    Need.SEMH: 0.85,
    Need.MISSING_EPISODES: 0.35,
    Need.SELF_HARM: 0.25,
    Need.CCE_RISK: 0.22,
    Need.CSE_RISK: 0.2,
    Need.AUTISM: 0.15,
    Need.SUBSTANCE_MISUSE: 0.12,
    Need.YOUTH_JUSTICE: 0.1,
    Need.LEARNING_DISABILITY: 0.08,
    Need.SOLO_PLACEMENT: 0.07,
    Need.UASC: 0.03,
}
_FOSTER_CHILD_NEEDS = {
    Need.SEMH: 0.3,
    Need.AUTISM: 0.06,
    Need.LEARNING_DISABILITY: 0.06,
    Need.MISSING_EPISODES: 0.05,
    Need.UASC: 0.04,
    Need.SELF_HARM: 0.04,
    Need.COMPLEX_HEALTH: 0.03,
    Need.PHYSICAL_DISABILITY: 0.02,
}
_SUPPORTED_CHILD_NEEDS = {
    Need.UASC: 0.45,
    Need.SEMH: 0.4,
    Need.MISSING_EPISODES: 0.15,
    Need.CCE_RISK: 0.15,
    Need.SUBSTANCE_MISUSE: 0.1,
    Need.SELF_HARM: 0.1,
}
_SCHOOL_CHILD_NEEDS = {
    Need.AUTISM: 0.7,
    Need.LEARNING_DISABILITY: 0.6,
    Need.SEMH: 0.4,
    Need.COMPLEX_HEALTH: 0.2,
    Need.PHYSICAL_DISABILITY: 0.15,
}


def _kind_of_home_wanted(rng: random.Random, age: int) -> PlacementType:
    if age < 8:
        return PlacementType.FOSTER_CARE_IFA
    if age < 10:
        return draw(rng, {PlacementType.FOSTER_CARE_IFA: 95, PlacementType.CHILDRENS_HOME: 3,
                          PlacementType.RESIDENTIAL_SPECIAL_SCHOOL: 2})  # fmt: skip
    if age < 16:
        return draw(rng, {PlacementType.FOSTER_CARE_IFA: 62, PlacementType.CHILDRENS_HOME: 33,
                          PlacementType.RESIDENTIAL_SPECIAL_SCHOOL: 5})  # fmt: skip
    return draw(rng, {PlacementType.FOSTER_CARE_IFA: 35, PlacementType.CHILDRENS_HOME: 20,
                      PlacementType.SUPPORTED_ACCOMMODATION: 45})  # fmt: skip


def child_needing_a_home(rng: random.Random) -> Child:
    """A child a council refers: age, sex, needs and the kinds of home that would do."""
    age = draw(rng, REFERRAL_AGES)
    sex = draw(rng, SEXES)
    kind = _kind_of_home_wanted(rng, age)
    emergency = rng.random() < figures.EMERGENCY_SHARE
    siblings = 1
    if kind is PlacementType.CHILDRENS_HOME:
        chances = dict(_HOME_CHILD_NEEDS)
        chances[Need.CSE_RISK if sex is Sex.FEMALE else Need.CCE_RISK] += 0.15
        needs = set(some(rng, chances))
        types = draw(rng, {(PlacementType.CHILDRENS_HOME,): 85, _RESIDENTIAL: 15})
    elif kind is PlacementType.RESIDENTIAL_SPECIAL_SCHOOL:
        needs = set(some(rng, _SCHOOL_CHILD_NEEDS))
        types = draw(rng, {(PlacementType.RESIDENTIAL_SPECIAL_SCHOOL,): 60, _RESIDENTIAL: 40})
    elif kind is PlacementType.SUPPORTED_ACCOMMODATION:
        needs = set(some(rng, _SUPPORTED_CHILD_NEEDS))
        types = draw(rng, {(PlacementType.SUPPORTED_ACCOMMODATION,): 75, _OVER_16: 25})
    else:
        needs = set(some(rng, _FOSTER_CHILD_NEEDS))
        types = draw(rng, {FOSTERING: 85, (PlacementType.FOSTER_CARE_IN_HOUSE,): 15})
        if age < 14:
            siblings = draw(rng, {1: 78, 2: 16, 3: 6})
    if siblings > 1:
        needs.add(Need.SIBLING_GROUP)
    if emergency:
        needs.add(Need.EMERGENCY)
    return Child(age, sex, tuple(sorted(needs)), siblings, tuple(sorted(types)), emergency)


_RESIDENTIAL = (PlacementType.CHILDRENS_HOME, PlacementType.RESIDENTIAL_SPECIAL_SCHOOL)
_OVER_16 = (PlacementType.SUPPORTED_ACCOMMODATION, *FOSTERING)


# --- councils -------------------------------------------------------------------------------------


def _miles_between(a: geography.Council, b: geography.Council) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (a.lat, a.lon, b.lat, b.lon))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * geography.EARTH_RADIUS_MILES * math.asin(math.sqrt(min(1.0, h)))


@cache
def _neighbours(council_code: str) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """The other councils of the region, nearer ones likelier."""
    home = geography.council(council_code)
    others = [c for c in geography.councils_in_region(home.region_code) if c.code != home.code]
    return tuple(c.code for c in others), tuple(1 / (10 + _miles_between(home, c)) for c in others)


@cache
def _elsewhere(region_code: str) -> tuple[str, ...]:
    return tuple(c.code for c in geography.councils() if c.region_code != region_code)


def placing_council(rng: random.Random, setting_council: str, others_share: float) -> str:
    """Whose child lives at a setting in `setting_council`: its own, a neighbour's, or afar."""
    if rng.random() >= others_share:
        return setting_council
    neighbours, weights = _neighbours(setting_council)
    if neighbours and rng.random() < figures.OTHERS_FROM_THE_REGION:
        return rng.choices(neighbours, weights=weights)[0]
    return rng.choice(_elsewhere(geography.council(setting_council).region_code))


# --- providers ------------------------------------------------------------------------------------

_NAMES = (
    "ashdown", "beacon", "brightwater", "brookside", "cedar", "compass", "cornerstone", "elmtree",
    "evergreen", "fellside", "foxglove", "greenacre", "harbour", "haven", "heather", "heron",
    "hillcrest", "horizon", "juniper", "kestrel", "keystone", "lakeland", "larch", "lighthouse",
    "maple", "meadowbank", "millbrook", "moorland", "northstar", "oakfield", "pathway", "pennine",
    "redwood", "riverside", "rowan", "sandpiper", "silverdale", "skylark", "stonebridge",
    "summerfield", "thistle", "westwood", "willowbrook", "wren",
)  # fmt: skip
_SUFFIXES = {
    "homes": ("care", "homes", "childrens-homes", "care-group", "residential-care"),
    "fostering": ("fostering", "foster-care", "family-placements"),
    "supported": ("supported-living", "housing-support", "pathways"),
    "school": ("school", "college"),
}


class ProviderNames:
    """Unique, made-up provider slugs such as `brightwater-care` (none names a real company)."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def new(self, rng: random.Random, kind: str) -> str:
        suffix = rng.choice(_SUFFIXES[kind])
        name = f"{rng.choice(_NAMES)}-{suffix}"
        while name in self._taken:
            name = f"{rng.choice(_NAMES)}-{rng.choice(_NAMES)}-{suffix}"
        self._taken.add(name)
        return name


def in_house_provider(council_code: str) -> str:
    """The council's own homes and fostering service, as a provider: `sefton-council`."""
    return f"{slug(geography.council(council_code).name)}-council"


def pick_group(
    rng: random.Random, groups: Sequence[str], sizes: Mapping[str, int], join_chance: float
) -> str | None:
    """An existing group (bigger ones likelier), or None for a new one."""
    if not groups or rng.random() >= join_chance:
        return None
    return rng.choices(list(groups), weights=[sizes[g] for g in groups])[0]


# --- a setting's public profile -------------------------------------------------------------------

_NAME_STEMS = (
    "Ashdale", "Birchwood", "Brackenrigg", "Cedar", "Fellside", "Greystones", "Hawthorn",
    "Heathfield", "Kirkbank", "Larchmont", "Meadowcroft", "Oakleigh", "Riverside", "Rowan",
    "Sandholme", "Thornbeck", "Willowbank", "Yewtree",
)  # fmt: skip
_NAME_ENDINGS = {
    PlacementType.CHILDRENS_HOME: ("House", "Lodge", "Cottage", "View"),
    PlacementType.RESIDENTIAL_SPECIAL_SCHOOL: ("School", "College"),
    PlacementType.SECURE_CHILDRENS_HOME: ("Secure Unit", "Centre"),
    PlacementType.PARENT_AND_CHILD: ("Family Centre", "Mother and Baby Unit"),
    PlacementType.SUPPORTED_ACCOMMODATION: ("Flats", "Court", "Supported Living"),
    PlacementType.SUPPORTED_LODGINGS: ("Lodgings", "Home Share"),
    PlacementType.SHORT_BREAKS: ("Short Breaks", "Respite House"),
}
_WHAT = {
    PlacementType.CHILDRENS_HOME: "children's home",
    PlacementType.RESIDENTIAL_SPECIAL_SCHOOL: "residential special school",
    PlacementType.SECURE_CHILDRENS_HOME: "secure children's home",
    PlacementType.PARENT_AND_CHILD: "parent and child unit",
    PlacementType.SUPPORTED_ACCOMMODATION: "supported accommodation service",
    PlacementType.SUPPORTED_LODGINGS: "supported lodgings scheme",
    PlacementType.SHORT_BREAKS: "short breaks service",
}


def setting_profile(
    seed: str,
    provider_id: str,
    placement_type: PlacementType,
    places: int,
    district: str,
) -> dict[str, str] | None:
    """A fictional public profile for a setting, or `None` for a foster household (which has none).

    Its chance comes from hashing `seed` (the run and the setting), not from the caller's random
    generator, so adding profiles changed no other draw: a seed still gives the same world.
    """
    if placement_type in FOSTERING:
        return None
    digest = hashlib.sha256(seed.encode()).digest()
    number = int.from_bytes(digest[:8], "big")
    endings = _NAME_ENDINGS[placement_type]
    name = f"{_NAME_STEMS[number % len(_NAME_STEMS)]} {endings[(number >> 8) % len(endings)]}"
    what = _WHAT[placement_type]
    return {
        "name": name,
        "ofsted_urn": f"SC{(number >> 16) % 1_000_000:06d}",
        "referrals_email": f"referrals@{provider_id}.example",
        "referrals_phone": f"01{(number >> 40) % 900 + 100} 000 {(number >> 52) % 900 + 100}",
        "description": (
            f"A {places}-place {what} in the {district} area. Ask the referrals team about "
            "the children we can care for now."
        ),
    }
