"""Open referrals or vacancies as columns by district, so that a match is a few array operations
over the candidates in reach instead of a Python loop per district.

A vacancy in London has some three hundred districts within 20 miles, each holding a handful of
referrals: walked district by district, the loop's own overhead and a cache miss per object
outweighed the checks themselves (bench/alerting/bench_matching.py). Here each record is a row
of arrays: its district's number (reach.py numbers districts along rows of cells on the map),
its council's, its id, and the integers rule 1 compares (`ReferralColumns.VALUES`,
`VacancyColumns.VALUES`), the rows sorted by district. The districts within 20 miles of a place
lie in a few runs of numbers (one per row of cells in reach), whose rows two binary searches
find; every check of rules 1 and 2 is then one operation over those rows, and only the fits are
read as objects.

Changes are cheap too: a new record waits among the new ones (at most `TAIL_LIMIT`), which a
match checks by the same operations; a record taken out is marked; the arrays are rebuilt when
either grows too many. Pure data structures; no I/O.
"""

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import ClassVar, Final, Generic, NamedTuple, TypeVar
from uuid import UUID

import numpy as np
import numpy.typing as npt

from contracts.enums import RATING_RANK
from services.alerting.matching import OpenReferral, OpenVacancy, missing_bits, required_bits
from services.alerting.reach import (
    NOT_IN_REACH,
    Numbers,
    council_number,
    district_number,
    district_of_number,
    rounded_miles,
    runs_in_reach,
    tenths_in_reach,
)

_R = TypeVar("_R", OpenReferral, OpenVacancy)  # what is filed
_Q = TypeVar("_Q", OpenReferral, OpenVacancy)  # what a match asks with: the other side

# New records a match checks among the new ones before the arrays are rebuilt with them.
TAIL_LIMIT: Final = 64
# The share of rows that may be records taken out before the arrays are rebuilt without them.
_DEAD_SHARE: Final = 4  # a quarter
_LOW_BITS: Final = (1 << 64) - 1

Mask = npt.NDArray[np.bool_]
Values = npt.NDArray[np.int64]  # one row per value, one column per record
Ids = npt.NDArray[np.uint64]
Records = npt.NDArray[np.object_]


class Found(NamedTuple):
    """The fits one set of columns found for a match, as arrays in no particular order."""

    far: Mask  # not local: found through a regional search
    miles: npt.NDArray[np.float64]  # rounded to 0.1, as a fit shows it
    rank: Numbers  # at one reach and distance, the order before the id (a better rating first)
    id_high: Ids
    id_low: Ids
    records: Records


NOTHING: Final = Found(
    far=np.empty(0, dtype=bool),
    miles=np.empty(0, dtype=np.float64),
    rank=np.empty(0, dtype=np.int64),
    id_high=np.empty(0, dtype=np.uint64),
    id_low=np.empty(0, dtype=np.uint64),
    records=np.empty(0, dtype=object),
)


class Ranked(NamedTuple):
    """Fits in rank order (`rank_key` in matching.py): local first, nearer, better rated, by id."""

    local: list[bool]
    miles: list[float]
    records: list[object]


def in_rank_order(found: Sequence[Found]) -> Ranked:
    """Every part's fits together, in rank order (ids are unique, so the order is total)."""
    parts = [part for part in found if len(part.records)] or [NOTHING]
    far = np.concatenate([part.far for part in parts])
    miles = np.concatenate([part.miles for part in parts])
    rank = np.concatenate([part.rank for part in parts])
    id_high = np.concatenate([part.id_high for part in parts])
    id_low = np.concatenate([part.id_low for part in parts])
    ordered = np.lexsort((id_low, id_high, rank, miles, far))
    records = np.concatenate([part.records for part in parts])
    return Ranked(
        local=(~far[ordered]).tolist(),
        miles=miles[ordered].tolist(),
        records=records[ordered].tolist(),
    )


class _Rows(NamedTuple):
    """Some records as arrays: the columns, or the new records' arrays made for one match."""

    district: Numbers
    council: Numbers
    id_high: Ids
    id_low: Ids
    values: Values
    records: Records


