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

from array import array
from bisect import bisect_left
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from datetime import date
from itertools import chain, repeat
from types import MappingProxyType
from typing import Final, Generic, Protocol, TypeVar
from uuid import UUID

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
from services.alerting.reach import district_code, local_districts, rounded_miles, work_out
from services.alerting.referral_columns import TAIL_LIMIT, ReferralColumns

_T = TypeVar("_T")
_R = TypeVar("_R")
_R_contra = TypeVar("_R_contra", contravariant=True)


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


class _Files(Protocol[_R_contra]):
    """Where records are filed by a key and district: a `_Shelf`, or `_ReferralsByType`."""

    def add(
        self, key: Hashable, district: str, record_id: UUID, entry: int, record: _R_contra
    ) -> None: ...

    def discard(self, key: Hashable, district: str, record_id: UUID) -> None: ...


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
_Placement = tuple[_Files[_R], Hashable, str]
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
        miles = known if known is not None else rounded_miles(district, here)
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


class _ReferralsByType:
    """The referrals of each placement type as columns by home district (referral_columns.py),
    filed as a `_Shelf` files them."""

    __slots__ = ("_columns", "_tail_limit")

    def __init__(self, tail_limit: int) -> None:
        self._columns: dict[Hashable, ReferralColumns] = {}
        self._tail_limit = tail_limit

    def add(
        self,
        key: Hashable,
        district: str,
        record_id: UUID,  # noqa: ARG002 - the record's own, which the columns read
        entry: int,  # noqa: ARG002 - the columns keep each part of the record's key apart
        record: OpenReferral,
    ) -> None:
        columns = self._columns.get(key)
        if columns is None:
            columns = self._columns[key] = ReferralColumns(self._tail_limit)
        columns.add(district, record)

    def discard(self, key: Hashable, district: str, record_id: UUID) -> None:
        columns = self._columns.get(key)
        if columns is not None:
            columns.discard(district, record_id)

    def settle(self) -> None:
        for columns in self._columns.values():
            columns.settle()

    def get(self, key: Hashable) -> ReferralColumns:
        columns = self._columns.get(key)
        return _NO_REFERRALS if columns is None else columns


_NO_REFERRALS: Final = ReferralColumns()


