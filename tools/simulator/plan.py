"""The plan: a deterministic sequence of requests from a seed and a simulated clock.

Phase one seeds the area: every council's settings, the placements that fill most of their
places, the vacancies offered on the rest, and a few open referrals. Phase two is an event loop on
a simulated clock: referrals arrive, are matched to fitting vacancies (a placement starts, the
vacancy is withdrawn as filled, the referral closes as placed), widen, change or are given up;
placements end for realistic reasons; freed beds are offered again or filled by other routes;
vacancies are confirmed and withdrawn; homes are inspected, open and close.

Nothing here does I/O or reads the wall clock; all chance comes from one `random.Random(seed)`.
The plan assumes each request succeeds (the sender logs any that do not).
"""

import hashlib
import heapq
import random
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from contracts import geography
from contracts.enums import (
    RATING_RANK,
    Need,
    OfstedRating,
    PlacementEndReason,
    PlacementType,
    ReferralOutcome,
    SearchScope,
    Urgency,
    WithdrawalReason,
)
from tools.simulator.requests import Api, Kind, Phase, PlannedRequest, placeholder
from tools.synthetic import figures, population
from tools.synthetic.area import Area, children_looked_after
from tools.synthetic.figures import Provision
from tools.synthetic.population import FOSTERING, draw
from tools.synthetic.world import (
    SimPlacement,
    SimReferral,
    SimSetting,
    SimVacancy,
    fits,
    is_local,
)

DEFAULT_START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
# Open referrals at the start, per looked-after child (about what the steady state keeps open).
OPEN_REFERRALS_PER_CHILD = 0.02
CONFIRM_EVERY = timedelta(days=7)
# How long a local search lasts before the council widens it (as the authority's defaults).
WIDEN_AFTER = {True: timedelta(hours=4), False: timedelta(days=5)}

Action = Callable[[], Iterator[PlannedRequest]]
T = TypeVar("T")

CHILDRENS_HOME = PlacementType.CHILDRENS_HOME
_SIZES = {
    "in_house_homes": {2: 1, 3: 2, 4: 3, 5: 3, 6: 1},
    "supported": {1: 10, 2: 15, 3: 20, 4: 20, 5: 15, 6: 10, 7: 5, 8: 5},
    "schools": {6: 1, 8: 2, 10: 2, 12: 2, 14: 1, 16: 1},
    "short_breaks": {4: 1, 5: 2, 6: 2},
}

# What each kind of request that creates a record posts to, and the field its id comes back in.
_CREATES = {
    Kind.REGISTER_SETTING: ("/v1/settings", "setting_id"),
    Kind.POST_VACANCY: ("/v1/vacancies", "vacancy_id"),
    Kind.START_PLACEMENT: ("/v1/placements", "placement_id"),
    Kind.OPEN_REFERRAL: ("/v1/referrals", "referral_id"),
}


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """What determines the plan: the area, the seed, the scale and the simulated start."""

    area: Area
    seed: int
    scale: float = 1.0
    start: datetime = DEFAULT_START

    @property
    def run_id(self) -> str:
        """Part of every Idempotency-Key: a rerun of the same plan repeats the same keys."""
        text = f"{self.area.id}|{self.seed}|{self.scale}|{self.start.isoformat()}"
        return hashlib.sha256(text.encode()).hexdigest()[:10]


@dataclass(frozen=True, slots=True)
class Market:
    """One council's settings, by kind."""

    independent_homes: Provision
    in_house_homes: Provision
    in_house_households: int
    ifa_households: int
    supported_accommodation: Provision
    schools: Provision
    short_breaks: Provision


def _provision(places: float, mean_size: float) -> Provision:
    total = round(places)
    return Provision(max(round(total / mean_size), 1) if total else 0, total)


def _scaled(provision: Provision, scale: float) -> Provision:
    settings = round(provision.settings * scale)
    return Provision(settings, max(round(provision.places * scale), settings))


