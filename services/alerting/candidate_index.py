"""Open referrals and vacancies filed by placement type and district, so a match looks only nearby.

A new vacancy is matched against the referrals of its placement type whose home district is within
20 miles of the setting's, whose council is the setting's, or whose regional search covers the
setting's region; a new referral, symmetrically. The cost of one match grows with the candidates in
reach, not with the national total. Pure data structures; no I/O.

Records are filed by district, so the candidates of one district are taken together at the one
distance they share: the districts within 20 miles of each district are worked out once, and each
candidate is then checked against rule 1 by one integer key (`required_bits`, `missing_bits` and a
day) kept in an array beside the district's records. A match examines only candidates in reach,
reads a record only when its key lets it through, and builds a `Fit` only for a fit.
"""

import math
from array import array
from bisect import bisect_left
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from datetime import date
from functools import cache
from itertools import chain
from types import MappingProxyType
from typing import Final, Generic, TypeVar
from uuid import UUID

from contracts import geography
from contracts.enums import RATING_RANK, SearchScope
from services.alerting.matching import (
    RULE_1_BITS,
    Fit,
    OpenReferral,
    OpenVacancy,
    fit_of,
    fits_of_vacancy,
    missing_bits,
    required_bits,
)

Cell = tuple[int, int]
_T = TypeVar("_T")
_R = TypeVar("_R")

# Cells only find the districts near a district, once per district: any size gives the same
# answers, the size only trades the number of cells visited against the districts measured.
_CELL_MILES: Final = 10.0
_MILES_PER_DEGREE: Final = geography.EARTH_RADIUS_MILES * math.pi / 180
_CELL_LAT_DEGREES: Final = _CELL_MILES / _MILES_PER_DEGREE
# Roughly square in the middle of England; further north cells are narrower in miles.
_CELL_LON_DEGREES: Final = _CELL_LAT_DEGREES / math.cos(math.radians(52.5))
# Widens the reach by a few centimetres so rounding in the distance can never lose a candidate.
_MARGIN_DEGREES: Final = 1e-6


def _cell_of(postcode_district: str) -> Cell:
    centroid = geography.district(postcode_district)
    return (
        math.floor(centroid.lat / _CELL_LAT_DEGREES),
        math.floor(centroid.lon / _CELL_LON_DEGREES),
    )


def _cells_in_reach(postcode_district: str) -> tuple[Cell, ...]:
    """Every cell holding a point within 20 miles (great circle) of the district's centroid."""
    centroid = geography.district(postcode_district)
    radius = geography.LOCAL_RADIUS_MILES / geography.EARTH_RADIUS_MILES  # in radians
    # A spherical cap's bounding box: its widest longitude is asin(sin r / cos latitude) away.
    lat_reach = math.degrees(radius) + _MARGIN_DEGREES
    lon_reach = (
        math.degrees(math.asin(min(1.0, math.sin(radius) / math.cos(math.radians(centroid.lat)))))
        + _MARGIN_DEGREES
    )
    rows = range(
        math.floor((centroid.lat - lat_reach) / _CELL_LAT_DEGREES),
        math.floor((centroid.lat + lat_reach) / _CELL_LAT_DEGREES) + 1,
    )
    columns = range(
        math.floor((centroid.lon - lon_reach) / _CELL_LON_DEGREES),
        math.floor((centroid.lon + lon_reach) / _CELL_LON_DEGREES) + 1,
    )
    return tuple((row, column) for row in rows for column in columns)


@cache
def _districts_by_cell() -> Mapping[Cell, tuple[str, ...]]:
    cells: dict[Cell, list[str]] = {}
    for place in geography.districts():
        cells.setdefault(_cell_of(place.code), []).append(place.code)
    return {cell: tuple(codes) for cell, codes in cells.items()}


@cache
def _district_code(postcode_district: str) -> str:
    """The district's code as the reference data spells it; raises UnknownDistrictError."""
    return geography.district(postcode_district).code