class CandidateIndex:
    """The open referrals and open vacancies, filed by placement type and by district."""

    def __init__(self, tail_limit: int = TAIL_LIMIT) -> None:
        """`tail_limit`: how many new referrals of a type a match checks one by one before the
        columns are rebuilt with them (referral_columns.py)."""
        self._vacancies: dict[UUID, OpenVacancy] = {}
        self._referrals: dict[UUID, OpenReferral] = {}
        # By placement type, then by district; by (placement type, council); by (type, region).
        self._vacancies_by_district = _Shelf[OpenVacancy]()
        self._vacancies_by_council = _Shelf[OpenVacancy]()
        self._vacancies_by_region = _Shelf[OpenVacancy]()
        self._referrals_nearby = _ReferralsByType(tail_limit)
        self._referrals_by_council = _Shelf[OpenReferral]()
        # Only referrals searching their region: a local one is never reached through its region.
        self._regional_referrals_by_region = _ReferralsByType(tail_limit)

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

    def settle(self) -> None:
        """Put every new referral into the columns now (after a load, say), not at the next match
        of a vacancy of its type."""
        self._referrals_nearby.settle()
        self._regional_referrals_by_region.settle()

    # --- matching ---------------------------------------------------------------------------------

    def referrals_fitting(self, vacancy: OpenVacancy) -> list[Fit]:
        """The open referrals the vacancy fits, best first: those whose homes are within 20 miles
        (in the columns, in rank order), then those of the setting's council farther off, then
        those searching its region from farther off (in their columns, in rank order)."""
        here = district_code(vacancy.postcode_district)
        miles, nearby = self._referrals_nearby.get(vacancy.placement_type).fitting(vacancy, here)
        farther = _ranked(
            _referrals_found(self._farther_council_groups(vacancy, here), vacancy),
            here,
            _referral_order,
        )
        # A home in the council beyond 20 miles may be shown at the distance of the farthest
        # within them (20.0, rounded), where ids decide between them: merged then.
        while farther and miles and farther[0][1] <= miles[-1]:
            _, distance_miles, referrals = farther.pop(0)
            merged = sorted(
                chain(zip(miles, nearby, strict=True), ((distance_miles, r) for r in referrals)),
                key=lambda pair: (pair[0], pair[1].referral_id.int),
            )
            miles, nearby = [pair[0] for pair in merged], [pair[1] for pair in merged]
        for _, distance_miles, referrals in farther:
            miles.extend(repeat(distance_miles, len(referrals)))
            nearby.extend(referrals)
        regional_miles, regional = self._regional_referrals_by_region.get(
            (vacancy.placement_type, vacancy.region_code)
        ).fitting_farther(vacancy, here)
        return [
            *fits_of_vacancy(vacancy, nearby, miles, local=True),
            *fits_of_vacancy(vacancy, regional, regional_miles, local=False),
        ]

    def vacancies_fitting(self, referral: OpenReferral) -> list[Fit]:
        """The open vacancies that fit the referral, best first."""
        ranked = _ranked(
            _vacancies_found(self._vacancy_groups(referral), referral),
            district_code(referral.home_postcode_district),
            _vacancy_order,
        )
        return [
            fit_of(referral, vacancy, miles, local=local)
            for local, miles, vacancies in ranked
            for vacancy in vacancies
        ]

    def candidate_referrals(self, vacancy: OpenVacancy) -> list[OpenReferral]:
        """Each referral a match of the vacancy examines, once: of its placement type, in the runs
        of districts in reach (referral_columns.py), in the setting's council farther off, or
        searching its region."""
        here = district_code(vacancy.postcode_district)
        placement_type = vacancy.placement_type
        examined = {
            referral.referral_id: referral
            for referral in chain(
                self._referrals_nearby.get(placement_type).in_reach(here),
                (
                    referral
                    for _, _, _, entries in self._farther_council_groups(vacancy, here)
                    for referral in entries.records
                ),
                self._regional_referrals_by_region.get((placement_type, vacancy.region_code)),
            )
        }
        return list(examined.values())

    def candidate_vacancies(self, referral: OpenReferral) -> list[OpenVacancy]:
        """Each vacancy a match of the referral examines: of a type it wants and in reach."""
        return [
            vacancy
            for local, _, _, entries in self._vacancy_groups(referral)
            for vacancy in entries.records
            if local or vacancy.authority_code != referral.authority_code
        ]

    # --- where a match looks ----------------------------------------------------------------------

    def _farther_council_groups(
        self, vacancy: OpenVacancy, here: str
    ) -> Iterator[_Group[OpenReferral]]:
        """The referrals of the setting's council whose homes are more than 20 miles from the
        vacancy's district `here`, by home district: local, as the council's own."""
        local = local_districts(here)
        for home, entries in self._referrals_by_council.get(
            (vacancy.placement_type, vacancy.authority_code)
        ).items():
            if home not in local:
                yield True, None, home, entries

    def _vacancy_groups(self, referral: OpenReferral) -> Iterator[_Group[OpenVacancy]]:
        """The vacancies in reach of the referral, by setting district (as `_referral_groups`):
        within 20 miles of home; else in the referring council; else, for a regional search, in
        the referring council's region."""
        local = local_districts(district_code(referral.home_postcode_district))
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
        district = district_code(vacancy.postcode_district)
        work_out(district)  # as the record arrives, not at its first match
        placement_type = vacancy.placement_type
        yield self._vacancies_by_district, placement_type, district
        yield self._vacancies_by_council, (placement_type, vacancy.authority_code), district
        yield self._vacancies_by_region, (placement_type, vacancy.region_code), district

    def _referral_placements(self, referral: OpenReferral) -> Iterator[_Placement[OpenReferral]]:
        home = district_code(referral.home_postcode_district)
        work_out(home)
        regional = referral.search_scope is SearchScope.REGIONAL
        for placement_type in referral.placement_types:
            yield self._referrals_nearby, placement_type, home
            yield self._referrals_by_council, (placement_type, referral.authority_code), home
            if regional:
                yield (
                    self._regional_referrals_by_region,
                    (placement_type, referral.region_code),
                    home,
                )
