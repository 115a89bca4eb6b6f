"""Open referrals and vacancies filed by placement type and district, so a match looks only nearby.

A new vacancy is matched against the referrals of its placement type whose home district is within
20 miles of the setting's, whose council is the setting's, or whose regional search covers the
setting's region; a new referral, symmetrically. The cost of one match grows with the candidates in
reach, not with the national total. Pure data structures; no I/O.

Each kind of record is filed three ways, each as columns by district (columns.py): by placement
type, where a match takes those within 20 miles; by placement type and council, where it takes
those of the council farther off; and by placement type and region, where it takes those a
regional search finds (the referrals searching their region; every vacancy, for a referral that
searches its region). A match checks rules 1 and 2 over each in a few array operations, ranks
every fit found with one sort, and builds a `Fit` only for a fit.
"""

from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, Generic, TypeVar
from uuid import UUID

from contracts.enums import SearchScope
from services.alerting.columns import (
    TAIL_LIMIT,
    Found,
    ReferralColumns,
    VacancyColumns,
    in_rank_order,
)
from services.alerting.matching import Fit, OpenReferral, OpenVacancy, fit_of, fits_of_vacancy
from services.alerting.reach import district_code, work_out

_R = TypeVar("_R", OpenReferral, OpenVacancy)
_C = TypeVar("_C", ReferralColumns, VacancyColumns)


class _Filed(Generic[_C]):
    """Columns by a key: a placement type, with a council or region or not."""

    __slots__ = ("_columns", "_make", "_none")

    def __init__(self, make: Callable[[], _C]) -> None:
        self._columns: dict[Hashable, _C] = {}
        self._make: Callable[[], _C] = make
        self._none: _C = make()

    def get(self, key: Hashable) -> _C:
        """The columns filed under the key; empty ones when there are none."""
        return self._columns.get(key, self._none)

    def of(self, key: Hashable) -> _C:
        """The columns under the key, made if there were none."""
        columns = self._columns.get(key)
        if columns is None:
            columns = self._columns[key] = self._make()
        return columns

    def discard(self, key: Hashable, district: str, record_id: UUID) -> None:
        columns = self._columns.get(key)
        if columns is not None:
            columns.discard(district, record_id)

    def settle(self) -> None:
        for columns in self._columns.values():
            columns.settle()


# Where a record is filed: the columns, their key there, and the record's district.
_Placement = tuple[_Filed[Any], Hashable, str]


def _index(
    records: dict[UUID, _R],
    record_id: UUID,
    record: _R,
    placements: Callable[[_R], Iterator[_Placement]],
) -> None:
    """File `record` by id and at each of its `placements`, replacing an earlier version."""
    where = list(placements(record))  # an unknown district raises here, before any change
    _unindex(records, record_id, placements)
    records[record_id] = record
    for filed, key, district in where:
        filed.of(key).add(district, record)


def _unindex(
    records: dict[UUID, _R],
    record_id: UUID,
    placements: Callable[[_R], Iterator[_Placement]],
) -> _R | None:
    """The record taken out of `records` and its columns, or None when it was not there."""
    record = records.pop(record_id, None)
    if record is not None:
        for filed, key, district in placements(record):
            filed.discard(key, district, record_id)
    return record


