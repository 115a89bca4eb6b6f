"""How long matching one new vacancy or referral takes against a national population.

For each population size, builds a CandidateIndex of open referrals and vacancies spread over
England's postcode districts (the synthetic world's open market, tools/synthetic/england.py),
then times `referrals_fitting` for new vacancies and `vacancies_fitting` for new referrals, counts
the candidates each match examined against the population it would otherwise scan, and prints a
PASS or FAIL line per target: a new vacancy's (and a new referral's) match p99 under 2 ms with
20,000 open referrals and under 5 ms with 100,000.

As the alerting service does after loading its book (`freeze_gc_after_load`), the population is
moved out of the garbage collector's sight before timing (`--no-freeze-gc` leaves it in); the
collections that ran during each series are counted, with the longest, so that a slow match can
be told from a collection.

    .venv/bin/python bench/alerting/bench_matching.py [--seed 1] [--referrals 20000 100000]
"""

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar
from uuid import UUID

from contracts import geography
from contracts.enums import Urgency
from contracts.events import ReferralOpened
from services.alerting.candidate_index import CandidateIndex
from services.alerting.matching import Fit, OpenReferral, OpenVacancy
from tools.synthetic.area import region_of
from tools.synthetic.england import OpenMarket

Query = TypeVar("Query")

# p99 of one match, by the number of open referrals (the targets on this machine).
TARGET_P99_MS = {20_000: 2.0, 100_000: 5.0}
TODAY = date(2026, 11, 23)


@dataclass(frozen=True)
class Population:
    referrals: list[OpenReferral]
    vacancies: list[OpenVacancy]


class Generator:
    """The synthetic world's open market over England, as the alerting service's index sees it."""

    def __init__(self, seed: int) -> None:
        self._market = OpenMarket(seed, TODAY)
        self._next_id = 0

    def _id(self) -> UUID:
        self._next_id += 1
        return UUID(int=self._next_id)

    def referral_opened(self, referral_id: UUID | None = None) -> ReferralOpened:
        """The open market's next referral, as its council announces it."""
        referral = self._market.referral()
        referral_id = referral_id or self._id()
        return ReferralOpened(
            referral_id=referral_id,
            authority_code=referral.council,
            reference=f"BENCH-{referral_id.hex[:12]}",
            age=referral.age,
            sex=referral.sex,
            needs=tuple(referral.needs),
            sibling_group_size=referral.sibling_group_size,
            placement_types=tuple(referral.placement_types),
            home_postcode_district=referral.home_district,
            needed_by=referral.needed_by,
            urgency=Urgency.PLANNED,
            min_ofsted_rating=referral.min_rating,
            accept_not_yet_inspected=referral.accept_not_yet_inspected,
            search_scope=referral.scope,
        )

    def referral(self) -> OpenReferral:
        return OpenReferral.from_event(self.referral_opened())

    def vacancy(self) -> OpenVacancy:
        vacancy = self._market.vacancy()
        setting = vacancy.setting
        return OpenVacancy(
            vacancy_id=self._id(),
            setting_id=self._id(),
            authority_code=setting.council,
            postcode_district=setting.district,
            region_code=region_of(setting.council),
            placement_type=setting.placement_type,
            ofsted_rating=setting.rating,
            age_min=setting.age_min if vacancy.age_min is None else vacancy.age_min,
            age_max=setting.age_max if vacancy.age_max is None else vacancy.age_max,
            sexes_accepted=frozenset(setting.sexes if vacancy.sexes is None else vacancy.sexes),
            needs_met=frozenset(setting.needs),
            beds=vacancy.beds,
            available_from=vacancy.available_from,
            setting_has_other_children=bool(setting.placements),
        )

    def population(self, referrals: int, vacancies: int) -> Population:
        return Population(
            referrals=[self.referral() for _ in range(referrals)],
            vacancies=[self.vacancy() for _ in range(vacancies)],
        )


@dataclass
class Collections:
    """The garbage collections that ran while a series of matches was timed."""

    pauses_ms: list[float] = field(default_factory=list)
    full: int = 0  # of the oldest generation, which walks every object not frozen
    _started: int = 0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter_ns()
            return
        self.pauses_ms.append((time.perf_counter_ns() - self._started) / 1e6)
        if info["generation"] == len(gc.get_threshold()) - 1:
            self.full += 1

    def report(self) -> str:
        if not self.pauses_ms:
            return "no garbage collection ran"
        return (
            f"{len(self.pauses_ms)} garbage collections ran ({self.full} full), "
            f"the longest {max(self.pauses_ms):.3f} ms"
        )


@contextmanager
def collections_watched() -> Iterator[Collections]:
    watched = Collections()
    gc.callbacks.append(watched)
    try:
        yield watched
    finally:
        gc.callbacks.remove(watched)


