"""The open referrals of one placement type as columns, so that a new vacancy's match in reach is a
few array operations over the candidates nearby instead of a Python loop per district.

A vacancy in London has some three hundred districts within 20 miles, each holding a handful of
referrals: walked district by district, the loop's own overhead and one cache miss per object
outweighed the checks (bench/alerting/bench_matching.py). Here each referral is a row of arrays
(home district, rule 1 bits, needed-by day, age, sibling group, id), the rows sorted by home
district, and the districts numbered along rows of cells on the map. The districts within 20
miles of a setting then lie in a few runs of district numbers (one per row of cells in reach),
whose rows two binary searches find; every check of rules 1 and 2 is one operation over those
rows, and only the fits are read as objects.

Changes are cheap too: a new referral waits in a short list (`TAIL_LIMIT`) that a match checks
one by one, a closed one is marked, and the arrays are rebuilt when either grows. Pure data
structures; no I/O.
"""

from bisect import bisect_right
from collections.abc import Iterator
from typing import Final
from uuid import UUID

import numpy as np
import numpy.typing as npt

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

# New referrals a match checks one by one before the arrays are rebuilt with them.
TAIL_LIMIT: Final = 64
# The share of rows that may be closed referrals before the arrays are rebuilt without them.
_DEAD_SHARE: Final = 4  # a quarter

# Referrals by distance from a setting (rounded to 0.1 mile) then id, and each one's distance.
Nearby = tuple[list[float], list[OpenReferral]]

# --- the columns --------------------------------------------------------------------------------