class CandidateIndex:
    """The open referrals and open vacancies, filed by placement type and by district."""

    def __init__(self, tail_limit: int = TAIL_LIMIT) -> None:
        """`tail_limit`: how many new records a set of columns checks among the new ones before
        it is rebuilt with them (columns.py)."""
        self._vacancies: dict[UUID, OpenVacancy] = {}
        self._referrals: dict[UUID, OpenReferral] = {}

        def vacancies() -> VacancyColumns:
            return VacancyColumns(tail_limit)

        def referrals() -> ReferralColumns:
            return ReferralColumns(tail_limit)

        # By placement type; by (placement type, council); by (placement type, region).
        self._vacancies_by_type = _Filed(vacancies)
        self._vacancies_by_council = _Filed(vacancies)
        self._vacancies_by_region = _Filed(vacancies)
        self._referrals_by_type = _Filed(referrals)
        self._referrals_by_council = _Filed(referrals)
        # Only referrals searching their region: a local one is never reached through its region.
        self._regional_referrals_by_region = _Filed(referrals)

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

    def settle(self) -> None:
        """Put every new record into its columns' arrays now (after a load, say), not at the
        next match that looks there."""
        for filed in (
            self._vacancies_by_type,
            self._vacancies_by_council,
            self._vacancies_by_region,
            self._referrals_by_type,
            self._referrals_by_council,
            self._regional_referrals_by_region,
        ):
            filed.settle()

    # --- matching ---------------------------------------------------------------------------------

    def referrals_fitting(self, vacancy: OpenVacancy) -> list[Fit]:
        """The open referrals the vacancy fits, best first."""
        ranked = in_rank_order(list(self._referral_parts(vacancy)))
        local = sum(ranked.local)  # the local ones come first
        referrals: list[OpenReferral] = ranked.records  # type: ignore[assignment]
        return [
            *fits_of_vacancy(vacancy, referrals[:local], ranked.miles[:local], local=True),
            *fits_of_vacancy(vacancy, referrals[local:], ranked.miles[local:], local=False),
        ]

    def vacancies_fitting(self, referral: OpenReferral) -> list[Fit]:
        """The open vacancies that fit the referral, best first."""
        ranked = in_rank_order(list(self._vacancy_parts(referral)))
        vacancies: list[OpenVacancy] = ranked.records  # type: ignore[assignment]
        return [
            fit_of(referral, vacancy, miles, local=local)
            for local, miles, vacancy in zip(ranked.local, ranked.miles, vacancies, strict=True)
        ]

    def candidate_referrals(self, vacancy: OpenVacancy) -> list[OpenReferral]:
        """Each referral a match of the vacancy examines, once: of its placement type, in the runs
        of districts in reach (columns.py), of the setting's council, or searching its region."""
        here = district_code(vacancy.postcode_district)
        placement_type = vacancy.placement_type
        return _once(
            _referral_id,
            self._referrals_by_type.get(placement_type).in_runs(here),
            self._referrals_by_council.get((placement_type, vacancy.authority_code)),
            self._regional_referrals_by_region.get((placement_type, vacancy.region_code)),
        )

    def candidate_vacancies(self, referral: OpenReferral) -> list[OpenVacancy]:
        """Each vacancy a match of the referral examines, once: of a type it wants, in the runs of
        districts in reach, of the referring council, or (searching its region) in its region."""
        home = district_code(referral.home_postcode_district)
        regional = referral.search_scope is SearchScope.REGIONAL
        found: list[OpenVacancy] = []
        for placement_type in referral.placement_types:
            found += _once(
                _vacancy_id,
                self._vacancies_by_type.get(placement_type).in_runs(home),
                self._vacancies_by_council.get((placement_type, referral.authority_code)),
                self._vacancies_by_region.get((placement_type, referral.region_code))
                if regional
                else (),
            )
        return found

    # --- where a match looks ----------------------------------------------------------------------

    def _referral_parts(self, vacancy: OpenVacancy) -> Iterator[Found]:
        """The referrals that fit the vacancy: whose homes are within 20 miles of the setting; of
        the setting's council, farther off; searching the setting's region, farther off and of
        another council (the setting's own council's are local, and found through it)."""
        here = district_code(vacancy.postcode_district)
        placement_type = vacancy.placement_type
        yield self._referrals_by_type.get(placement_type).near(vacancy, here)
        yield self._referrals_by_council.get((placement_type, vacancy.authority_code)).beyond(
            vacancy, here, far=False, other_council_than=None
        )
        yield self._regional_referrals_by_region.get((placement_type, vacancy.region_code)).beyond(
            vacancy, here, far=True, other_council_than=vacancy.authority_code
        )

    def _vacancy_parts(self, referral: OpenReferral) -> Iterator[Found]:
        """The vacancies that fit the referral, of each type it wants: within 20 miles of home; in
        the referring council, farther off; for a regional search, in the referring council's
        region, farther off and in another council."""
        home = district_code(referral.home_postcode_district)
        regional = referral.search_scope is SearchScope.REGIONAL
        for placement_type in referral.placement_types:
            yield self._vacancies_by_type.get(placement_type).near(referral, home)
            yield self._vacancies_by_council.get((placement_type, referral.authority_code)).beyond(
                referral, home, far=False, other_council_than=None
            )
            if regional:
                yield self._vacancies_by_region.get((placement_type, referral.region_code)).beyond(
                    referral, home, far=True, other_council_than=referral.authority_code
                )

    # --- where each record is filed ---------------------------------------------------------------

    def _vacancy_placements(self, vacancy: OpenVacancy) -> Iterator[_Placement]:
        district = district_code(vacancy.postcode_district)
        work_out(district)  # as the record arrives, not at its first match
        placement_type = vacancy.placement_type
        yield self._vacancies_by_type, placement_type, district
        yield self._vacancies_by_council, (placement_type, vacancy.authority_code), district
        yield self._vacancies_by_region, (placement_type, vacancy.region_code), district

    def _referral_placements(self, referral: OpenReferral) -> Iterator[_Placement]:
        home = district_code(referral.home_postcode_district)
        work_out(home)
        regional = referral.search_scope is SearchScope.REGIONAL
        for placement_type in referral.placement_types:
            yield self._referrals_by_type, placement_type, home
            yield self._referrals_by_council, (placement_type, referral.authority_code), home
            if regional:
                yield (
                    self._regional_referrals_by_region,
                    (placement_type, referral.region_code),
                    home,
                )


def _once(key: Callable[[_R], UUID], *groups: Iterable[_R]) -> list[_R]:
    """The records of the groups, each once (a record may be in more than one)."""
    seen: dict[UUID, _R] = {}
    for group in groups:
        for record in group:
            seen.setdefault(key(record), record)
    return list(seen.values())


def _referral_id(referral: OpenReferral) -> UUID:
    return referral.referral_id


def _vacancy_id(vacancy: OpenVacancy) -> UUID:
    return vacancy.vacancy_id