@cache
def _local_districts(code: str) -> Mapping[str, float]:
    """Every district within 20 miles of this one (itself too), with the distance a fit shows.

    Kept for each district asked for: a bounded table (England has some 2,200 districts, each with
    about a hundred within 20 miles), worked out on the first match or record in the district.
    """
    here = geography.position(code)
    found: dict[str, float] = {}
    for cell in _cells_in_reach(code):
        for other in _districts_by_cell().get(cell, ()):
            miles = geography.miles_apart(geography.position(other), here)
            if miles <= geography.LOCAL_RADIUS_MILES:
                found[other] = round(miles, 1)
    return MappingProxyType(found)


def _rounded_miles(home: str, setting: str) -> float:
    """Between two districts' centroids, rounded to 0.1 as a fit shows it."""
    return round(geography.miles_apart(geography.position(home), geography.position(setting)), 1)


class _Entries(Generic[_R]):
    """The records of one district on one shelf in the order of their ids, each with its key
    (`_referral_key`, `_vacancy_key`) in an array beside it.

    A match reads every key of the districts in reach and a record only when its key lets it
    through: the keys lie side by side in memory, where one object per candidate, scattered over
    the heap, cost a cache miss each (most of a large match's time). In id order, the records one
    district contributes to a match are already in the order its fits rank at their distance.
    """

    __slots__ = ("_ids", "keys", "records")

    def __init__(self) -> None:
        self.keys = array("Q")
        self.records: list[_R] = []
        self._ids: list[int] = []  # each record's id as an integer, which is how ids compare

    def __len__(self) -> int:
        return len(self.records)

    def add(self, record_id: UUID, key: int, record: _R) -> None:
        position = bisect_left(self._ids, record_id.int)
        if self._holds(position, record_id):
            self.keys[position] = key
            self.records[position] = record
        else:
            self._ids.insert(position, record_id.int)
            self.keys.insert(position, key)
            self.records.insert(position, record)

    def discard(self, record_id: UUID) -> None:
        position = bisect_left(self._ids, record_id.int)
        if self._holds(position, record_id):
            del self._ids[position], self.keys[position], self.records[position]

    def _holds(self, position: int, record_id: UUID) -> bool:
        return position < len(self._ids) and self._ids[position] == record_id.int


class _Shelf(Generic[_R]):
    """Records filed by a key, then by district: a match takes a district's records together."""

    __slots__ = ("_rows",)

    def __init__(self) -> None:
        self._rows: dict[Hashable, dict[str, _Entries[_R]]] = {}

    def add(self, key: Hashable, district: str, record_id: UUID, entry: int, record: _R) -> None:
        self._rows.setdefault(key, {}).setdefault(district, _Entries()).add(
            record_id, entry, record
        )

    def discard(self, key: Hashable, district: str, record_id: UUID) -> None:
        """Take the record out; a district or key left empty is dropped."""
        row = self._rows.get(key)
        if row is None:
            return
        entries = row.get(district)
        if entries is not None:
            entries.discard(record_id)
            if not entries:
                del row[district]
        if not row:
            del self._rows[key]

    def get(self, key: Hashable) -> Mapping[str, _Entries[_R]]:
        row = self._rows.get(key)
        return {} if row is None else row


# A record's key: its rule 1 bits (`required_bits`, `missing_bits`), and above them the day a
# referral is needed by or a vacancy is open from, counted from _FIRST_DAY and held within the
# bits left, so that one comparison of keys compares the days of this century. The key only
# lets a record through: the ages and beds of a record it lets through are compared exactly on
# the record, which a match reads then anyway, and so are the days when a key may hold another
# day in the place of one (`_compared_exactly`).
_DAY_SHIFT: Final = RULE_1_BITS
_BELOW_THE_DAY: Final = (1 << _DAY_SHIFT) - 1
_FIRST_DAY: Final = date(2000, 1, 1).toordinal()
_LAST_DAY: Final = (1 << (array("Q").itemsize * 8 - _DAY_SHIFT)) - 1
if date(2100, 1, 1).toordinal() - _FIRST_DAY > _LAST_DAY:
    raise RuntimeError("a record's key no longer holds the days of this century")