class ReferralColumns:
    """The open referrals of one placement type, filed by home district as columns."""

    __slots__ = (
        "_age",
        "_alive",
        "_bits",
        "_council",
        "_dead",
        "_district",
        "_group",
        "_id_high",
        "_id_low",
        "_needed_by",
        "_records",
        "_tail",
        "_tail_limit",
    )

    def __init__(self, tail_limit: int = TAIL_LIMIT) -> None:
        self._tail_limit = tail_limit
        # Referrals not yet in the arrays, by id: each with its home district's number and its
        # `required_bits`.
        self._tail: dict[UUID, tuple[int, int, OpenReferral]] = {}
        self._dead = 0
        self._set_rows([], [])

    def __len__(self) -> int:
        return len(self._records) - self._dead + len(self._tail)

    def add(self, district: str, referral: OpenReferral) -> None:
        """File a referral not filed here (a new version is filed after the old one's discard)."""
        self._tail[referral.referral_id] = (
            district_number(district),
            required_bits(referral),
            referral,
        )

    def discard(self, district: str, referral_id: UUID) -> None:
        """Take out the referral whose home is `district`, if filed here."""
        if self._tail.pop(referral_id, None) is not None:
            return
        number = district_number(district)
        first, end = np.searchsorted(self._district, [number, number + 1]).tolist()
        high, low = divmod(referral_id.int, 1 << 64)
        rows = first + np.flatnonzero(
            (self._id_high[first:end] == high) & (self._id_low[first:end] == low)
        )
        for row in rows[self._alive[rows]].tolist():
            self._alive[row] = False
            self._dead += 1

    def __iter__(self) -> Iterator[OpenReferral]:
        """Every referral filed here."""
        self._settle()
        for row in np.flatnonzero(self._alive).tolist():
            yield self._records[row]
        for *_, referral in self._tail.values():
            yield referral

    def in_reach(self, code: str) -> Iterator[OpenReferral]:
        """Each referral a match of a setting in district `code` examines: those whose homes are
        in the runs of districts in reach, in the columns or new."""
        self._settle()
        for row in self._rows_in_runs(code)[0].tolist():
            yield self._records[row]
        firsts, lasts = runs_in_reach(code)
        for number, _, referral in self._tail.values():
            if np.any((firsts <= number) & (number <= lasts)):
                yield referral

    def fitting(self, vacancy: OpenVacancy, code: str) -> Nearby:
        """The referrals whose homes are within 20 miles of the vacancy's district `code` and
        which meet rule 1 with it, by distance then id, with their distances; the placement type
        is the columns' own."""
        self._settle()
        tenths = tenths_in_reach(code)
        rows = self._meeting_rule_1(self._rows_in_runs(code)[0], vacancy)
        distance = tenths[self._district[rows]]
        rows, distance = rows[distance != NOT_IN_REACH], distance[distance != NOT_IN_REACH]
        # A tenth's float is the one `round(miles, 1)` gives: both are the nearest to the decimal.
        return self._in_order(rows, distance, distance / 10, vacancy, code, in_reach=True)

    def fitting_farther(self, vacancy: OpenVacancy, code: str) -> Nearby:
        """The referrals whose homes are more than 20 miles from the vacancy's district `code`,
        of another council than the setting's, which meet rule 1 with it, by distance then id,
        with their distances: among the referrals searching a region, those the regional
        widening finds (the setting's own council's are local, and found through it)."""
        self._settle()
        tenths = tenths_in_reach(code)
        rows = self._meeting_rule_1(np.flatnonzero(self._alive), vacancy)
        rows = rows[
            (tenths[self._district[rows]] == NOT_IN_REACH)
            & (self._council[rows] != council_number(vacancy.authority_code))
        ]
        homes, each = np.unique(self._district[rows], return_inverse=True)
        miles = np.array(
            [rounded_miles(district_of_number(home), code) for home in homes.tolist()],
            dtype=np.float64,
        )[each]
        return self._in_order(rows, miles, miles, vacancy, code, in_reach=False)

    def _meeting_rule_1(self, rows: Numbers, vacancy: OpenVacancy) -> Numbers:
        """Those of the rows still open whose referrals meet rule 1 with the vacancy."""
        rows = rows[(self._bits[rows] & np.uint64(missing_bits(vacancy))) == 0]
        age = self._age[rows]
        return rows[
            self._alive[rows]
            & (age >= vacancy.age_min)
            & (age <= vacancy.age_max)
            & (self._group[rows] <= vacancy.beds)
            & (self._needed_by[rows] >= vacancy.available_from.toordinal())
        ]

    def _in_order(  # noqa: PLR0913 - the rows found, and how the new referrals are to be
        self,
        rows: Numbers,
        order_by: npt.NDArray[np.int16] | npt.NDArray[np.float64],
        miles: npt.NDArray[np.float64],
        vacancy: OpenVacancy,
        code: str,
        *,
        in_reach: bool,
    ) -> Nearby:
        """The rows' referrals and miles by distance then id, with the new referrals that fit
        (within 20 miles of `code`, or beyond them) put in their places."""
        ordered = np.lexsort((self._id_low[rows], self._id_high[rows], order_by))
        found_miles: list[float] = miles[ordered].tolist()
        referrals: list[OpenReferral] = self._records[rows[ordered]].tolist()
        for distance_miles, referral in self._tail_fitting(vacancy, code, in_reach=in_reach):
            place = bisect_right(
                range(len(referrals)),
                (distance_miles, referral.referral_id.int),
                key=lambda row: (found_miles[row], referrals[row].referral_id.int),
            )
            found_miles.insert(place, distance_miles)
            referrals.insert(place, referral)
        return found_miles, referrals

    def _tail_fitting(
        self, vacancy: OpenVacancy, code: str, *, in_reach: bool
    ) -> Iterator[tuple[float, OpenReferral]]:
        """The new referrals that meet rule 1 with the vacancy, within 20 miles of `code` or
        beyond them and of another council than the setting's, each with its distance."""
        tenths = tenths_in_reach(code)
        missing = missing_bits(vacancy)
        for number, bits, referral in self._tail.values():
            if not (
                not bits & missing
                and vacancy.age_min <= referral.age <= vacancy.age_max
                and referral.sibling_group_size <= vacancy.beds
                and vacancy.available_from <= referral.needed_by
            ):
                continue
            distance = int(tenths[number])
            if in_reach and distance != NOT_IN_REACH:
                yield distance / 10, referral
            elif (
                not in_reach
                and distance == NOT_IN_REACH
                and referral.authority_code != vacancy.authority_code
            ):
                yield rounded_miles(district_of_number(number), code), referral

    def _rows_in_runs(self, code: str) -> tuple[Numbers, int]:
        firsts, lasts = runs_in_reach(code)
        starts = np.searchsorted(self._district, firsts, side="left").tolist()
        ends = np.searchsorted(self._district, lasts, side="right").tolist()
        spans = [np.arange(start, end) for start, end in zip(starts, ends, strict=True)]
        rows = np.concatenate(spans) if spans else np.empty(0, dtype=np.int64)
        return rows, len(rows)

    def settle(self) -> None:
        """Rebuild the arrays with every new referral and without any closed one."""
        if self._tail or self._dead:
            self._rebuild()

    def _settle(self) -> None:
        """Rebuild the arrays when the new referrals or the closed rows have grown too many."""
        if len(self._tail) > self._tail_limit or self._dead * _DEAD_SHARE > max(
            self._tail_limit, len(self._records)
        ):
            self._rebuild()

    def _rebuild(self) -> None:
        alive = self._alive
        kept = [self._records[row] for row in np.flatnonzero(alive).tolist()]
        numbers = self._district[alive].tolist()
        for number, _, referral in self._tail.values():
            numbers.append(number)
            kept.append(referral)
        self._tail = {}
        self._dead = 0
        self._set_rows(numbers, kept)

    def _set_rows(self, numbers: list[int], referrals: list[OpenReferral]) -> None:
        ids = [referral.referral_id.int for referral in referrals]
        district = np.array(numbers, dtype=np.int64)
        id_high = np.array([number >> 64 for number in ids], dtype=np.uint64)
        id_low = np.array([number & ((1 << 64) - 1) for number in ids], dtype=np.uint64)
        order = np.lexsort((id_low, id_high, district))
        self._district = district[order]
        self._id_high = id_high[order]
        self._id_low = id_low[order]
        records = np.empty(len(referrals), dtype=object)
        records[:] = referrals
        self._records = records[order]
        self._bits = np.array([required_bits(r) for r in referrals], dtype=np.uint64)[order]
        self._needed_by = np.array([r.needed_by.toordinal() for r in referrals], dtype=np.int64)[
            order
        ]
        self._age = np.array([r.age for r in referrals], dtype=np.int64)[order]
        self._group = np.array([r.sibling_group_size for r in referrals], dtype=np.int64)[order]
        self._council = np.array(
            [council_number(r.authority_code) for r in referrals], dtype=np.int64
        )[order]
        self._alive = np.ones(len(referrals), dtype=bool)
