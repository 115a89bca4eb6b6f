"""Open referrals and vacancies filed by placement type and district, so a match looks only nearby.

A new vacancy is matched against the referrals of its placement type whose home district is within
20 miles of the setting's, whose council is the setting's, or whose regional search covers the
setting's region; a new referral, symmetrically. The cost of one match grows with the candidates in
reach, not with the national total. Pure data structures; no I/O.

Records are filed by district, so the candidates of one district are taken together at the one
distance they share: the districts within 20 miles of each district are worked out once, and each
candidate is then checked against rule 1 with a few integer operations (`required_bits`,
`missing_bits`). A match examines only candidates in reach, and builds a `Fit` only for a fit.
"""

import math
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from functools import cache
from types import MappingProxyType
from typing import Final, Generic, TypeVar
from uuid import UUID

from contracts import geography
from contracts.enums import RATING_RANK, SearchScope
from services.alerting.matching import (
    Fit,
    OpenReferral,
    OpenVacancy,
    fit_of,
    missing_bits,
    required_bits,
)

Cell = tuple[int, int]
_T = TypeVar("_T")
_E = TypeVar("_E")

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


class _Shelf(Generic[_E]):
    """Entries filed by a key, then by district: a match takes a district's entries together."""

    __slots__ = ("_rows",)

    def __init__(self) -> None:
        self._rows: dict[Hashable, dict[str, dict[UUID, _E]]] = {}

    def add(self, key: Hashable, district: str, record_id: UUID, entry: _E) -> None:
        self._rows.setdefault(key, {}).setdefault(district, {})[record_id] = entry

    def discard(self, key: Hashable, district: str, record_id: UUID) -> None:
        """Take the entry out; a district or key left empty is dropped."""
        row = self._rows.get(key)
        if row is None:
            return
        entries = row.get(district)
        if entries is not None:
            entries.pop(record_id, None)
            if not entries:
                del row[district]
        if not row:
            del self._rows[key]

    def get(self, key: Hashable) -> Mapping[str, Mapping[UUID, _E]]:
        row = self._rows.get(key)
        return {} if row is None else row


# What a match reads of a referral, as a tuple so that a loop unpacks it at once: its
# `required_bits`, the child's age, the sibling group's size, the day needed by as an ordinal.
_Sought = tuple[int, int, int, int, OpenReferral]
# And of a vacancy: its `missing_bits`, youngest and oldest age, free beds, first day as an ordinal.
_Offered = tuple[int, int, int, int, int, OpenVacancy]
# Where an entry is filed: the shelf, its key there, and its district.
_Placement = tuple[_Shelf[_E], Hashable, str]


# The candidates of one district a match takes together: whether they are local, their distance
# when already known (None: worked out once one of them meets rule 1), the district, the entries.
_Group = tuple[bool, float | None, str, Mapping[UUID, _E]]
# A record that meets rule 1, ranked as `rank_key` ranks fits (services/alerting/matching.py):
# one side of every fit of a match is the same record, so its id (and a vacancy's rating) never
# decides. Not local last, then further last, then (a vacancy) worse rated, then by the other
# side's id as an integer, which is how ids compare; ids are unique, so records are never compared.
_RankedReferral = tuple[bool, float, int, OpenReferral]
_RankedVacancy = tuple[bool, float, int, int, OpenVacancy]


class _Distances:
    """The distance from one district, rounded as a fit shows it, worked out once per district."""

    __slots__ = ("_here", "_known")

    def __init__(self, district: str) -> None:
        self._here = district
        self._known: dict[str, float] = {}

    def __call__(self, district: str) -> float:
        known = self._known.get(district)
        if known is None:
            known = self._known[district] = _rounded_miles(district, self._here)
        return known


def _sought(referral: OpenReferral) -> _Sought:
    return (
        required_bits(referral),
        referral.age,
        referral.sibling_group_size,
        referral.needed_by.toordinal(),
        referral,
    )


def _offered(vacancy: OpenVacancy) -> _Offered:
    return (
        missing_bits(vacancy),
        vacancy.age_min,
        vacancy.age_max,
        vacancy.beds,
        vacancy.available_from.toordinal(),
        vacancy,
    )


def _referrals_meeting_rule_1(
    groups: Iterable[_Group[_Sought]], offered: _Offered, own_council: str, miles: _Distances
) -> list[_RankedReferral]:
    """Each referral in `groups` that the offer meets rule 1 for (placement type aside), ready to
    rank; a referral of the setting's own council is taken only from a local group."""
    missing, age_min, age_max, beds, available_from, _ = offered
    return [
        (not local, known if known is not None else miles(home), referral.referral_id.int, referral)
        for local, known, home, entries in groups
        for required, age, group, needed_by, referral in entries.values()
        if not required & missing
        and age_min <= age <= age_max
        and group <= beds
        and available_from <= needed_by
        and (local or referral.authority_code != own_council)
    ]


def _vacancies_meeting_rule_1(
    groups: Iterable[_Group[_Offered]], sought: _Sought, own_council: str, miles: _Distances
) -> list[_RankedVacancy]:
    """Each vacancy in `groups` that meets rule 1 for the referral (placement type aside), ready
    to rank; a vacancy in the referring council is taken only from a local group."""
    required, age, group, needed_by, _ = sought
    return [
        (
            not local,
            known if known is not None else miles(setting),
            -RATING_RANK.get(vacancy.ofsted_rating, 0),
            vacancy.vacancy_id.int,
            vacancy,
        )
        for local, known, setting, entries in groups
        for missing, age_min, age_max, beds, available_from, vacancy in entries.values()
        if not required & missing
        and age_min <= age <= age_max
        and group <= beds
        and available_from <= needed_by
        and (local or vacancy.authority_code != own_council)
    ]