@dataclass(frozen=True)
class Timing:
    label: str
    millis: list[float]
    candidates: list[int]
    fits: list[int]
    population: int
    collections: Collections

    def percentile(self, share: float) -> float:
        return _percentile(self.millis, share)

    def report(self) -> str:
        examined = statistics.fmean(self.candidates)
        return (
            f"{self.label}: median {statistics.median(self.millis):.3f} ms, "
            f"p99 {self.percentile(0.99):.3f} ms, max {max(self.millis):.3f} ms; "
            f"candidates examined per match {examined:.0f} on average, "
            f"p99 {_percentile(self.candidates, 0.99):.0f}, max {max(self.candidates)} "
            f"of {self.population:,} ({100 * examined / self.population:.2f}%); "
            f"fits {statistics.fmean(self.fits):.1f} on average, max {max(self.fits)}; "
            f"{self.collections.report()}"
        )


def _percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def time_matches(
    label: str,
    queries: Sequence[Query],
    match: Callable[[Query], list[Fit]],
    candidates: Callable[[Query], Sequence[object]],
    population: int,
) -> Timing:
    millis, examined, found = [], [], []
    with collections_watched() as collections:
        for query in queries:
            started = time.perf_counter_ns()
            fits = match(query)
            millis.append((time.perf_counter_ns() - started) / 1e6)
            found.append(len(fits))
    examined = [len(candidates(query)) for query in queries]
    return Timing(label, millis, examined, found, population, collections)


def verdict(label: str, timing: Timing, target_ms: float | None) -> bool:
    """Print the PASS or FAIL line of one series (none without a target); whether it passed."""
    p99 = timing.percentile(0.99)
    if target_ms is None:
        print(f"no target for {label}: p99 {p99:.3f} ms")
        return True
    passed = p99 < target_ms
    print(f"{'PASS' if passed else 'FAIL'}: {label} p99 {p99:.3f} ms, target < {target_ms:g} ms")
    return passed


def run(  # noqa: PLR0913 - one population's sizes and the run's options
    seed: int, referrals: int, vacancies: int, queries: int, *, freeze: bool, target: float | None
) -> bool:
    """Build one population's index, time both kinds of match on it; whether both passed."""
    generator = Generator(seed)
    population = generator.population(referrals, vacancies)
    index = CandidateIndex()
    started = time.perf_counter()
    for referral in population.referrals:
        index.add_referral(referral)
    for vacancy in population.vacancies:
        index.add_vacancy(vacancy)
    index.settle()  # as the alerting service's book does once loaded
    built = time.perf_counter() - started
    print(
        f"index of {len(index.referrals):,} open referrals and {len(index.vacancies):,} open "
        f"vacancies over {len(geography.districts()):,} districts built in {built:.2f} s "
        f"(seed {seed}; garbage collector {'frozen' if freeze else 'not frozen'})"
    )
    new_vacancies = [generator.vacancy() for _ in range(queries)]
    new_referrals = [generator.referral() for _ in range(queries)]
    gc.collect()
    if freeze:
        gc.freeze()
    try:
        vacancy_timing = time_matches(
            f"{queries} new vacancies -> referrals_fitting",
            new_vacancies,
            index.referrals_fitting,
            index.candidate_referrals,
            len(index.referrals),
        )
        referral_timing = time_matches(
            f"{queries} new referrals -> vacancies_fitting",
            new_referrals,
            index.vacancies_fitting,
            index.candidate_vacancies,
            len(index.vacancies),
        )
    finally:
        gc.unfreeze()
    print(vacancy_timing.report())
    print(referral_timing.report())
    size = f"with {referrals:,} open referrals"
    return all(
        [
            verdict(f"a new vacancy's match {size}", vacancy_timing, target),
            verdict(f"a new referral's match {size}", referral_timing, target),
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--referrals",
        type=int,
        nargs="+",
        default=sorted(TARGET_P99_MS),
        help="open referrals in each population timed, one after another (default: 20000 100000)",
    )
    parser.add_argument("--vacancies", type=int, default=5_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument(
        "--target-ms", type=float, help="p99 target for every size (default: the issue's)"
    )
    parser.add_argument(
        "--no-freeze-gc",
        dest="freeze_gc",
        action="store_false",
        help="leave the population in the garbage collector's sight",
    )
    args = parser.parse_args(argv)

    passed = [
        run(
            args.seed,
            referrals,
            args.vacancies,
            args.queries,
            freeze=args.freeze_gc,
            target=args.target_ms or TARGET_P99_MS.get(referrals),
        )
        for referrals in args.referrals
    ]
    return 0 if all(passed) else 1


if __name__ == "__main__":
    sys.exit(main())
