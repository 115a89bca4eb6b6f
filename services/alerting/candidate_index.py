"""Open referrals and vacancies indexed by placement type and area, so a match looks only nearby.

A new vacancy is matched against the referrals of its placement type whose home is in a grid cell
that reaches within 20 miles of the setting, whose council is the setting's, or whose regional
search covers the setting's region; a new referral, symmetrically. The cost of one match grows with
the candidates in reach, not with the national total. Pure data structures; no I/O.
"""

import math
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from types import MappingProxyType
from typing import Final, Generic, TypeVar
from uuid import UUID

from contracts import geography
from contracts.enums import PlacementType, SearchScope
from services.alerting.matching import (
    Fit,
    OpenReferral,
    OpenVacancy,
    fit_in_reach,
    meets_rule_1,
    rank,
)

Cell = tuple[int, int]
_AreaKey = tuple[PlacementType, Cell | str]
_T = TypeVar("_T")

# Cells are only buckets: any size gives the same answers, the size only trades the number of
# cells visited against the candidates examined that turn out to be out of reach (see bench/).
_CELL_MILES: Final = 10.0
_MILES_PER_DEGREE: Final = geography.EARTH_RADIUS_MILES * math.pi / 180
_CELL_LAT_DEGREES: Final = _CELL_MILES / _MILES_PER_DEGREE
# Roughly square in the middle of England; further north cells are narrower in miles.
_CELL_LON_DEGREES: Final = _CELL_LAT_DEGREES / math.cos(math.radians(52.5))
# Widens the reach by a few centimetres so rounding in the distance can never lose a candidate.
_MARGIN_DEGREES: Final = 1e-6


@cache
def _cell_of(postcode_district: str) -> Cell:
    centroid = geography.district(postcode_district)
    return (
        math.floor(centroid.lat / _CELL_LAT_DEGREES),
        math.floor(centroid.lon / _CELL_LON_DEGREES),
    )


@cache
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


class _Buckets(Generic[_T]):
    """Records by id, in buckets by key; an emptied bucket is dropped."""

    __slots__ = ("_buckets",)

    def __init__(self) -> None:
        self._buckets: dict[_AreaKey, dict[UUID, _T]] = {}

    def add(self, key: _AreaKey, record_id: UUID, record: _T) -> None:
        self._buckets.setdefault(key, {})[record_id] = record

    def discard(self, key: _AreaKey, record_id: UUID) -> None:
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.pop(record_id, None)
            if not bucket:
                del self._buckets[key]

    def get(self, key: _AreaKey) -> Mapping[UUID, _T]:
        bucket = self._buckets.get(key)
        return {} if bucket is None else bucket


# Where a record is filed: each bucket, and its key there.
_Placements = Callable[[_T], Iterator[tuple[_Buckets[_T], _AreaKey]]]


def _index(
    records: dict[UUID, _T], record_id: UUID, record: _T, placements: _Placements[_T]
) -> None:
    """File `record` by id and in every bucket of its `placements`, replacing an earlier version."""
    where = list(placements(record))  # an unknown district raises here, before any change
    _unindex(records, record_id, placements)
    records[record_id] = record
    for buckets, key in where:
        buckets.add(key, record_id, record)


def _unindex(records: dict[UUID, _T], record_id: UUID, placements: _Placements[_T]) -> _T | None:
    """The record taken out of `records` and its buckets, or None when it was not there."""
    record = records.pop(record_id, None)
    if record is not None:
        for buckets, key in placements(record):
            buckets.discard(key, record_id)
    return record