# Where a record is filed: the shelf, its key there, and its district.
_Placement = tuple[_Shelf[_R], Hashable, str]
# The records of one district a match takes together: whether they are local, their distance
# when already known (None: worked out once one of them fits), the district, the records.
_Group = tuple[bool, float | None, str, _Entries[_R]]
# The records of one group that fit, in the order they rank among themselves (by id; vacancies by
# rating first), with the group's reach, distance when known, and district.
_Found = tuple[bool, float | None, str, list[_R]]
# The records that fit at one reach and distance, in rank order: every fit of a match's one record
# with them is as local and as far, so its fits with them rank together.
_Ranked = tuple[bool, float, list[_R]]


def _day(day: date) -> int:
    """The day's place in a key, shifted: never before the first day, never after the last."""
    return min(max(day.toordinal() - _FIRST_DAY, 0), _LAST_DAY) << _DAY_SHIFT


def _compared_exactly(day: date) -> bool:
    """Whether keys compare this day with any other as the dates compare: true of a day strictly
    between the key's first and last, which no other day is put in the place of. A match by such
    a day need not read the other side's date (an object of its own, a cache miss each)."""
    return 0 < day.toordinal() - _FIRST_DAY < _LAST_DAY


def _referral_key(referral: OpenReferral) -> int:
    return _day(referral.needed_by) | required_bits(referral)


def _vacancy_key(vacancy: OpenVacancy) -> int:
    return _day(vacancy.available_from) | missing_bits(vacancy)


def _referrals_found(
    groups: Iterable[_Group[OpenReferral]], vacancy: OpenVacancy
) -> Iterator[_Found[OpenReferral]]:
    """For each group with any, the referrals in it that the vacancy fits, in id order: rule 1
    (its placement type aside, the shelves' business) by keys, then by ages, beds and (when the
    keys do not) days; a referral of the setting's own council taken only from a local group (it
    is local, and found there)."""
    missing, earliest = missing_bits(vacancy), _day(vacancy.available_from)
    days_in_keys = _compared_exactly(vacancy.available_from)
    age_min, age_max, beds, available_from, own_council = (
        vacancy.age_min,
        vacancy.age_max,
        vacancy.beds,
        vacancy.available_from,
        vacancy.authority_code,
    )
    for local, known, home, entries in groups:
        records = entries.records
        found = [
            referral
            for position, key in enumerate(entries.keys)
            if not key & missing
            and key >= earliest
            and age_min <= (referral := records[position]).age <= age_max
            and referral.sibling_group_size <= beds
            and (days_in_keys or available_from <= referral.needed_by)
            and (local or referral.authority_code != own_council)
        ]
        if found:
            yield local, known, home, found


def _vacancies_found(
    groups: Iterable[_Group[OpenVacancy]], referral: OpenReferral
) -> Iterator[_Found[OpenVacancy]]:
    """For each group with any, the vacancies in it that fit the referral, better rated first and
    then in id order (as `_referrals_found`); a vacancy in the referring council taken only from a
    local group."""
    required = required_bits(referral)
    latest = _day(referral.needed_by) | _BELOW_THE_DAY
    days_in_keys = _compared_exactly(referral.needed_by)
    age, group, needed_by, own_council = (
        referral.age,
        referral.sibling_group_size,
        referral.needed_by,
        referral.authority_code,
    )
    for local, known, setting, entries in groups:
        records = entries.records
        found = [
            vacancy
            for position, key in enumerate(entries.keys)
            if not key & required
            and key <= latest
            and (vacancy := records[position]).age_min <= age <= vacancy.age_max
            and group <= vacancy.beds
            and (days_in_keys or vacancy.available_from <= needed_by)
            and (local or vacancy.authority_code != own_council)
        ]
        if found:
            found.sort(key=_vacancy_order)
            yield local, known, setting, found


def _referral_order(referral: OpenReferral) -> int:
    return referral.referral_id.int


def _vacancy_order(vacancy: OpenVacancy) -> tuple[int, int]:
    return -RATING_RANK.get(vacancy.ofsted_rating, 0), vacancy.vacancy_id.int


