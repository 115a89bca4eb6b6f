"""Which postcode districts are within 20 miles of each other, worked out once per district.

Districts are numbered along rows of cells of the map about 10 miles square (`district_number`),
so that the districts near a district lie in a few runs of numbers, one per row of cells its 20
miles' bounding box covers (`runs_in_reach`). Those are measured one by one (`local_districts`),
and the columns (columns.py) search the same runs. Pure functions of the packaged reference data;
no I/O.
"""

import math
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from functools import cache
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt

from contracts import geography

Cell = tuple[int, int]
Numbers = npt.NDArray[np.int64]
Tenths = npt.NDArray[np.int16]

# Cells only find the districts near a district, once per district: any size gives the same
# answers, the size only trades the number of cells visited against the districts measured.
_CELL_MILES: Final = 10.0
_MILES_PER_DEGREE: Final = geography.EARTH_RADIUS_MILES * math.pi / 180
_CELL_LAT_DEGREES: Final = _CELL_MILES / _MILES_PER_DEGREE
# Roughly square in the middle of England; further north cells are narrower in miles.
_CELL_LON_DEGREES: Final = _CELL_LAT_DEGREES / math.cos(math.radians(52.5))
# Widens the reach by a few centimetres so rounding in the distance can never lose a candidate.
_MARGIN_DEGREES: Final = 1e-6
# In `tenths_in_reach`, a district not within 20 miles.
NOT_IN_REACH: Final = -1


def _cell(lat: float, lon: float) -> Cell:
    return math.floor(lat / _CELL_LAT_DEGREES), math.floor(lon / _CELL_LON_DEGREES)


def _box_in_reach(postcode_district: str) -> tuple[Cell, Cell]:
    """The south-west and north-east cells of the box holding every point within 20 miles (great
    circle) of the district's centroid."""
    centroid = geography.district(postcode_district)
    radius = geography.LOCAL_RADIUS_MILES / geography.EARTH_RADIUS_MILES  # in radians
    # A spherical cap's bounding box: its widest longitude is asin(sin r / cos latitude) away.
    lat_reach = math.degrees(radius) + _MARGIN_DEGREES
    lon_reach = (
        math.degrees(math.asin(min(1.0, math.sin(radius) / math.cos(math.radians(centroid.lat)))))
        + _MARGIN_DEGREES
    )
    return (
        _cell(centroid.lat - lat_reach, centroid.lon - lon_reach),
        _cell(centroid.lat + lat_reach, centroid.lon + lon_reach),
    )


@cache
def _numbering() -> tuple[Mapping[str, int], tuple[Cell, ...], tuple[str, ...]]:
    """Each district's number, in the order of (cell row, cell column, code); by number, each
    district's cell and code."""
    placed = sorted((_cell(place.lat, place.lon), place.code) for place in geography.districts())
    numbers = {code: number for number, (_, code) in enumerate(placed)}
    return (
        MappingProxyType(numbers),
        tuple(cell for cell, _ in placed),
        tuple(code for _, code in placed),
    )


@cache
def district_code(postcode_district: str) -> str:
    """The district's code as the reference data spells it; raises UnknownDistrictError."""
    return geography.district(postcode_district).code


def district_number(code: str) -> int:
    """The number of a district, by its code as the reference data spells it."""
    return _numbering()[0][code]


_COUNCIL_NUMBERS: Final[dict[str, int]] = {}


def council_number(code: str) -> int:
    """A number for the council of that code, the same for the process's life."""
    return _COUNCIL_NUMBERS.setdefault(code, len(_COUNCIL_NUMBERS))


def district_of_number(number: int) -> str:
    """The code of the district of that number."""
    return _numbering()[2][number]


@cache
def local_districts(code: str) -> Mapping[str, float]:
    """Every district within 20 miles of this one (itself too), with the distance a fit shows.

    Kept for each district asked for: a bounded table (England has some 2,200 districts, each with
    about a hundred within 20 miles), worked out on the first match or record in the district.
    """
    here = geography.position(code)
    codes = _numbering()[2]
    found: dict[str, float] = {}
    for first, last in zip(*runs_in_reach(code), strict=True):
        for other in codes[first : last + 1]:
            miles = geography.miles_apart(geography.position(other), here)
            if miles <= geography.LOCAL_RADIUS_MILES:
                found[other] = round(miles, 1)
    return MappingProxyType(found)


@cache
def runs_in_reach(code: str) -> tuple[Numbers, Numbers]:
    """The first and last numbers of each run of districts holding those within 20 miles of this
    one: a row of cells across the 20 miles' bounding box, with districts in the box's corners
    that `tenths_in_reach` leaves out."""
    (south, west), (north, east) = _box_in_reach(code)
    cells = _numbering()[1]
    firsts, lasts = [], []
    for row in range(south, north + 1):
        first, end = bisect_left(cells, (row, west)), bisect_right(cells, (row, east))
        if first < end:
            firsts.append(first)
            lasts.append(end - 1)
    return np.array(firsts, dtype=np.int64), np.array(lasts, dtype=np.int64)


@cache
def tenths_in_reach(code: str) -> Tenths:
    """By district number, the tenths of a mile from this district to each within 20 miles (the
    distance a fit shows, `local_districts`), and NOT_IN_REACH for every other: 4 kB a district."""
    local = local_districts(code)
    tenths = np.full(len(_numbering()[2]), NOT_IN_REACH, dtype=np.int16)
    tenths[[district_number(other) for other in local]] = [
        round(miles * 10) for miles in local.values()
    ]
    return tenths


def work_out(code: str) -> None:
    """Work out now what a match in or near the district will ask (as a record arrives there)."""
    tenths_in_reach(code)
    runs_in_reach(code)


def rounded_miles(home: str, setting: str) -> float:
    """Between two districts' centroids, rounded to 0.1 as a fit shows it."""
    return round(geography.miles_apart(geography.position(home), geography.position(setting)), 1)
