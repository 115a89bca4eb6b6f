"""Straight-line distance between districts, and what counts as local (docs/domain.md, rule 2)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

from contracts.geography._areas import council, district, districts, straddles_councils

EARTH_RADIUS_MILES = 3958.8
LOCAL_RADIUS_MILES = 20.0


def distance_miles(a: str, b: str) -> float:
    """Great-circle (haversine) distance in statute miles between two districts' centroids."""
    first, second = district(a), district(b)
    lat1, lon1 = math.radians(first.lat), math.radians(first.lon)
    lat2, lon2 = math.radians(second.lat), math.radians(second.lon)
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_MILES * math.asin(math.sqrt(min(1.0, h)))


@dataclass(frozen=True, slots=True)
class Position:
    """A district's centroid in radians, with the cosine of its latitude.

    What `distance_miles` works out from a district on every call, kept for callers that ask for
    the distances of the same districts again and again (matching).
    """

    lat: float
    lon: float
    cos_lat: float


@cache
def position(code: str) -> Position:
    """The district's `Position`; raises UnknownDistrictError. Kept for each code asked for."""
    place = district(code)
    lat = math.radians(place.lat)
    return Position(lat=lat, lon=math.radians(place.lon), cos_lat=math.cos(lat))


def miles_apart(first: Position, second: Position) -> float:
    """`distance_miles` between two positions: the very same float, without the look-ups.

    The same operations in the same order, so that a distance compared with 20 miles, or rounded
    for an alert, never differs from the one `distance_miles` gives for the same districts.
    """
    h = (
        math.sin((second.lat - first.lat) / 2) ** 2
        + first.cos_lat * second.cos_lat * math.sin((second.lon - first.lon) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_MILES * math.asin(math.sqrt(min(1.0, h)))


def is_local(
    child_home_district: str,
    referring_authority_code: str,
    setting_district: str,
    setting_authority_code: str | None = None,
) -> bool:
    """Within 20 miles of the child's home district, or inside the referring council's area.

    The setting's council is `setting_authority_code` when given (a setting's own registration
    is more precise than its district), else the council its district is assigned to.
    Unknown districts or councils raise, whichever rule would decide.
    """
    miles = distance_miles(child_home_district, setting_district)
    referring = council(referring_authority_code).code
    if setting_authority_code is None:
        setting_council = district(setting_district).authority_code
    else:
        setting_council = council(setting_authority_code).code
    return miles <= LOCAL_RADIUS_MILES or setting_council == referring


# A district straddling councils (districts.csv names only the council holding most of it) lies
# in another council too when that council's own districts come this close to it.
NEIGHBOUR_RADIUS_MILES = 15.0


def lies_in_council(district_code: str, authority_code: str) -> bool:
    """Whether the postcode district lies (wholly or partly) in the council.

    True for the council the district is assigned to. A district straddling councils also lies
    in a council one of whose districts is within `NEIGHBOUR_RADIUS_MILES` of it: the data knows
    only the council holding most of a district, so its neighbours are taken as its other
    councils. Unknown districts or councils raise.
    """
    setting_council = council(authority_code).code
    place = district(district_code)
    if place.authority_code == setting_council:
        return True
    if not straddles_councils(place.code):
        return False
    return any(
        distance_miles(place.code, other.code) <= NEIGHBOUR_RADIUS_MILES
        for other in districts()
        if other.authority_code == setting_council
    )