class CandidateIndex:
    """The open referrals and open vacancies, bucketed by placement type and by area."""

    def __init__(self) -> None:
        self._vacancies: dict[UUID, OpenVacancy] = {}
        self._referrals: dict[UUID, OpenReferral] = {}
        self._vacancies_by_cell = _Buckets[OpenVacancy]()
        self._vacancies_by_council = _Buckets[OpenVacancy]()
        self._vacancies_by_region = _Buckets[OpenVacancy]()
        self._referrals_by_cell = _Buckets[OpenReferral]()
        self._referrals_by_council = _Buckets[OpenReferral]()
        # Only referrals searching their region: a local one is never reached through its region.
        self._regional_referrals_by_region = _Buckets[OpenReferral]()

    @property
    def vacancies(self) -> Mapping[UUID, OpenVacancy]:
        return MappingProxyType(self._vacancies)

    @property
    def referrals(self) -> Mapping[UUID, OpenReferral]:
        return MappingProxyType(self._referrals)

    # --- changes ----------------------------------------------------------------------------------

    def add_vacancy(self, vacancy: OpenVacancy) -> None:
        """Index the vacancy, replacing any earlier version of it."""
        _index(self._vacancies, vacancy.vacancy_id, vacancy, self._vacancy_placements)

    def remove_vacancy(self, vacancy_id: UUID) -> OpenVacancy | None:
        """The vacancy removed, or None when it was not indexed (a repeated removal, say)."""
        return _unindex(self._vacancies, vacancy_id, self._vacancy_placements)

    def add_referral(self, referral: OpenReferral) -> None:
        """Index the referral under each placement type it wants, replacing any earlier version."""
        _index(self._referrals, referral.referral_id, referral, self._referral_placements)

    def remove_referral(self, referral_id: UUID) -> OpenReferral | None:
        """The referral removed, or None when it was not indexed."""
        return _unindex(self._referrals, referral_id, self._referral_placements)

    # --- matching ---------------------------------------------------------------------------------

    def referrals_fitting(self, vacancy: OpenVacancy) -> list[Fit]:
        """The open referrals the vacancy fits, best first."""
        return rank(
            fit
            for referral in self.candidate_referrals(vacancy)
            if meets_rule_1(referral, vacancy) and (fit := fit_in_reach(referral, vacancy))
        )

    def vacancies_fitting(self, referral: OpenReferral) -> list[Fit]:
        """The open vacancies that fit the referral, best first."""
        return rank(
            fit
            for vacancy in self.candidate_vacancies(referral)
            if meets_rule_1(referral, vacancy) and (fit := fit_in_reach(referral, vacancy))
        )

    def candidate_referrals(self, vacancy: OpenVacancy) -> list[OpenReferral]:
        """Each referral that the vacancy could fit by placement type and area, once."""
        placement_type = vacancy.placement_type
        found: dict[UUID, OpenReferral] = {}
        for cell in _cells_in_reach(vacancy.postcode_district):
            found.update(self._referrals_by_cell.get((placement_type, cell)))
        found.update(self._referrals_by_council.get((placement_type, vacancy.authority_code)))
        found.update(self._regional_referrals_by_region.get((placement_type, vacancy.region_code)))
        return list(found.values())

    def candidate_vacancies(self, referral: OpenReferral) -> list[OpenVacancy]:
        """Each vacancy that could fit the referral by placement type and area, once."""
        cells = _cells_in_reach(referral.home_postcode_district)
        regional = referral.search_scope is SearchScope.REGIONAL
        found: dict[UUID, OpenVacancy] = {}
        for placement_type in referral.placement_types:
            for cell in cells:
                found.update(self._vacancies_by_cell.get((placement_type, cell)))
            found.update(self._vacancies_by_council.get((placement_type, referral.authority_code)))
            if regional:
                found.update(self._vacancies_by_region.get((placement_type, referral.region_code)))
        return list(found.values())

    # --- where each record is filed ---------------------------------------------------------------

    def _vacancy_placements(
        self, vacancy: OpenVacancy
    ) -> Iterator[tuple[_Buckets[OpenVacancy], _AreaKey]]:
        placement_type = vacancy.placement_type
        yield self._vacancies_by_cell, (placement_type, _cell_of(vacancy.postcode_district))
        yield self._vacancies_by_council, (placement_type, vacancy.authority_code)
        yield self._vacancies_by_region, (placement_type, vacancy.region_code)

    def _referral_placements(
        self, referral: OpenReferral
    ) -> Iterator[tuple[_Buckets[OpenReferral], _AreaKey]]:
        home_cell = _cell_of(referral.home_postcode_district)
        for placement_type in referral.placement_types:
            yield self._referrals_by_cell, (placement_type, home_cell)
            yield self._referrals_by_council, (placement_type, referral.authority_code)
            if referral.search_scope is SearchScope.REGIONAL:
                yield self._regional_referrals_by_region, (placement_type, referral.region_code)
