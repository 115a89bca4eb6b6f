"""How long matching one new vacancy or referral takes against a national population.

Builds a CandidateIndex of open referrals and vacancies spread over England's postcode districts
(the synthetic world's open market, tools/synthetic/england.py), then times `referrals_fitting`
for new vacancies and `vacancies_fitting` for new referrals, and counts the candidates each match
examined against the population it would otherwise scan.

    .venv/bin/python bench/alerting/bench_matching.py [--seed 1]
"""

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TypeVar
from uuid import UUID

from contracts import geography
from contracts.enums import Urgency
from contracts.events import ReferralOpened
from services.alerting.candidate_index import CandidateIndex
from services.alerting.matching import Fit, OpenReferral, OpenVacancy
from tools.synthetic.area import region_of
from tools.synthetic.england import OpenMarket

Query = TypeVar("Query")

TARGET_P99_MS = 5.0
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


@dataclass(frozen=True)
class Timing:
    label: str
    millis: list[float]
    candidates: list[int]
    fits: list[int]
    population: int

    def percentile(self, share: float) -> float:
        ordered = sorted(self.millis)
        return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]

    def report(self) -> str:
        examined = statistics.fmean(self.candidates)
        return (
            f"{self.label}: median {statistics.median(self.millis):.3f} ms, "
            f"p99 {self.percentile(0.99):.3f} ms, max {max(self.millis):.3f} ms; "
            f"candidates examined {examined:.0f} on average (max {max(self.candidates)}) "
            f"of {self.population:,} ({100 * examined / self.population:.2f}%); "
            f"fits {statistics.fmean(self.fits):.1f} on average"
        )


def time_matches(
    label: str,
    queries: Sequence[Query],
    match: Callable[[Query], list[Fit]],
    candidates: Callable[[Query], Sequence[object]],
    population: int,
) -> Timing:
    millis, examined, found = [], [], []
    for query in queries:
        started = time.perf_counter_ns()
        fits = match(query)
        millis.append((time.perf_counter_ns() - started) / 1e6)
        examined.append(len(candidates(query)))
        found.append(len(fits))
    return Timing(label, millis, examined, found, population)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--referrals", type=int, default=20_000)
    parser.add_argument("--vacancies", type=int, default=5_000)
    parser.add_argument("--queries", type=int, default=1_000)
    args = parser.parse_args(argv)

    generator = Generator(args.seed)
    population = generator.population(args.referrals, args.vacancies)
    index = CandidateIndex()
    started = time.perf_counter()
    for referral in population.referrals:
        index.add_referral(referral)
    for vacancy in population.vacancies:
        index.add_vacancy(vacancy)
    built = time.perf_counter() - started
    print(
        f"index of {len(index.referrals):,} open referrals and {len(index.vacancies):,} open "
        f"vacancies over {len(geography.districts()):,} districts built in {built:.2f} s "
        f"(seed {args.seed})"
    )

    new_vacancies = [generator.vacancy() for _ in range(args.queries)]
    new_referrals = [generator.referral() for _ in range(args.queries)]
    timings = (
        time_matches(
            f"{args.queries} new vacancies -> referrals_fitting",
            new_vacancies,
            index.referrals_fitting,
            index.candidate_referrals,
            len(index.referrals),
        ),
        time_matches(
            f"{args.queries} new referrals -> vacancies_fitting",
            new_referrals,
            index.vacancies_fitting,
            index.candidate_vacancies,
            len(index.vacancies),
        ),
    )
    for timing in timings:
        print(timing.report())

    worst = max(timing.percentile(0.99) for timing in timings)
    verdict = "PASS" if worst < TARGET_P99_MS else "FAIL"
    print(f"{verdict}: worst p99 {worst:.3f} ms against a target of {TARGET_P99_MS:.0f} ms")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