def market_of(council: geography.Council, scale: float) -> Market:
    """The council's settings: the seeds' own counts where they give them, else the generic rule."""
    children = children_looked_after(council.code) * scale
    fostered = figures.FOSTERED_SHARE_BY_COUNCIL.get(council.code, figures.FOSTERED_SHARE)
    households = round(
        children
        * fostered
        * figures.FOSTERED_THROUGH_THE_EXCHANGE
        / figures.CHILDREN_PER_FOSTERING_HOUSEHOLD
    )
    in_house_share = figures.IN_HOUSE_FOSTERING_SHARE_BY_COUNCIL.get(
        council.code, figures.IN_HOUSE_FOSTERING_SHARE
    )
    per_child_in_homes = figures.HOME_PLACES_PER_CHILD_IN_HOMES_BY_REGION.get(
        council.region_code, figures.HOME_PLACES_PER_CHILD_IN_HOMES
    )
    home_places = children * figures.IN_HOMES_SHARE * per_child_in_homes
    in_house_places = home_places * figures.IN_HOUSE_HOME_PLACES_SHARE
    generic = Market(
        independent_homes=_provision(home_places - in_house_places, 3.4),
        in_house_homes=_provision(in_house_places, 4),
        in_house_households=round(households * in_house_share),
        ifa_households=households - round(households * in_house_share),
        supported_accommodation=_provision(
            children * figures.SUPPORTED_ACCOMMODATION_PLACES_PER_CHILD, 4
        ),
        schools=_provision(children * figures.SCHOOL_PLACES_PER_CHILD, 10),
        short_breaks=_provision(children * figures.SHORT_BREAK_PLACES_PER_CHILD, 5),
    )
    known = figures.KNOWN_MARKETS.get(council.code)
    if known is None:
        return generic

    def scaled_or_generic(provision: Provision | None, fallback: Provision) -> Provision:
        return fallback if provision is None else _scaled(provision, scale)

    def households_or_generic(count: int | None, fallback: int) -> int:
        return fallback if count is None else round(count * scale)

    return Market(
        independent_homes=_scaled(known.independent_homes, scale),
        in_house_homes=_scaled(known.in_house_homes, scale),
        in_house_households=households_or_generic(
            known.in_house_households, generic.in_house_households
        ),
        ifa_households=households_or_generic(known.ifa_households, generic.ifa_households),
        supported_accommodation=scaled_or_generic(
            known.supported_accommodation, generic.supported_accommodation
        ),
        schools=scaled_or_generic(known.schools, generic.schools),
        short_breaks=scaled_or_generic(known.short_breaks, generic.short_breaks),
    )