def _index(
    records: dict[UUID, _T],
    record_id: UUID,
    record: _T,
    entry: Callable[[_T], _E],
    placements: Callable[[_T], Iterator[_Placement[_E]]],
) -> None:
    """File `record` by id and its entry at each of its `placements`, replacing an earlier one."""
    where = list(placements(record))  # an unknown district raises here, before any change
    filed = entry(record)
    _unindex(records, record_id, placements)
    records[record_id] = record
    for shelf, key, district in where:
        shelf.add(key, district, record_id, filed)


def _unindex(
    records: dict[UUID, _T],
    record_id: UUID,
    placements: Callable[[_T], Iterator[_Placement[_E]]],
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
        self._vacancies_by_district = _Shelf[_Offered]()
        self._vacancies_by_council = _Shelf[_Offered]()
        self._vacancies_by_region = _Shelf[_Offered]()
        self._referrals_by_district = _Shelf[_Sought]()
        self._referrals_by_council = _Shelf[_Sought]()
        # Only referrals searching their region: a local one is never reached through its region.
        self._regional_referrals_by_region = _Shelf[_Sought]()

    @property
    def vacancies(self) -> Mapping[UUID, OpenVacancy]:
        return MappingProxyType(self._vacancies)

    @property
    def referrals(self) -> Mapping[UUID, OpenReferral]:
        return MappingProxyType(self._referrals)

    # --- changes ----------------------------------------------------------------------------------

    def add_vacancy(self, vacancy: OpenVacancy) -> None:
        """Index the vacancy, replacing any earlier version of it."""
        _index(self._vacancies, vacancy.vacancy_id, vacancy, _offered, self._vacancy_placements)

    def remove_vacancy(self, vacancy_id: UUID) -> OpenVacancy | None:
        """The vacancy removed, or None when it was not indexed (a repeated removal, say)."""
        return _unindex(self._vacancies, vacancy_id, self._vacancy_placements)

    def add_referral(self, referral: OpenReferral) -> None:
        """Index the referral under each placement type it wants, replacing any earlier version."""
        _index(self._referrals, referral.referral_id, referral, _sought, self._referral_placements)

    def remove_referral(self, referral_id: UUID) -> OpenReferral | None:
        """The referral removed, or None when it was not indexed."""
        return _unindex(self._referrals, referral_id, self._referral_placements)

    # --- matching ---------------------------------------------------------------------------------

    def referrals_fitting(self, vacancy: OpenVacancy) -> list[Fit]:
        """The open referrals the vacancy fits, best first."""
        ranked = _referrals_meeting_rule_1(
            self._referral_groups(vacancy),
            _offered(vacancy),
            vacancy.authority_code,
            _Distances(_district_code(vacancy.postcode_district)),
        )
        ranked.sort()
        return [
            fit_of(referral, vacancy, miles, local=not far) for far, miles, _, referral in ranked
        ]

    def vacancies_fitting(self, referral: OpenReferral) -> list[Fit]:
        """The open vacancies that fit the referral, best first."""
        ranked = _vacancies_meeting_rule_1(
            self._vacancy_groups(referral),
            _sought(referral),
            referral.authority_code,
            _Distances(_district_code(referral.home_postcode_district)),
        )
        ranked.sort()
        return [
            fit_of(referral, vacancy, miles, local=not far) for far, miles, _, _, vacancy in ranked
        ]

    def candidate_referrals(self, vacancy: OpenVacancy) -> list[OpenReferral]:
        """Each referral a match of the vacancy examines: of its placement type and in reach."""
        return [
            referral
            for local, _, _, entries in self._referral_groups(vacancy)
            for *_, referral in entries.values()
            if local or referral.authority_code != vacancy.authority_code
        ]

    def candidate_vacancies(self, referral: OpenReferral) -> list[OpenVacancy]:
        """Each vacancy a match of the referral examines: of a type it wants and in reach."""
        return [
            vacancy
            for local, _, _, entries in self._vacancy_groups(referral)
            for *_, vacancy in entries.values()
            if local or vacancy.authority_code != referral.authority_code
        ]

    # --- where a match looks ----------------------------------------------------------------------

    def _referral_groups(self, vacancy: OpenVacancy) -> Iterator[_Group[_Sought]]:
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

    def _vacancy_groups(self, referral: OpenReferral) -> Iterator[_Group[_Offered]]:
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

    def _vacancy_placements(self, vacancy: OpenVacancy) -> Iterator[_Placement[_Offered]]:
        district = _district_code(vacancy.postcode_district)
        _local_districts(district)  # worked out as the record arrives, not by its first match
        placement_type = vacancy.placement_type
        yield self._vacancies_by_district, placement_type, district
        yield self._vacancies_by_council, (placement_type, vacancy.authority_code), district
        yield self._vacancies_by_region, (placement_type, vacancy.region_code), district

    def _referral_placements(self, referral: OpenReferral) -> Iterator[_Placement[_Sought]]:
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