def _ranked(
    found: Iterable[_Found[_R]], here: str, order: Callable[[_R], int | tuple[int, int]]
) -> list[_Ranked[_R]]:
    """The records found, by reach and distance from `here` as fits rank them (`rank_key` in
    services/alerting/matching.py): local first, then nearer; at one reach and distance, in
    `order`, the order each group's records are found in.

    One side of every fit of a match is the same record, so its id never decides; ids are
    unique, so `order` never ties. Only districts at the same distance need their records merged.
    """
    by_place: dict[tuple[bool, float], list[list[_R]]] = {}
    for local, known, district, records in found:
        miles = known if known is not None else _rounded_miles(district, here)
        by_place.setdefault((not local, miles), []).append(records)
    return [
        (not far, miles, lists[0] if len(lists) == 1 else sorted(chain(*lists), key=order))
        for (far, miles), lists in sorted(by_place.items())
    ]


def _index(
    records: dict[UUID, _T],
    record_id: UUID,
    record: _T,
    key_of: Callable[[_T], int],
    placements: Callable[[_T], Iterator[_Placement[_T]]],
) -> None:
    """File `record` by id and with its key at each of its `placements`, replacing an earlier
    version."""
    where = list(placements(record))  # an unknown district raises here, before any change
    key = key_of(record)
    _unindex(records, record_id, placements)
    records[record_id] = record
    for shelf, shelf_key, district in where:
        shelf.add(shelf_key, district, record_id, key, record)


def _unindex(
    records: dict[UUID, _T],
    record_id: UUID,
    placements: Callable[[_T], Iterator[_Placement[_T]]],
) -> _T | None:
    """The record taken out of `records` and its shelves, or None when it was not there."""
    record = records.pop(record_id, None)
    if record is not None:
        for shelf, key, district in placements(record):
            shelf.discard(key, district, record_id)
    return record


