"""How long matching one new vacancy or referral takes against a national population.

Builds a CandidateIndex of open referrals and vacancies spread over England's postcode districts,
then times `referrals_fitting` for new vacancies and `vacancies_fitting` for new referrals, and
counts the candidates each match examined against the population it would otherwise scan.

    .venv/bin/python bench/alerting/bench_matching.py [--seed 1]
"""

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TypeVar
from uuid import UUID

from contracts import geography
from contracts.enums import Need, OfstedRating, PlacementType, SearchScope, Sex
from services.alerting.candidate_index import CandidateIndex
from services.alerting.matching import Fit, OpenReferral, OpenVacancy

Query = TypeVar("Query")

TARGET_P99_MS = 5.0
TODAY = date(2026, 11, 23)

# Roughly England's mix: most children are fostered, most of the rest in children's homes.
PLACEMENT_TYPE_WEIGHTS = {
    PlacementType.FOSTER_CARE_IFA: 32,
    PlacementType.FOSTER_CARE_IN_HOUSE: 30,
    PlacementType.CHILDRENS_HOME: 22,
    PlacementType.SUPPORTED_ACCOMMODATION: 6,
    PlacementType.PARENT_AND_CHILD: 3,
    PlacementType.RESIDENTIAL_SPECIAL_SCHOOL: 2,
    PlacementType.SHORT_BREAKS: 2,
    PlacementType.SUPPORTED_LODGINGS: 2,
    PlacementType.SECURE_CHILDRENS_HOME: 1,
}
RATING_WEIGHTS = {
    OfstedRating.OUTSTANDING: 15,
    OfstedRating.GOOD: 58,
    OfstedRating.REQUIRES_IMPROVEMENT: 15,
    OfstedRating.INADEQUATE: 4,
    OfstedRating.NOT_YET_INSPECTED: 8,
}
FOSTERING = (PlacementType.FOSTER_CARE_IFA, PlacementType.FOSTER_CARE_IN_HOUSE)
# Needs a child may have on its own; a sibling group's and a solo placement's come with the group
# size and the setting's occupancy.
PLAIN_NEEDS: tuple[Need, ...] = tuple(
    need for need in Need if need not in {Need.SIBLING_GROUP, Need.SOLO_PLACEMENT}
)


@dataclass(frozen=True)
class Population:
    referrals: list[OpenReferral]
    vacancies: list[OpenVacancy]


class Generator:
    """Random open referrals and vacancies over England's postcode districts."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)
        self._districts = geography.districts()
        self._regions = {c.code: c.region_code for c in geography.councils()}
        self._next_id = 0

    def _id(self) -> UUID:
        self._next_id += 1
        return UUID(int=self._next_id)

    def _placement_type(self) -> PlacementType:
        types = list(PLACEMENT_TYPE_WEIGHTS)
        return self._random.choices(types, list(PLACEMENT_TYPE_WEIGHTS.values()))[0]

    def referral(self) -> OpenReferral:
        pick = self._random
        home = pick.choice(self._districts)
        wanted = {self._placement_type()}
        if wanted & set(FOSTERING) and pick.random() < 0.6:
            wanted |= set(FOSTERING)  # in-house or agency carers, whichever is free
        if pick.random() < 0.15:
            wanted.add(PlacementType.CHILDRENS_HOME)
        age = pick.randint(16, 17) if PlacementType.SUPPORTED_ACCOMMODATION in wanted else None
        siblings = pick.choice((2, 2, 3)) if pick.random() < 0.08 else 1
        needs: set[Need] = set(pick.sample(PLAIN_NEEDS, pick.randint(0, 3)))
        if siblings > 1:
            needs.add(Need.SIBLING_GROUP)
        elif pick.random() < 0.03:
            needs.add(Need.SOLO_PLACEMENT)
        return OpenReferral(
            referral_id=self._id(),
            authority_code=home.authority_code,
            region_code=self._regions[home.authority_code],
            home_postcode_district=home.code,
            age=age if age is not None else pick.randint(0, 17),
            sex=pick.choices((Sex.FEMALE, Sex.MALE, Sex.OTHER), (48, 50, 2))[0],
            needs=frozenset(needs),
            sibling_group_size=siblings,
            placement_types=frozenset(wanted),
            needed_by=TODAY + timedelta(pick.randint(0, 60)),
            min_ofsted_rating=pick.choices(
                (OfstedRating.GOOD, OfstedRating.REQUIRES_IMPROVEMENT), (80, 20)
            )[0],
            accept_not_yet_inspected=pick.random() < 0.3,
            search_scope=SearchScope.REGIONAL if pick.random() < 0.15 else SearchScope.LOCAL,
        )

    def vacancy(self) -> OpenVacancy:
        pick = self._random
        place = pick.choice(self._districts)
        placement_type = self._placement_type()
        if placement_type is PlacementType.SUPPORTED_ACCOMMODATION:
            age_min, age_max = 16, 17
        else:
            age_min = pick.randint(0, 12)
            age_max = pick.randint(max(age_min, 11), 17)
        needs_met: set[Need] = set(pick.sample(PLAIN_NEEDS, pick.randint(2, 10)))
        beds = pick.choices((1, 2, 3), (75, 18, 7))[0]
        if beds > 1 and pick.random() < 0.5:
            needs_met.add(Need.SIBLING_GROUP)
        has_other_children = pick.random() < 0.6
        if not has_other_children and pick.random() < 0.3:
            needs_met.add(Need.SOLO_PLACEMENT)
        return OpenVacancy(
            vacancy_id=self._id(),
            setting_id=self._id(),
            authority_code=place.authority_code,
            postcode_district=place.code,
            region_code=self._regions[place.authority_code],
            placement_type=placement_type,
            ofsted_rating=pick.choices(list(RATING_WEIGHTS), list(RATING_WEIGHTS.values()))[0],
            age_min=age_min,
            age_max=age_max,
            sexes_accepted=pick.choice(
                (
                    frozenset(Sex),
                    frozenset({Sex.FEMALE, Sex.MALE}),
                    frozenset({Sex.FEMALE}),
                    frozenset({Sex.MALE}),
                )
            ),
            needs_met=frozenset(needs_met),
            beds=beds,
            available_from=TODAY + timedelta(pick.randint(0, 30)),
            setting_has_other_children=has_other_children,
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