class Planner:
    """Generates the plan's requests, keeping the simulated state they create."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        # Not for secrets: a seeded generator is the point, so that a seed replays its plan.
        self.rng = random.Random(config.seed)  # noqa: S311
        self.now = config.start
        self.phase = Phase.SEED
        self.settings: dict[str, SimSetting] = {}
        self.vacancies: dict[str, SimVacancy] = {}  # open ones
        self.referrals: dict[str, SimReferral] = {}  # open ones
        self._by_kind: dict[tuple[str, PlacementType], list[SimSetting]] = defaultdict(list)
        self._step = 0
        self._handles: dict[str, int] = defaultdict(int)
        self._queue: list[tuple[datetime, int, Action]] = []
        self._queued = 0
        self._names = population.ProviderNames()
        self._groups: dict[str, list[str]] = defaultdict(list)
        self._group_sizes: dict[str, int] = defaultdict(int)
        self._provider_ratings: dict[str, OfstedRating] = {}
        self._references: dict[str, int] = defaultdict(int)

    # --- plumbing ---------------------------------------------------------------------------------

    @property
    def today(self) -> date:
        return self.now.date()

    def _handle(self, kind: str) -> str:
        self._handles[kind] += 1
        return f"{kind}-{self._handles[kind]}"

    def _request(  # noqa: PLR0913 - the parts of an HTTP request, named
        self,
        kind: Kind,
        org: str,
        path: str,
        body: Mapping[str, Any],
        *,
        lane: str,
        method: str = "POST",
        creates: str | None = None,
        id_field: str | None = None,
    ) -> PlannedRequest:
        self._step += 1
        api = Api.AUTHORITY if path.startswith("/v1/referrals") else Api.PROVIDER
        return PlannedRequest(
            step=self._step,
            at=self.now,
            phase=self.phase,
            kind=kind,
            api=api,
            org=org,
            method=method,
            path=path,
            body=body,
            idempotency_key=f"sim-{self.config.run_id}-{self._step}",
            lane=lane,
            creates=creates,
            id_field=id_field,
        )

    def _create(
        self, kind: Kind, org: str, body: Mapping[str, Any], handle: str, *, lane: str | None = None
    ) -> PlannedRequest:
        """The POST that creates the record `handle` stands for, at its kind's path, in `lane`
        (by default its own: a setting's or a referral's history starts with it)."""
        path, id_field = _CREATES[kind]
        lane = handle if lane is None else lane
        return self._request(kind, org, path, body, lane=lane, creates=handle, id_field=id_field)

    def _at(self, when: datetime, action: Action) -> None:
        self._queued += 1
        heapq.heappush(self._queue, (max(when, self.now), self._queued, action))

    def _after(self, delay: timedelta, action: Action) -> None:
        self._at(self.now + delay, action)

    def _days(self, low: float, high: float) -> timedelta:
        return timedelta(days=self.rng.uniform(low, high))

    def _exponential_days(self, mean: float) -> timedelta:
        return timedelta(days=self.rng.expovariate(1 / mean))

    # --- the two phases ---------------------------------------------------------------------------

    def seed(self) -> list[PlannedRequest]:
        """The baseline: every council's settings, placements, vacancies and open referrals.

        Planned council by council, then sent interleaved so that every council fills up at the
        same pace, each starting with its open referrals: a region's seed takes minutes to send,
        and this way a minute into a demo every council has capacity, and the referrals are
        alerted to fitting vacancies as those are posted (not only once the seed is over).
        """
        councils = self.config.area.councils
        markets = [list(self._seed_council(council)) for council in councils]
        referrals = [
            [
                request
                for _ in range(self._open_referrals_at_the_start(council))
                for request in self._open_referral(council.code)
            ]
            for council in councils
        ]
        return evenly_interleaved(
            [[*opened, *market] for opened, market in zip(referrals, markets, strict=True)]
        )

    def _open_referrals_at_the_start(self, council: geography.Council) -> int:
        return round(
            children_looked_after(council.code) * self.config.scale * OPEN_REFERRALS_PER_CHILD
        )

    def steady(self) -> Iterator[PlannedRequest]:
        """The dynamics, forever: take the next event off the simulated clock and act on it."""
        self.phase = Phase.STEADY
        self._start_processes()
        while self._queue:
            when, _, action = heapq.heappop(self._queue)
            self.now = when
            yield from action()

    # --- seeding ----------------------------------------------------------------------------------

    def _settings_of(self, market: Market) -> list[tuple[PlacementType, str, int]]:
        """Each setting of the market: its type, the kind of provider running it, its places."""
        sized = (
            (market.independent_homes, figures.HOME_PLACES_WEIGHTS, CHILDRENS_HOME, "homes"),
            (market.in_house_homes, _SIZES["in_house_homes"], CHILDRENS_HOME, "in_house"),
            (market.schools, _SIZES["schools"], PlacementType.RESIDENTIAL_SPECIAL_SCHOOL, "school"),
            (market.short_breaks, _SIZES["short_breaks"], PlacementType.SHORT_BREAKS, "in_house"),
            (
                market.supported_accommodation,
                _SIZES["supported"],
                PlacementType.SUPPORTED_ACCOMMODATION,
                "supported",
            ),
        )
        found = [
            (placement_type, provider_kind, places)
            for provision, weights, placement_type, provider_kind in sized
            for places in self._sizes(provision, weights)
        ]
        households = (
            (market.in_house_households, PlacementType.FOSTER_CARE_IN_HOUSE, "in_house"),
            (market.ifa_households, PlacementType.FOSTER_CARE_IFA, "fostering"),
        )
        found.extend(
            (placement_type, provider_kind, draw(self.rng, figures.FOSTER_PLACES_WEIGHTS))
            for count, placement_type, provider_kind in households
            for _ in range(count)
        )
        return found

    def _seed_council(self, council: geography.Council) -> Iterator[PlannedRequest]:
        market = market_of(council, self.config.scale)
        for placement_type, provider_kind, places in self._settings_of(market):
            provider_id = self._provider_for(council.code, provider_kind)
            setting = self._new_setting(council.code, placement_type, places, provider_id)
            yield self._register(setting)
            yield from self._seed_placements(setting)
            offered = figures.BY_TYPE[placement_type].offered * figures.OFFERED_AT_THE_START
            if setting.room_to_offer and self.rng.random() < offered:
                yield from self._post_vacancy(setting, self.today + self._days(-7, 14))
            elif setting.room_to_offer:
                gap = self._exponential_days(figures.BY_TYPE[placement_type].mean_empty_days)
                self._after(gap, partial(self._fill_directly, setting))

    def _sizes(self, provision: Provision, weights: Mapping[int, float]) -> list[int]:
        return population.sizes_to_total(self.rng, provision.settings, provision.places, weights)

    def _provider_for(self, council_code: str, kind: str) -> str:
        """The organisation running a new setting: the council itself or an independent group."""
        if kind == "in_house":
            return population.in_house_provider(council_code)
        # Groups grow by preferential attachment: a few big ones, many with one or two settings.
        join_chance = {"homes": 0.5, "fostering": 0.8, "supported": 0.4, "school": 0.1}[kind]
        groups = self._groups[kind]
        group = population.pick_group(self.rng, groups, self._group_sizes, join_chance)
        if group is None:
            group = self._names.new(self.rng, kind)
            groups.append(group)
        self._group_sizes[group] += 1
        return group

    def _new_setting(
        self,
        council_code: str,
        placement_type: PlacementType,
        places: int,
        provider_id: str,
        rating: OfstedRating | None = None,
    ) -> SimSetting:
        terms = population.setting_terms(self.rng, placement_type, places)
        if rating is None:
            rating = self._rating_for(provider_id, placement_type)
        setting = SimSetting(
            handle=self._handle("setting"),
            provider_id=provider_id,
            council=council_code,
            district=population.home_district(self.rng, council_code),
            placement_type=placement_type,
            places=places,
            rating=rating,
            age_min=terms.age_min,
            age_max=terms.age_max,
            sexes=terms.sexes,
            needs=terms.needs,
        )
        self.settings[setting.handle] = setting
        self._by_kind[council_code, placement_type].append(setting)
        return setting

    def _rating_for(self, provider_id: str, placement_type: PlacementType) -> OfstedRating:
        # Ofsted grades a fostering service as a whole, so its households share its grade.
        if placement_type not in FOSTERING:
            return population.rating(self.rng, placement_type)
        if provider_id not in self._provider_ratings:
            self._provider_ratings[provider_id] = population.rating(self.rng, placement_type)
        return self._provider_ratings[provider_id]

    def _register(self, setting: SimSetting) -> PlannedRequest:
        body = {
            "placement_type": setting.placement_type.value,
            "registered_places": setting.places,
            "ofsted_rating": setting.rating.value,
            "age_min": setting.age_min,
            "age_max": setting.age_max,
            "sexes_accepted": [sex.value for sex in setting.sexes],
            "needs_met": [need.value for need in setting.needs],
            "postcode_district": setting.district,
            **(
                population.setting_profile(
                    f"{self.config.seed}|{setting.handle}",
                    setting.provider_id,
                    setting.placement_type,
                    setting.places,
                    setting.district,
                )
                or {}
            ),
        }
        return self._create(Kind.REGISTER_SETTING, setting.provider_id, body, setting.handle)

    def _others_share(self, setting: SimSetting) -> float:
        """The share of the setting's beds that children of other councils take."""
        if setting.provider_id == population.in_house_provider(setting.council):
            return (
                figures.BY_TYPE[setting.placement_type].others_share
                if setting.placement_type in (FOSTERING)
                else 0.0
            )
        if setting.placement_type is PlacementType.CHILDRENS_HOME:
            return figures.INDEPENDENT_HOMES_OTHERS_SHARE_BY_COUNCIL.get(
                setting.council, figures.BY_TYPE[PlacementType.CHILDRENS_HOME].others_share
            )
        return figures.BY_TYPE[setting.placement_type].others_share

    def _seed_placements(self, setting: SimSetting) -> Iterator[PlannedRequest]:
        occupied = figures.BY_TYPE[setting.placement_type].occupied
        beds = sum(1 for _ in range(setting.places) if self.rng.random() < occupied)
        if Need.SOLO_PLACEMENT in setting.needs:
            beds = min(beds, 1)
        groups = [1] * beds
        if beds >= 2 and Need.SIBLING_GROUP in setting.needs and self.rng.random() < 0.35:
            groups = [beds]
        mean_stay = figures.BY_TYPE[setting.placement_type].mean_stay_days
        for size in groups:
            age = population.resident_age(
                self.rng, setting.placement_type, setting.age_min, setting.age_max
            )
            started = self.today - timedelta(days=self.rng.uniform(0, min(mean_stay, age * 365)))
            council = population.placing_council(
                self.rng, setting.council, self._others_share(setting)
            )
            yield from self._start_placement(
                setting, council=council, beds=size, age=age, start_date=started
            )

    # --- settings and vacancies -------------------------------------------------------------------

    def _post_vacancy(
        self, setting: SimSetting, available_from: date, beds: int | None = None
    ) -> Iterator[PlannedRequest]:
        if beds is None:
            beds = 1
            if Need.SIBLING_GROUP in setting.needs and self.rng.random() < 0.5:
                beds = setting.room_to_offer
        beds = min(beds, setting.room_to_offer)
        if beds < 1:
            return
        vacancy = SimVacancy(
            handle=self._handle("vacancy"),
            setting=setting,
            beds=beds,
            available_from=available_from,
        )
        body: dict[str, Any] = {
            "setting_id": placeholder(setting.handle),
            "beds": beds,
            "available_from": available_from.isoformat(),
        }
        narrowing = self.rng.random()
        if narrowing < 0.2 and setting.age_max - setting.age_min >= 4:
            vacancy.age_min = self.rng.randint(setting.age_min + 1, setting.age_min + 3)
            body["age_min"] = vacancy.age_min
        elif narrowing < 0.3 and len(setting.sexes) > 1:
            vacancy.sexes = (self.rng.choice(setting.sexes),)
            body["sexes_accepted"] = [vacancy.sexes[0].value]
        setting.vacancies.append(vacancy)
        self.vacancies[vacancy.handle] = vacancy
        yield self._create(
            Kind.POST_VACANCY, setting.provider_id, body, vacancy.handle, lane=setting.handle
        )
        self._after(CONFIRM_EVERY + self._days(-1, 1), partial(self._confirm, vacancy))
        life = self._exponential_days(figures.BY_TYPE[setting.placement_type].mean_empty_days)
        self._after(life, partial(self._vacancy_fate, vacancy))
        if self.phase is Phase.STEADY:
            self._alert_referrals_fitting(vacancy)

    def _confirm(self, vacancy: SimVacancy) -> Iterator[PlannedRequest]:
        if not vacancy.open:
            return
        setting = vacancy.setting
        yield self._request(
            Kind.CONFIRM_VACANCY,
            setting.provider_id,
            f"/v1/vacancies/{placeholder(vacancy.handle)}/confirm",
            {},
            lane=setting.handle,
        )
        self._after(CONFIRM_EVERY + self._days(-1, 1), partial(self._confirm, vacancy))

    def _withdraw(self, vacancy: SimVacancy, reason: WithdrawalReason) -> PlannedRequest:
        vacancy.open = False
        vacancy.setting.vacancies.remove(vacancy)
        del self.vacancies[vacancy.handle]
        return self._request(
            Kind.WITHDRAW_VACANCY,
            vacancy.setting.provider_id,
            f"/v1/vacancies/{placeholder(vacancy.handle)}/withdraw",
            {"reason": reason.value},
            lane=vacancy.setting.handle,
        )

    def _vacancy_fate(self, vacancy: SimVacancy) -> Iterator[PlannedRequest]:
        """An offer not taken through the exchange: filled by another route, or taken back."""
        if not vacancy.open:
            return
        setting = vacancy.setting
        reason = draw(
            self.rng,
            {
                WithdrawalReason.FILLED_ELSEWHERE: 60,
                WithdrawalReason.NO_LONGER_AVAILABLE: 30,
                WithdrawalReason.OTHER: 10,
            },
        )
        yield self._withdraw(vacancy, reason)
        if reason is WithdrawalReason.FILLED_ELSEWHERE:
            yield from self._fill_directly(setting, vacancy.beds)
        else:
            self._bed_freed(setting)

    def _bed_freed(self, setting: SimSetting) -> None:
        """A bed is free: offered on the exchange after a while, or filled by another route."""
        if not setting.open:
            return
        if self.rng.random() < figures.BY_TYPE[setting.placement_type].offered:
            delay = (
                timedelta(hours=self.rng.uniform(2, 48))
                if setting.placement_type is PlacementType.SHORT_BREAKS
                else self._days(0, 5)
            )
            self._after(delay, partial(self._offer, setting))
        else:
            gap = self._exponential_days(figures.BY_TYPE[setting.placement_type].mean_empty_days)
            self._after(gap, partial(self._fill_directly, setting))

    def _offer(self, setting: SimSetting) -> Iterator[PlannedRequest]:
        if setting.open and setting.room_to_offer:
            yield from self._post_vacancy(setting, self.today + timedelta(self.rng.randint(0, 10)))

    def _fill_directly(self, setting: SimSetting, beds: int = 1) -> Iterator[PlannedRequest]:
        """A child placed without the exchange: often another region's child, by a direct call."""
        beds = min(beds, setting.room_to_offer)
        if not setting.open or beds < 1:
            return
        age = population.resident_age(
            self.rng, setting.placement_type, setting.age_min, setting.age_max
        )
        council = population.placing_council(self.rng, setting.council, self._others_share(setting))
        yield from self._start_placement(
            setting, council=council, beds=beds, age=age, start_date=self.today
        )

    def _start_placement(  # noqa: PLR0913 - the facts of a placement
        self,
        setting: SimSetting,
        *,
        council: str,
        beds: int,
        age: float,
        start_date: date,
        vacancy: SimVacancy | None = None,
    ) -> Iterator[PlannedRequest]:
        placement = SimPlacement(
            handle=self._handle("placement"),
            setting=setting,
            placing_authority=council,
            beds=beds,
            start_date=start_date,
        )
        setting.placements.append(placement)
        body: dict[str, Any] = {
            "setting_id": placeholder(setting.handle),
            "placing_authority_code": council,
            "start_date": start_date.isoformat(),
            "beds": beds,
        }
        if vacancy is not None:
            body["vacancy_id"] = placeholder(vacancy.handle)
        yield self._create(
            Kind.START_PLACEMENT, setting.provider_id, body, placement.handle, lane=setting.handle
        )
        self._schedule_end(placement, age)

    def _schedule_end(self, placement: SimPlacement, age: float) -> None:
        placement_type = placement.setting.placement_type
        stay = self._exponential_days(figures.BY_TYPE[placement_type].mean_stay_days)
        until_18 = timedelta(days=(18 - age) * 365.25)
        if stay >= until_18 and placement_type is not PlacementType.SHORT_BREAKS:
            reason = PlacementEndReason.TURNED_18
            stay = until_18
        else:
            reason = self._end_reason(placement_type, age + stay.days / 365.25)
        self._after(stay, partial(self._end_placement, placement, reason))

    def _end_reason(self, placement_type: PlacementType, age: float) -> PlacementEndReason:
        if placement_type is PlacementType.SHORT_BREAKS:
            kind = "short_breaks"
        elif placement_type in FOSTERING:
            kind = "family"
        else:
            kind = "residential"
        reason = draw(self.rng, figures.END_REASON_WEIGHTS[kind])
        # Adoption is for young children; special guardianship rarely for teenagers.
        if reason is PlacementEndReason.ADOPTION and age >= 5:
            reason = PlacementEndReason.SPECIAL_GUARDIANSHIP
        if reason is PlacementEndReason.SPECIAL_GUARDIANSHIP and age >= 14:
            reason = PlacementEndReason.RETURNED_HOME
        return reason

    def _end_placement(
        self, placement: SimPlacement, reason: PlacementEndReason
    ) -> Iterator[PlannedRequest]:
        if not placement.active:
            return
        yield self._end(placement, reason)
        self._bed_freed(placement.setting)

    def _end(self, placement: SimPlacement, reason: PlacementEndReason) -> PlannedRequest:
        placement.active = False
        setting = placement.setting
        setting.placements.remove(placement)
        end_date = max(self.today, placement.start_date)
        return self._request(
            Kind.END_PLACEMENT,
            setting.provider_id,
            f"/v1/placements/{placeholder(placement.handle)}/end",
            {"end_date": end_date.isoformat(), "reason": reason.value},
            lane=setting.handle,
        )

    # --- referrals --------------------------------------------------------------------------------

    def _open_referral(self, council_code: str) -> Iterator[PlannedRequest]:
        child = population.child_needing_a_home(self.rng)
        days_ahead = 0 if child.emergency else self.rng.randint(7, 42)
        referral = SimReferral(
            handle=self._handle("referral"),
            council=council_code,
            age=child.age,
            sex=child.sex,
            needs=child.needs,
            sibling_group_size=child.sibling_group_size,
            placement_types=child.placement_types,
            home_district=population.home_district(self.rng, council_code),
            needed_by=self.today + timedelta(days=days_ahead),
            emergency=child.emergency,
            min_rating=draw(
                self.rng, {OfstedRating.GOOD: 85, OfstedRating.REQUIRES_IMPROVEMENT: 15}
            ),
            accept_not_yet_inspected=self.rng.random() < 0.35,
        )
        self.referrals[referral.handle] = referral
        self._references[council_code] += 1
        reference = f"{council_code}-{self.config.run_id[:6]}-{self._references[council_code]:05d}"
        body = {
            "reference": reference,
            "age": referral.age,
            "sex": referral.sex.value,
            "needs": [need.value for need in referral.needs],
            "sibling_group_size": referral.sibling_group_size,
            "placement_types": [kind.value for kind in referral.placement_types],
            "home_postcode_district": referral.home_district,
            "needed_by": referral.needed_by.isoformat(),
            "urgency": (Urgency.EMERGENCY if referral.emergency else Urgency.PLANNED).value,
            "min_ofsted_rating": referral.min_rating.value,
            "accept_not_yet_inspected": referral.accept_not_yet_inspected,
            "search_scope": SearchScope.LOCAL.value,
        }
        yield self._create(Kind.OPEN_REFERRAL, council_code, body, referral.handle)
        first_look = (
            timedelta(hours=self.rng.uniform(0.5, 4)) if child.emergency else self._days(0.5, 3)
        )
        self._after(first_look, partial(self._try_match, referral))
        self._after(WIDEN_AFTER[child.emergency], partial(self._widen, referral))
        if self.rng.random() < 0.1:
            self._after(self._days(1, 10), partial(self._update_referral, referral))
        give_up = (
            self.now + self._days(2, 4)
            if child.emergency
            else datetime.combine(referral.needed_by, self.now.timetz()) + self._days(7, 28)
        )
        self._at(give_up, partial(self._give_up, referral))

    def _referral_path(self, referral: SimReferral, suffix: str = "") -> str:
        return f"/v1/referrals/{placeholder(referral.handle)}{suffix}"

    def _close_referral(
        self, referral: SimReferral, outcome: ReferralOutcome
    ) -> Iterator[PlannedRequest]:
        referral.open = False
        del self.referrals[referral.handle]
        yield self._request(
            Kind.CLOSE_REFERRAL,
            referral.council,
            self._referral_path(referral, "/close"),
            {"outcome": outcome.value},
            lane=referral.handle,
        )

    def _candidates(self, referral: SimReferral) -> list[tuple[bool, float, int, SimVacancy]]:
        found = []
        for vacancy in self.vacancies.values():
            if not fits(vacancy, referral):
                continue
            local = is_local(vacancy.setting, referral)
            if referral.scope is SearchScope.LOCAL and not local:
                continue
            miles = geography.distance_miles(referral.home_district, vacancy.setting.district)
            rank = RATING_RANK.get(vacancy.setting.rating, 0)
            found.append((not local, round(miles, 1), -rank, vacancy))
        return found

    def _try_match(self, referral: SimReferral) -> Iterator[PlannedRequest]:
        """The home finder looks at what fits; with an offer accepted, the child moves in."""
        if not referral.open:
            return
        candidates = sorted(self._candidates(referral), key=lambda c: c[:3])
        if not candidates:
            retry = (
                timedelta(hours=self.rng.uniform(2, 6)) if referral.emergency else self._days(2, 5)
            )
            self._after(retry, partial(self._try_match, referral))
            return
        # Not always the nearest: the provider must accept, and the child's wishes count.
        vacancy = self.rng.choice(candidates[:3])[3]
        yield from self._place(referral, vacancy)

    def _place(self, referral: SimReferral, vacancy: SimVacancy) -> Iterator[PlannedRequest]:
        setting = vacancy.setting
        start = max(self.today, vacancy.available_from)
        yield from self._start_placement(
            setting,
            council=referral.council,
            beds=referral.sibling_group_size,
            age=referral.age + self.rng.random(),
            start_date=start,
            vacancy=vacancy,
        )
        yield self._withdraw(vacancy, WithdrawalReason.FILLED)
        left = vacancy.beds - referral.sibling_group_size
        if left > 0 and setting.room_to_offer:
            yield from self._post_vacancy(setting, vacancy.available_from, left)
        yield from self._close_referral(referral, ReferralOutcome.PLACED)

    def _alert_referrals_fitting(self, vacancy: SimVacancy) -> None:
        """Home finders alerted to a new fitting vacancy look at it soon."""
        alerted = 0
        for referral in self.referrals.values():
            if alerted == 3:
                return
            if fits(vacancy, referral) and (
                referral.scope is SearchScope.REGIONAL or is_local(vacancy.setting, referral)
            ):
                alerted += 1
                delay = (
                    timedelta(hours=self.rng.uniform(0.5, 3))
                    if referral.emergency
                    else timedelta(hours=self.rng.uniform(2, 48))
                )
                self._after(delay, partial(self._try_match, referral))

    def _widen(self, referral: SimReferral) -> Iterator[PlannedRequest]:
        if not referral.open or referral.scope is SearchScope.REGIONAL:
            return
        referral.scope = SearchScope.REGIONAL
        yield self._request(
            Kind.UPDATE_REFERRAL,
            referral.council,
            self._referral_path(referral),
            {"search_scope": SearchScope.REGIONAL.value},
            lane=referral.handle,
            method="PATCH",
        )
        self._after(timedelta(hours=self.rng.uniform(1, 12)), partial(self._try_match, referral))

    def _update_referral(self, referral: SimReferral) -> Iterator[PlannedRequest]:
        """The plan for the child changes: needed later, or a need newly known."""
        if not referral.open:
            return
        if self.rng.random() < 0.6:
            referral.needed_by += timedelta(days=self.rng.randint(7, 21))
            body: dict[str, Any] = {"needed_by": referral.needed_by.isoformat()}
        else:
            extra = self.rng.choice((Need.SELF_HARM, Need.MISSING_EPISODES, Need.SEMH))
            referral.needs = tuple(sorted({*referral.needs, extra}))
            body = {"needs": [need.value for need in referral.needs]}
        yield self._request(
            Kind.UPDATE_REFERRAL,
            referral.council,
            self._referral_path(referral),
            body,
            lane=referral.handle,
            method="PATCH",
        )

    def _give_up(self, referral: SimReferral) -> Iterator[PlannedRequest]:
        """No home found through the exchange in time: placed by other means, or not needed."""
        if not referral.open:
            return
        outcome = draw(
            self.rng, {ReferralOutcome.WITHDRAWN: 55, ReferralOutcome.NO_LONGER_NEEDED: 45}
        )
        yield from self._close_referral(referral, outcome)

    # --- recurring processes ----------------------------------------------------------------------

    def _start_processes(self) -> None:
        for council in self.config.area.councils:
            yearly = children_looked_after(council.code) * self.config.scale
            per_day = yearly * figures.REFERRALS_PER_CHILD_PER_YEAR / 365
            if per_day > 0:
                self._every(per_day, partial(self._open_referral, council.code))
            for placement_type in PlacementType:
                count = len(self._by_kind.get((council.code, placement_type), ()))
                if not count:
                    continue
                turnover = figures.BY_TYPE[placement_type].turnover_per_year * count / 365
                self._every(turnover, partial(self._turnover, council.code, placement_type))
                if placement_type in figures.INSPECTED:
                    self._every(count / 365, partial(self._inspect, council.code, placement_type))

    def _every(self, per_day: float, action: Action) -> None:
        """`action` again and again, a Poisson process of `per_day` events a day."""

        def repeat() -> Iterator[PlannedRequest]:
            yield from action()
            self._after(timedelta(days=self.rng.expovariate(per_day)), repeat)

        self._after(timedelta(days=self.rng.expovariate(per_day)), repeat)

    def _an_open_setting(
        self, council_code: str, placement_type: PlacementType, empty_first: bool = False
    ) -> SimSetting | None:
        """One of the council's open settings of the type, drawn at random (among those with no
        placement if `empty_first` and there are any); None if it has none."""
        settings = [s for s in self._by_kind[council_code, placement_type] if s.open]
        if not settings:
            return None
        empty = [s for s in settings if not s.placements] if empty_first else []
        return self.rng.choice(empty or settings)

    def _inspect(
        self, council_code: str, placement_type: PlacementType
    ) -> Iterator[PlannedRequest]:
        setting = self._an_open_setting(council_code, placement_type)
        if setting is None:
            return
        rating = population.reinspected(self.rng, setting.rating)
        if rating is setting.rating:
            return
        setting.rating = rating
        yield self._request(
            Kind.UPDATE_SETTING,
            setting.provider_id,
            f"/v1/settings/{placeholder(setting.handle)}",
            {"ofsted_rating": rating.value},
            lane=setting.handle,
            method="PATCH",
        )

    def _turnover(
        self, council_code: str, placement_type: PlacementType
    ) -> Iterator[PlannedRequest]:
        """Provision opens and closes: about as many new settings as closures."""
        if self.rng.random() < 0.5:
            yield from self._open_new_setting(council_code, placement_type)
        else:
            yield from self._close_a_setting(council_code, placement_type)

    def _open_new_setting(
        self, council_code: str, placement_type: PlacementType
    ) -> Iterator[PlannedRequest]:
        if placement_type is PlacementType.CHILDRENS_HOME:
            kind, places = "homes", draw(self.rng, figures.HOME_PLACES_WEIGHTS)
        elif placement_type is PlacementType.RESIDENTIAL_SPECIAL_SCHOOL:
            kind, places = "school", draw(self.rng, _SIZES["schools"])
        elif placement_type is PlacementType.SUPPORTED_ACCOMMODATION:
            kind, places = "supported", draw(self.rng, _SIZES["supported"])
        elif placement_type is PlacementType.SHORT_BREAKS:
            kind, places = "in_house", draw(self.rng, _SIZES["short_breaks"])
        else:
            kind = (
                "in_house" if placement_type is PlacementType.FOSTER_CARE_IN_HOUSE else "fostering"
            )
            places = draw(self.rng, figures.FOSTER_PLACES_WEIGHTS)
        provider_id = self._provider_for(council_code, kind)
        rating = None if placement_type in FOSTERING else OfstedRating.NOT_YET_INSPECTED
        setting = self._new_setting(council_code, placement_type, places, provider_id, rating)
        yield self._register(setting)
        for _ in range(places):
            self._after(self._days(0, 14), partial(self._offer, setting))

    def _close_a_setting(
        self, council_code: str, placement_type: PlacementType
    ) -> Iterator[PlannedRequest]:
        # Foster carers mostly resign between children; homes close with children still there.
        setting = self._an_open_setting(council_code, placement_type, placement_type in FOSTERING)
        if setting is None:
            return
        for vacancy in list(setting.vacancies):
            yield self._withdraw(vacancy, WithdrawalReason.NO_LONGER_AVAILABLE)
        for placement in list(setting.placements):
            yield self._end(placement, PlacementEndReason.PLANNED_MOVE)
        setting.open = False
        yield self._request(
            Kind.CLOSE_SETTING,
            setting.provider_id,
            f"/v1/settings/{placeholder(setting.handle)}/close",
            {"closed_on": self.today.isoformat()},
            lane=setting.handle,
        )


def evenly_interleaved(streams: Sequence[Sequence[T]]) -> list[T]:
    """The streams merged so that each advances at its own even pace and all end together.

    Each stream keeps its order (so a setting's lane still starts with its registration); at
    any point of the result every stream has gone about the same share of the way.
    """
    placed = sorted(
        ((index + 0.5) / len(stream), number, index)
        for number, stream in enumerate(streams)
        for index in range(len(stream))
    )
    return [streams[number][index] for _, number, index in placed]


class Plan:
    """The whole plan: the seed phase (listed up front, so its size is known) and the dynamics.

    Iterate it once: the dynamics run on the planner's state.
    """

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self.planner = Planner(config)
        self.seed_requests = self.planner.seed()
        self._iterated = False

    def __iter__(self) -> Iterator[PlannedRequest]:
        if self._iterated:
            raise RuntimeError("a plan is iterated once; make a new one to start again")
        self._iterated = True
        return self._requests()

    def _requests(self) -> Iterator[PlannedRequest]:
        yield from self.seed_requests
        yield from self.planner.steady()


def plan(config: SimulationConfig) -> Plan:
    return Plan(config)