class CandidateIndex:
    """The open referrals and open vacancies, filed by placement type and by district."""

    def __init__(self) -> None:
        self._vacancies: dict[UUID, OpenVacancy] = {}
        self._referrals: dict[UUID, OpenReferral] = {}
        # By placement type, then by district; by (placement type, council); by (type, region).
        self._vacancies_by_district = _Shelf[OpenVacancy]()
        self._vacancies_by_council = _Shelf[OpenVacancy]()
        self._vacancies_by_region = _Shelf[OpenVacancy]()
        self._referrals_by_district = _Shelf[OpenReferral]()
        self._referrals_by_council = _Shelf[OpenReferral]()
        # Only referrals searching their region: a local one is never reached through its region.
        self._regional_referrals_by_region = _Shelf[OpenReferral]()

    @property
    def vacancies(self) -> Mapping[UUID, OpenVacancy]:
        return MappingProxyType(self._vacancies)

    @property
    def referrals(self) -> Mapping[UUID, OpenReferral]:
        return MappingProxyType(self._referrals)

    # --- changes ----------------------------------------------------------------------------------

    def add_vacancy(self, vacancy: OpenVacancy) -> None:
        """Index the vacancy, replacing any earlier version of it."""
        _index(self._vacancies, vacancy.vacancy_id, vacancy, _vacancy_key, self._vacancy_placements)

    def remove_vacancy(self, vacancy_id: UUID) -> OpenVacancy | None:
        """The vacancy removed, or None when it was not indexed (a repeated removal, say)."""
        return _unindex(self._vacancies, vacancy_id, self._vacancy_placements)

    def add_referral(self, referral: OpenReferral) -> None:
        """Index the referral under each placement type it wants, replacing any earlier version."""
        _index(
            self._referrals,
            referral.referral_id,
            referral,
            _referral_key,
            self._referral_placements,
        )

    def remove_referral(self, referral_id: UUID) -> OpenReferral | None:
        """The referral removed, or None when it was not indexed."""
        return _unindex(self._referrals, referral_id, self._referral_placements)

    # --- matching ---------------------------------------------------------------------------------

    def referrals_fitting(self, vacancy: OpenVacancy) -> list[Fit]:
        """The open referrals the vacancy fits, best first."""
        ranked = _ranked(
            _referrals_found(self._referral_groups(vacancy), vacancy),
            _district_code(vacancy.postcode_district),
            _referral_order,
        )
        return [
            fit
            for local, miles, referrals in ranked
            for fit in fits_of_vacancy(vacancy, referrals, miles, local=local)
        ]

    def vacancies_fitting(self, referral: OpenReferral) -> list[Fit]:
        """The open vacancies that fit the referral, best first."""
        ranked = _ranked(
            _vacancies_found(self._vacancy_groups(referral), referral),
            _district_code(referral.home_postcode_district),
            _vacancy_order,
        )
        return [
            fit_of(referral, vacancy, miles, local=local)
            for local, miles, vacancies in ranked
            for vacancy in vacancies
        ]

    def candidate_referrals(self, vacancy: OpenVacancy) -> list[OpenReferral]:
        """Each referral a match of the vacancy examines: of its placement type and in reach."""
        return [
            referral
            for local, _, _, entries in self._referral_groups(vacancy)
            for referral in entries.records
            if local or referral.authority_code != vacancy.authority_code
        ]

    def candidate_vacancies(self, referral: OpenReferral) -> list[OpenVacancy]:
        """Each vacancy a match of the referral examines: of a type it wants and in reach."""
        return [
            vacancy
            for local, _, _, entries in self._vacancy_groups(referral)
            for vacancy in entries.records
            if local or vacancy.authority_code != referral.authority_code
        ]

    # --- where a match looks ----------------------------------------------------------------------

    def _referral_groups(self, vacancy: OpenVacancy) -> Iterator[_Group[OpenReferral]]:
        """The referrals in reach of the vacancy, by home district, each district once a shelf.

        Home within 20 miles; else of the setting's council; else searching the setting's region
        (where the setting's own council's referrals are found again, to be left out: they are
        local, and found in their council's group).
        """
        local = _local_districts(_district_code(vacancy.postcode_district))
        placement_type = vacancy.placement_type
        nearby = self._referrals_by_district.get(placement_type)
        for home, miles in local.items():
            entries = nearby.get(home)
            if entries:
                yield True, miles, home, entries
        for home, entries in self._referrals_by_council.get(
            (placement_type, vacancy.authority_code)
        ).items():
            if home not in local:
                yield True, None, home, entries
        for home, entries in self._regional_referrals_by_region.get(
            (placement_type, vacancy.region_code)
        ).items():
            if home not in local:
                yield False, None, home, entries

    def _vacancy_groups(self, referral: OpenReferral) -> Iterator[_Group[OpenVacancy]]:
        """The vacancies in reach of the referral, by setting district (as `_referral_groups`):
        within 20 miles of home; else in the referring council; else, for a regional search, in
        the referring council's region."""
        local = _local_districts(_district_code(referral.home_postcode_district))
        regional = referral.search_scope is SearchScope.REGIONAL
        for placement_type in referral.placement_types:
            nearby = self._vacancies_by_district.get(placement_type)
            for setting, miles in local.items():
                entries = nearby.get(setting)
                if entries:
                    yield True, miles, setting, entries
            for setting, entries in self._vacancies_by_council.get(
                (placement_type, referral.authority_code)
            ).items():
                if setting not in local:
                    yield True, None, setting, entries
            if regional:
                for setting, entries in self._vacancies_by_region.get(
                    (placement_type, referral.region_code)
                ).items():
                    if setting not in local:
                        yield False, None, setting, entries

    # --- where each record is filed ---------------------------------------------------------------

    def _vacancy_placements(self, vacancy: OpenVacancy) -> Iterator[_Placement[OpenVacancy]]:
        district = _district_code(vacancy.postcode_district)
        _local_districts(district)  # worked out as the record arrives, not by its first match
        placement_type = vacancy.placement_type
        yield self._vacancies_by_district, placement_type, district
        yield self._vacancies_by_council, (placement_type, vacancy.authority_code), district
        yield self._vacancies_by_region, (placement_type, vacancy.region_code), district

    def _referral_placements(self, referral: OpenReferral) -> Iterator[_Placement[OpenReferral]]:
        home = _district_code(referral.home_postcode_district)
        _local_districts(home)
        regional = referral.search_scope is SearchScope.REGIONAL
        for placement_type in referral.placement_types:
            yield self._referrals_by_district, placement_type, home
            yield self._referrals_by_council, (placement_type, referral.authority_code), home
            if regional:
                yield (
                    self._regional_referrals_by_region,
                    (placement_type, referral.region_code),
                    home,
                )