class Columns(ABC, Generic[_R, _Q]):
    """The open records of one kind filed under one key (a placement type; with a council or a
    region), by district, as columns."""

    # The integers rule 1 compares of a record, in the order `values_of` gives them.
    VALUES: ClassVar[tuple[str, ...]]

    __slots__ = ("_alive", "_dead", "_rows", "_tail", "_tail_limit")

    def __init__(self, tail_limit: int = TAIL_LIMIT) -> None:
        self._tail_limit = tail_limit
        # New records, not yet in the arrays, by id: each with its district's number.
        self._tail: dict[UUID, tuple[int, _R]] = {}
        self._dead = 0
        self._rows = _rows_of(self, [], [])
        self._alive: Mask = np.ones(0, dtype=bool)

    # --- what each kind says of its records and its matches ---------------------------------------

    @staticmethod
    @abstractmethod
    def id_of(record: _R) -> UUID: ...

    @staticmethod
    @abstractmethod
    def council_of(record: _R) -> str: ...

    @staticmethod
    @abstractmethod
    def values_of(record: _R) -> tuple[int, ...]: ...

    @abstractmethod
    def meeting_rule_1(self, values: Values, query: _Q) -> Mask:
        """Which of the records (by their values) meet rule 1 with the query, the placement type
        aside (the key the columns are filed under)."""

    @abstractmethod
    def rank_of(self, values: Values) -> Numbers:
        """Each record's place among fits at one reach and distance, before its id."""

    # --- changes ----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._alive) - self._dead + len(self._tail)

    def add(self, district: str, record: _R) -> None:
        """File a record not filed here (a new version is filed after the old one's discard)."""
        self._tail[self.id_of(record)] = (district_number(district), record)

    def discard(self, district: str, record_id: UUID) -> None:
        """Take out the record of that id whose district is `district`, if filed here."""
        if self._tail.pop(record_id, None) is not None:
            return
        number = district_number(district)
        rows = self._rows
        first, end = np.searchsorted(rows.district, [number, number + 1]).tolist()
        high, low = record_id.int >> 64, record_id.int & _LOW_BITS
        for row in (
            first
            + np.flatnonzero((rows.id_high[first:end] == high) & (rows.id_low[first:end] == low))
        ).tolist():
            if self._alive[row]:
                self._alive[row] = False
                self._dead += 1

    def settle(self) -> None:
        """Rebuild the arrays with every new record and without any taken out."""
        if self._tail or self._dead:
            self._rebuild()

    def __iter__(self) -> Iterator[_R]:
        """Every record filed here."""
        yield from self._rows.records[self._alive].tolist()
        for _, record in self._tail.values():
            yield record

    # --- matching ---------------------------------------------------------------------------------

    def in_runs(self, code: str) -> Iterator[_R]:
        """Each record a match near district `code` examines: those in its runs of districts."""
        self._settle()
        firsts, lasts = runs_in_reach(code)
        rows = self._rows
        yield from rows.records[self._in_runs(code)].tolist()
        for number, record in self._tail.values():
            if np.any((firsts <= number) & (number <= lasts)):
                yield record

    def near(self, query: _Q, code: str) -> Found:
        """The records within 20 miles of district `code` that meet rule 1 with the query: local."""
        if not len(self):
            return NOTHING
        self._settle()
        tenths = tenths_in_reach(code)
        parts = []
        for rows, candidates in self._sources(self._in_runs(code)):
            in_reach = candidates[tenths[rows.district[candidates]] != NOT_IN_REACH]
            chosen = in_reach[self.meeting_rule_1(rows.values[:, in_reach], query)]
            parts.append(self._found(rows, chosen, tenths[rows.district[chosen]] / 10, far=False))
        return _joined(parts)

    def beyond(self, query: _Q, code: str, *, far: bool, other_council_than: str | None) -> Found:
        """The records more than 20 miles from district `code` (of another council than
        `other_council_than`, when given) that meet rule 1 with the query; local unless `far`."""
        if not len(self):
            return NOTHING
        self._settle()
        tenths = tenths_in_reach(code)
        parts = []
        for rows, candidates in self._sources(np.flatnonzero(self._alive)):
            beyond = tenths[rows.district[candidates]] == NOT_IN_REACH
            if other_council_than is not None:
                beyond &= rows.council[candidates] != council_number(other_council_than)
            farther = candidates[beyond]
            chosen = farther[self.meeting_rule_1(rows.values[:, farther], query)]
            if not len(chosen):
                continue
            homes, each = np.unique(rows.district[chosen], return_inverse=True)
            miles = np.array(
                [rounded_miles(district_of_number(home), code) for home in homes.tolist()],
                dtype=np.float64,
            )
            parts.append(self._found(rows, chosen, miles[each], far=far))
        return _joined(parts)

    # --- the arrays -------------------------------------------------------------------------------

    def _found(
        self, rows: _Rows, chosen: Numbers, miles: npt.NDArray[np.float64], *, far: bool
    ) -> Found:
        return Found(
            far=np.full(len(chosen), far, dtype=bool),
            miles=miles,
            rank=self.rank_of(rows.values[:, chosen]),
            id_high=rows.id_high[chosen],
            id_low=rows.id_low[chosen],
            records=rows.records[chosen],
        )

    def _in_runs(self, code: str) -> Numbers:
        """The rows still open in the runs of districts in reach of district `code`."""
        firsts, lasts = runs_in_reach(code)
        district = self._rows.district
        starts = np.searchsorted(district, firsts, side="left").tolist()
        ends = np.searchsorted(district, lasts, side="right").tolist()
        spans = [np.arange(start, end) for start, end in zip(starts, ends, strict=True)]
        rows: Numbers = np.concatenate(spans) if spans else np.empty(0, dtype=np.int64)
        open_rows: Numbers = rows[self._alive[rows]]
        return open_rows

    def _sources(self, chosen: Numbers) -> Iterator[tuple[_Rows, Numbers]]:
        """The arrays with the rows of them chosen; then any new records, as arrays of their own
        made for this match, with all their rows."""
        yield self._rows, chosen
        if self._tail:
            numbers = [number for number, _ in self._tail.values()]
            rows = _rows_of(self, numbers, [record for _, record in self._tail.values()])
            yield rows, np.arange(len(numbers), dtype=np.int64)

    def _settle(self) -> None:
        """Rebuild the arrays when the new records or those taken out have grown too many."""
        if len(self._tail) > self._tail_limit or self._dead * _DEAD_SHARE > max(
            self._tail_limit, len(self._alive)
        ):
            self._rebuild()

    def _rebuild(self) -> None:
        alive = self._alive
        numbers = self._rows.district[alive].tolist()
        records = self._rows.records[alive].tolist()
        for number, record in self._tail.values():
            numbers.append(number)
            records.append(record)
        self._tail = {}
        self._dead = 0
        rows = _rows_of(self, numbers, records)
        order = np.lexsort((rows.id_low, rows.id_high, rows.district))
        self._rows = _Rows(
            district=rows.district[order],
            council=rows.council[order],
            id_high=rows.id_high[order],
            id_low=rows.id_low[order],
            values=rows.values[:, order],
            records=rows.records[order],
        )
        self._alive = np.ones(len(order), dtype=bool)


