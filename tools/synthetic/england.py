"""An open market over all of England: open referrals and open vacancies, for matching at scale.

Unlike the simulator's plan this keeps no history: every referral and vacancy is drawn afresh,
anywhere in England, of any placement type, in the proportions of figures.ENGLAND_*. The matching
benchmarks turn them into the alerting service's view, or into events and API requests.
"""

import random
from datetime import date, timedelta

from contracts.enums import Need, OfstedRating, PlacementType, SearchScope, Sex
from tools.synthetic import figures
from tools.synthetic.area import england_districts
from tools.synthetic.population import (
    ALL_SEXES,
    FOSTERING,
    OLDEST,
    PLAIN_NEEDS,
    SUPPORTED_ACCOMMODATION_AGES,
    YOUNGEST,
    draw,
)
from tools.synthetic.world import SimPlacement, SimReferral, SimSetting, SimVacancy

_SEXES_OF_CHILDREN = {Sex.FEMALE: 48, Sex.MALE: 50, Sex.OTHER: 2}
_SEXES_ACCEPTED = (ALL_SEXES, (Sex.FEMALE, Sex.MALE), (Sex.FEMALE,), (Sex.MALE,))


class OpenMarket:
    """Draws open referrals and vacancies; the same seed and calls always draw the same ones.

    Every draw is made in a fixed order: reordering them would change what a seed draws, and with
    it a benchmark's population.
    """

    def __init__(self, seed: int, today: date) -> None:
        self._random = random.Random(seed)  # noqa: S311 - sample data, not secrets
        self.today = today
        self._districts = england_districts()
        self._numbers = {"referral": 0, "setting": 0, "vacancy": 0, "placement": 0}

    def _handle(self, kind: str) -> str:
        self._numbers[kind] += 1
        return f"{kind}-{self._numbers[kind]}"

    def referral(self) -> SimReferral:
        """A child waiting for a home somewhere in England, searching locally or regionally."""
        pick = self._random
        home = pick.choice(self._districts)
        wanted = {draw(pick, figures.ENGLAND_PLACEMENT_MIX)}
        if wanted & set(FOSTERING) and pick.random() < 0.6:
            wanted |= set(FOSTERING)  # in-house or agency carers, whichever is free
        if pick.random() < 0.15:
            wanted.add(PlacementType.CHILDRENS_HOME)
        age = (
            pick.randint(*SUPPORTED_ACCOMMODATION_AGES)
            if PlacementType.SUPPORTED_ACCOMMODATION in wanted
            else None
        )
        siblings = pick.choice((2, 2, 3)) if pick.random() < 0.08 else 1
        needs: set[Need] = set(pick.sample(PLAIN_NEEDS, pick.randint(0, 3)))
        if siblings > 1:
            needs.add(Need.SIBLING_GROUP)
        elif pick.random() < 0.03:
            needs.add(Need.SOLO_PLACEMENT)
        if age is None:
            age = pick.randint(YOUNGEST, OLDEST)
        sex = draw(pick, _SEXES_OF_CHILDREN)
        needed_by = self.today + timedelta(pick.randint(0, 60))
        min_rating = draw(pick, {OfstedRating.GOOD: 80, OfstedRating.REQUIRES_IMPROVEMENT: 20})
        accept_not_yet_inspected = pick.random() < 0.3
        scope = SearchScope.REGIONAL if pick.random() < 0.15 else SearchScope.LOCAL
        return SimReferral(
            handle=self._handle("referral"),
            council=home.authority_code,
            age=age,
            sex=sex,
            needs=tuple(sorted(needs)),
            sibling_group_size=siblings,
            placement_types=tuple(sorted(wanted)),
            home_district=home.code,
            needed_by=needed_by,
            emergency=False,
            min_rating=min_rating,
            accept_not_yet_inspected=accept_not_yet_inspected,
            scope=scope,
        )

    def vacancy(self) -> SimVacancy:
        """A vacancy at a setting of its own, which another child may already live in."""
        pick = self._random
        place = pick.choice(self._districts)
        placement_type = draw(pick, figures.ENGLAND_PLACEMENT_MIX)
        if placement_type is PlacementType.SUPPORTED_ACCOMMODATION:
            age_min, age_max = SUPPORTED_ACCOMMODATION_AGES
        else:
            age_min = pick.randint(YOUNGEST, 12)
            age_max = pick.randint(max(age_min, 11), OLDEST)
        needs_met: set[Need] = set(pick.sample(PLAIN_NEEDS, pick.randint(2, 10)))
        beds = draw(pick, {1: 75, 2: 18, 3: 7})
        if beds > 1 and pick.random() < 0.5:
            needs_met.add(Need.SIBLING_GROUP)
        has_other_children = pick.random() < 0.6
        if not has_other_children and pick.random() < 0.3:
            needs_met.add(Need.SOLO_PLACEMENT)
        rating = draw(pick, figures.ENGLAND_RATING_MIX)
        sexes = pick.choice(_SEXES_ACCEPTED)
        available_from = self.today + timedelta(pick.randint(0, 30))
        setting_handle = self._handle("setting")
        setting = SimSetting(
            handle=setting_handle,
            provider_id=f"provider-{self._numbers['setting']}",
            council=place.authority_code,
            district=place.code,
            placement_type=placement_type,
            places=beds + (1 if has_other_children else 0),
            rating=rating,
            age_min=age_min,
            age_max=age_max,
            sexes=sexes,
            needs=tuple(sorted(needs_met)),
        )
        if has_other_children:
            setting.placements.append(
                SimPlacement(
                    handle=self._handle("placement"),
                    setting=setting,
                    placing_authority=place.authority_code,
                    beds=1,
                    start_date=self.today,
                )
            )
        vacancy = SimVacancy(
            handle=self._handle("vacancy"),
            setting=setting,
            beds=beds,
            available_from=available_from,
        )
        setting.vacancies.append(vacancy)
        return vacancy