def _rows_of(columns: Columns[_R, _Q], numbers: list[int], records: list[_R]) -> _Rows:
    ids = [columns.id_of(record).int for record in records]
    objects = np.empty(len(records), dtype=object)
    objects[:] = records
    values = np.array([columns.values_of(record) for record in records], dtype=np.int64).reshape(
        len(records), len(columns.VALUES)
    )
    return _Rows(
        district=np.array(numbers, dtype=np.int64),
        council=np.array(
            [council_number(columns.council_of(record)) for record in records], dtype=np.int64
        ),
        id_high=np.array([number >> 64 for number in ids], dtype=np.uint64),
        id_low=np.array([number & _LOW_BITS for number in ids], dtype=np.uint64),
        values=np.ascontiguousarray(values.T),
        records=objects,
    )


def _joined(found: list[Found]) -> Found:
    parts = [part for part in found if len(part.records)]
    if len(parts) <= 1:
        return parts[0] if parts else NOTHING
    return Found(*(np.concatenate(column) for column in zip(*parts, strict=True)))


# --- the two kinds ------------------------------------------------------------------------------


class ReferralColumns(Columns[OpenReferral, OpenVacancy]):
    """Open referrals, by home district; a match asks with a vacancy."""

    VALUES = ("required_bits", "needed_by", "age", "sibling_group_size")
    __slots__ = ()

    @staticmethod
    def id_of(record: OpenReferral) -> UUID:
        return record.referral_id

    @staticmethod
    def council_of(record: OpenReferral) -> str:
        return record.authority_code

    @staticmethod
    def values_of(record: OpenReferral) -> tuple[int, ...]:
        return (
            required_bits(record),
            record.needed_by.toordinal(),
            record.age,
            record.sibling_group_size,
        )

    def meeting_rule_1(self, values: Values, query: OpenVacancy) -> Mask:
        bits, needed_by, age, group = values
        fits: Mask = (
            ((bits & missing_bits(query)) == 0)
            & (age >= query.age_min)
            & (age <= query.age_max)
            & (group <= query.beds)
            & (needed_by >= query.available_from.toordinal())
        )
        return fits

    def rank_of(self, values: Values) -> Numbers:
        return np.zeros(values.shape[1], dtype=np.int64)  # one vacancy: its rating for them all


class VacancyColumns(Columns[OpenVacancy, OpenReferral]):
    """Open vacancies, by their setting's district; a match asks with a referral."""

    VALUES = ("missing_bits", "available_from", "age_min", "age_max", "beds", "rating")
    __slots__ = ()

    @staticmethod
    def id_of(record: OpenVacancy) -> UUID:
        return record.vacancy_id

    @staticmethod
    def council_of(record: OpenVacancy) -> str:
        return record.authority_code

    @staticmethod
    def values_of(record: OpenVacancy) -> tuple[int, ...]:
        return (
            missing_bits(record),
            record.available_from.toordinal(),
            record.age_min,
            record.age_max,
            record.beds,
            RATING_RANK.get(record.ofsted_rating, 0),
        )

    def meeting_rule_1(self, values: Values, query: OpenReferral) -> Mask:
        bits, available_from, age_min, age_max, beds, _ = values
        fits: Mask = (
            ((bits & required_bits(query)) == 0)
            & (age_min <= query.age)
            & (age_max >= query.age)
            & (beds >= query.sibling_group_size)
            & (available_from <= query.needed_by.toordinal())
        )
        return fits

    def rank_of(self, values: Values) -> Numbers:
        better_first: Numbers = -values[5]
        return better_first
