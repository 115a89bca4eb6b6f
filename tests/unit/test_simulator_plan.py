"""The simulator's plan: deterministic, realistic, and valid for the services it drives."""

import itertools
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from uuid import NAMESPACE_URL, uuid5

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from contracts.enums import PlacementType
from services.authority.models import CloseReferral, OpenReferral, ReferralChanges
from services.provider import domain
from services.provider.models import (
    CloseSetting,
    EndPlacement,
    PostVacancy,
    RegisterSetting,
    StartPlacement,
    UpdateSetting,
    WithdrawVacancy,
)
from tools.simulator.plan import Plan, SimulationConfig, evenly_interleaved, plan
from tools.simulator.requests import Api, Kind, Phase, PlannedRequest
from tools.synthetic.area import UnknownAreaError, resolve_area

SEFTON = "E08000014"
WESTMORLAND_AND_FURNESS = "E06000064"

MODELS: dict[Kind, type[BaseModel] | None] = {
    Kind.REGISTER_SETTING: RegisterSetting,
    Kind.UPDATE_SETTING: UpdateSetting,
    Kind.CLOSE_SETTING: CloseSetting,
    Kind.POST_VACANCY: PostVacancy,
    Kind.CONFIRM_VACANCY: None,  # no body
    Kind.WITHDRAW_VACANCY: WithdrawVacancy,
    Kind.START_PLACEMENT: StartPlacement,
    Kind.END_PLACEMENT: EndPlacement,
    Kind.OPEN_REFERRAL: OpenReferral,
    Kind.UPDATE_REFERRAL: ReferralChanges,
    Kind.CLOSE_REFERRAL: CloseReferral,
}
ROUTES = {
    Kind.REGISTER_SETTING: ("POST", "/v1/settings"),
    Kind.UPDATE_SETTING: ("PATCH", "/v1/settings/{id}"),
    Kind.CLOSE_SETTING: ("POST", "/v1/settings/{id}/close"),
    Kind.POST_VACANCY: ("POST", "/v1/vacancies"),
    Kind.CONFIRM_VACANCY: ("POST", "/v1/vacancies/{id}/confirm"),
    Kind.WITHDRAW_VACANCY: ("POST", "/v1/vacancies/{id}/withdraw"),
    Kind.START_PLACEMENT: ("POST", "/v1/placements"),
    Kind.END_PLACEMENT: ("POST", "/v1/placements/{id}/end"),
    Kind.OPEN_REFERRAL: ("POST", "/v1/referrals"),
    Kind.UPDATE_REFERRAL: ("PATCH", "/v1/referrals/{id}"),
    Kind.CLOSE_REFERRAL: ("POST", "/v1/referrals/{id}/close"),
}


def config(area: str = "westmorland-and-furness", seed: int = 1, scale: float = 1.0):
    return SimulationConfig(area=resolve_area(area), seed=seed, scale=scale)


def first(requests: Plan, count: int) -> list[dict[str, Any]]:
    return [request.as_json() for request in itertools.islice(iter(requests), count)]


def steady_for(the_plan: Plan, days: int) -> Iterator[PlannedRequest]:
    """The seed, then the dynamics for `days` simulated days."""
    start = the_plan.config.start
    for request in the_plan:
        if (request.at - start).days >= days:
            return
        yield request


class FakeIds(dict[str, str]):
    """A stable UUID for every handle, as if every create had succeeded."""

    def __missing__(self, handle: str) -> str:
        return str(uuid5(NAMESPACE_URL, handle))


@pytest.fixture(scope="module")
def north_west() -> Plan:
    return plan(config("north-west"))


@pytest.fixture(scope="module")
def westmorland_and_furness_year() -> list[PlannedRequest]:
    return list(steady_for(plan(config()), 365))


# --- determinism ----------------------------------------------------------------------------------


def test_the_same_seed_plans_the_same_requests():
    assert first(plan(config(seed=7)), 3000) == first(plan(config(seed=7)), 3000)


def test_the_plan_reaches_the_steady_state_within_the_compared_requests():
    phases = Counter(request["phase"] for request in first(plan(config(seed=7)), 3000))
    assert phases[Phase.SEED.value] > 300
    assert phases[Phase.STEADY.value] > 300


def test_a_different_seed_plans_different_requests():
    assert first(plan(config(seed=7)), 500) != first(plan(config(seed=8)), 500)


def test_idempotency_keys_are_unique_and_depend_on_the_seed_and_scale():
    keys = [request["idempotency_key"] for request in first(plan(config(seed=7)), 3000)]
    assert len(set(keys)) == len(keys)
    other_scale = first(plan(config(seed=7, scale=0.5)), 1)[0]["idempotency_key"]
    other_seed = first(plan(config(seed=8)), 1)[0]["idempotency_key"]
    assert len({keys[0], other_scale, other_seed}) == 3


def test_the_plan_does_not_depend_on_the_interpreters_hash_seed():
    script = (
        "import hashlib, itertools, json\n"
        "from tools.synthetic.area import resolve_area\n"
        "from tools.simulator.plan import SimulationConfig, plan\n"
        "p = plan(SimulationConfig(area=resolve_area('sefton'), seed=3, scale=0.5))\n"
        "text = json.dumps([r.as_json() for r in itertools.islice(iter(p), 2000)])\n"
        "print(hashlib.sha256(text.encode()).hexdigest())\n"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for hash_seed in ("0", "1", "12345")
    }
    assert len(digests) == 1


# --- the seed's order -----------------------------------------------------------------------------


@given(st.lists(st.lists(st.integers(), max_size=30), max_size=6))
def test_interleaving_keeps_every_item_and_each_streams_order(streams):
    tagged = [[(number, item) for item in stream] for number, stream in enumerate(streams)]

    merged = evenly_interleaved(tagged)

    assert sorted(merged) == sorted(pair for stream in tagged for pair in stream)
    for number, stream in enumerate(tagged):
        assert [pair for pair in merged if pair[0] == number] == stream


@given(st.lists(st.integers(min_value=1, max_value=200), min_size=2, max_size=6))
def test_interleaving_advances_every_stream_at_an_even_pace(lengths):
    streams = [[number] * length for number, length in enumerate(lengths)]

    merged = evenly_interleaved(streams)

    for cut in range(1, len(merged) + 1):
        share = cut / len(merged)
        seen = Counter(merged[:cut])
        for number, length in enumerate(lengths):
            # Within one item of its share of the way, give or take one per other stream.
            assert abs(seen[number] - share * length) <= len(lengths)


def test_a_tenth_of_the_north_west_seed_reaches_every_council_after_its_open_referrals(north_west):
    tenth = north_west.seed_requests[: len(north_west.seed_requests) // 10]
    councils = {council.code for council in resolve_area("E12000002").councils}
    settings_by_handle = north_west.planner.settings

    with_settings = {
        settings_by_handle[request.creates].council
        for request in tenth
        if request.kind is Kind.REGISTER_SETTING and request.creates is not None
    }
    referrals_sent = Counter(request.org for request in tenth if request.kind is Kind.OPEN_REFERRAL)
    referrals_planned = Counter(
        request.org for request in north_west.seed_requests if request.kind is Kind.OPEN_REFERRAL
    )

    assert with_settings == councils
    assert referrals_sent == referrals_planned
    assert {SEFTON, WESTMORLAND_AND_FURNESS} <= set(referrals_sent)


def test_the_seed_sends_each_records_requests_in_the_order_they_were_planned(north_west):
    steps_by_lane: dict[str, list[int]] = {}
    for request in north_west.seed_requests:
        steps_by_lane.setdefault(request.lane, []).append(request.step)

    assert all(steps == sorted(steps) for steps in steps_by_lane.values())
    firsts = [steps[0] for steps in steps_by_lane.values()]
    creations = {r.step for r in north_west.seed_requests if r.creates is not None}
    assert set(firsts) <= creations


# --- realism --------------------------------------------------------------------------------------


def test_the_north_west_has_settings_in_every_council(north_west):
    councils = {setting.council for setting in north_west.planner.settings.values()}
    assert councils == {council.code for council in resolve_area("E12000002").councils}
    assert len(councils) == 24


def test_childrens_homes_average_between_two_and_a_half_and_four_and_a_half_places(north_west):
    homes = [
        s.places
        for s in north_west.planner.settings.values()
        if s.placement_type is PlacementType.CHILDRENS_HOME
    ]
    assert 2.5 <= sum(homes) / len(homes) <= 4.5
    assert min(homes) == 1  # solo homes
    assert max(homes) == 6


def test_fostering_has_most_of_the_places(north_west):
    places: Counter[str] = Counter()
    for setting in north_west.planner.settings.values():
        fostering = setting.placement_type in {
            PlacementType.FOSTER_CARE_IN_HOUSE,
            PlacementType.FOSTER_CARE_IFA,
        }
        places["fostering" if fostering else "other"] += setting.places
    assert places["fostering"] > places["other"]


def test_most_places_are_occupied_and_a_few_are_offered(north_west):
    settings = north_west.planner.settings.values()
    places = sum(s.places for s in settings)
    occupied = sum(s.occupied for s in settings)
    offered = sum(s.offered for s in settings)
    assert 0.75 <= occupied / places <= 0.95
    assert 0 < offered < places - occupied


def test_the_westmorland_and_furness_market_is_the_one_its_strategy_describes(north_west):
    settings = [
        s for s in north_west.planner.settings.values() if s.council == WESTMORLAND_AND_FURNESS
    ]
    by_type: Counter[PlacementType] = Counter()
    for setting in settings:
        by_type[setting.placement_type] += setting.places
    fostering_households = sum(
        1 for s in settings if s.placement_type is PlacementType.FOSTER_CARE_IN_HOUSE
    )
    assert by_type[PlacementType.CHILDRENS_HOME] == 78 + 18  # external and in-house homes
    assert by_type[PlacementType.RESIDENTIAL_SPECIAL_SCHOOL] == 34
    assert by_type[PlacementType.SHORT_BREAKS] == 11
    assert fostering_households == 89


@pytest.mark.parametrize("council", [SEFTON, WESTMORLAND_AND_FURNESS])
def test_other_councils_children_live_in_the_councils_homes(north_west, council):
    beds: Counter[str] = Counter()
    for setting in north_west.planner.settings.values():
        if setting.council == council and setting.placement_type is PlacementType.CHILDRENS_HOME:
            for placement in setting.placements:
                own = placement.placing_authority == council
                beds["own" if own else "others"] += placement.beds
    share = beds["others"] / (beds["own"] + beds["others"])
    assert 0.3 <= share <= 0.75, share


def test_children_from_other_regions_are_placed_in_the_north_west(north_west):
    region = {council.code for council in resolve_area("north-west").councils}
    placing = {
        placement.placing_authority
        for setting in north_west.planner.settings.values()
        for placement in setting.placements
    }
    assert placing - region


def test_residential_referrals_are_mostly_for_children_aged_ten_to_seventeen(
    westmorland_and_furness_year,
):
    ages = [
        request.body["age"]
        for request in westmorland_and_furness_year
        if request.kind is Kind.OPEN_REFERRAL
        and "childrens_home" in request.body["placement_types"]
    ]
    assert len(ages) > 10
    assert sum(1 for age in ages if age >= 10) / len(ages) >= 0.85


def test_most_referrals_are_planned_and_some_are_emergencies(westmorland_and_furness_year):
    urgencies = Counter(
        request.body["urgency"]
        for request in westmorland_and_furness_year
        if request.kind is Kind.OPEN_REFERRAL
    )
    assert urgencies["planned"] > 2 * urgencies["emergency"] > 0


def test_a_year_of_dynamics_has_every_kind_of_change(westmorland_and_furness_year):
    steady = [r for r in westmorland_and_furness_year if r.phase is Phase.STEADY]
    kinds = Counter(request.kind for request in steady)
    assert set(kinds) == set(Kind)
    outcomes = Counter(r.body["outcome"] for r in steady if r.kind is Kind.CLOSE_REFERRAL)
    assert outcomes.most_common(1)[0][0] == "placed"
    assert outcomes["withdrawn"] > 0
    assert outcomes["no_longer_needed"] > 0
    reasons = Counter(r.body["reason"] for r in steady if r.kind is Kind.WITHDRAW_VACANCY)
    assert set(reasons) == {"filled", "filled_elsewhere", "no_longer_available", "other"}
    endings = Counter(r.body["reason"] for r in steady if r.kind is Kind.END_PLACEMENT)
    assert {"planned_move", "returned_home", "turned_18", "unplanned_ending"} <= set(endings)


def test_a_placed_referral_starts_a_placement_at_a_vacancy_then_closes(
    westmorland_and_furness_year,
):
    requests = westmorland_and_furness_year
    placed = next(
        i
        for i, r in enumerate(requests)
        if r.kind is Kind.CLOSE_REFERRAL and r.body["outcome"] == "placed"
    )
    started = next(r for r in reversed(requests[:placed]) if r.kind is Kind.START_PLACEMENT)
    withdrawn = next(r for r in requests[started.step :] if r.kind is Kind.WITHDRAW_VACANCY)
    assert "vacancy_id" in started.body
    assert started.body["placing_authority_code"] == requests[placed].org
    assert withdrawn.path == f"/v1/vacancies/{started.body['vacancy_id']}/withdraw"
    assert withdrawn.body == {"reason": "filled"}


# --- validity -------------------------------------------------------------------------------------


def check_against_the_request_models(requests: list[PlannedRequest]) -> None:
    ids = FakeIds()
    for request in requests:
        path, body = request.resolved(ids)
        method, route = ROUTES[request.kind]
        assert request.method == method
        assert path.replace(_id_in(path), "{id}") == route, (request.kind, path)
        assert request.api is (Api.AUTHORITY if route.startswith("/v1/referrals") else Api.PROVIDER)
        model = MODELS[request.kind]
        if model is None:
            assert body == {}
        else:
            model.model_validate_json(json.dumps(body))


def _id_in(path: str) -> str:
    parts = path.split("/")
    return parts[3] if len(parts) > 3 else "\0"


def test_every_seed_request_of_the_north_west_passes_the_services_request_models(north_west):
    check_against_the_request_models(north_west.seed_requests)


def test_a_year_of_requests_passes_the_services_request_models(westmorland_and_furness_year):
    check_against_the_request_models(westmorland_and_furness_year)


@dataclass
class ProviderRules:
    """The provider service's rules over the plan's requests, as if each had succeeded."""

    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    vacancies: dict[str, dict[str, Any]] = field(default_factory=dict)
    placements: dict[str, dict[str, Any]] = field(default_factory=dict)
    referrals: dict[str, bool] = field(default_factory=dict)

    def capacity(self, setting: str) -> domain.Capacity:
        return domain.Capacity(
            registered_places=self.settings[setting]["body"]["registered_places"],
            occupied=sum(
                p["beds"] for p in self.placements.values() if p["setting"] == setting and p["on"]
            ),
            offered=sum(
                v["beds"] for v in self.vacancies.values() if v["setting"] == setting and v["on"]
            ),
        )

    def apply(self, request: PlannedRequest) -> None:  # noqa: C901, PLR0912 - one branch a kind
        body = request.body
        target = request.path.split("/")[3][1:-1] if request.path.count("/") > 2 else None
        if request.kind is Kind.REGISTER_SETTING:
            self.settings[request.creates] = {"body": dict(body), "open": True}
        elif request.kind in {Kind.UPDATE_SETTING, Kind.CLOSE_SETTING}:
            assert self.settings[target]["open"]
            if request.kind is Kind.CLOSE_SETTING:
                self.settings[target]["open"] = False
            else:
                self.settings[target]["body"].update(body)
        elif request.kind is Kind.POST_VACANCY:
            setting = body["setting_id"][1:-1]
            assert self.settings[setting]["open"]
            domain.check_room_for_vacancy(body["beds"], self.capacity(setting))
            self.vacancies[request.creates] = {"setting": setting, "beds": body["beds"], "on": True}
        elif request.kind in {Kind.CONFIRM_VACANCY, Kind.WITHDRAW_VACANCY}:
            vacancy = self.vacancies[target]
            assert vacancy["on"]
            if request.kind is Kind.CONFIRM_VACANCY:
                assert self.settings[vacancy["setting"]]["open"]
            else:
                vacancy["on"] = False
        elif request.kind is Kind.START_PLACEMENT:
            setting = body["setting_id"][1:-1]
            assert self.settings[setting]["open"]
            if "vacancy_id" in body:
                vacancy = self.vacancies[body["vacancy_id"][1:-1]]
                assert vacancy["on"]
                assert vacancy["setting"] == setting
            domain.check_room_for_placement(body["beds"], self.capacity(setting))
            self.placements[request.creates] = {
                "setting": setting,
                "beds": body["beds"],
                "start": date.fromisoformat(body["start_date"]),
                "on": True,
            }
        elif request.kind is Kind.END_PLACEMENT:
            placement = self.placements[target]
            assert placement["on"]
            assert date.fromisoformat(body["end_date"]) >= placement["start"]
            placement["on"] = False
        elif request.kind is Kind.OPEN_REFERRAL:
            self.referrals[request.creates] = True
        else:
            assert self.referrals[target], request
            if request.kind is Kind.CLOSE_REFERRAL:
                self.referrals[target] = False


def test_a_year_of_requests_breaks_none_of_the_providers_rules(westmorland_and_furness_year):
    rules = ProviderRules()
    for request in westmorland_and_furness_year:
        rules.apply(request)


def test_the_north_west_seed_and_a_month_break_none_of_the_providers_rules():
    rules = ProviderRules()
    for request in steady_for(plan(config("north-west", seed=2, scale=0.3)), 30):
        rules.apply(request)


def test_the_plans_own_state_is_what_its_requests_leave_behind():
    the_plan = plan(config(seed=4))
    rules = ProviderRules()
    for request in the_plan:
        rules.apply(request)  # the planner changes its state before it yields the request
        if (request.at - the_plan.config.start).days >= 200:
            break
    planner = the_plan.planner
    assert sum(rules.referrals.values()) == len(planner.referrals)
    assert sum(1 for v in rules.vacancies.values() if v["on"]) == len(planner.vacancies)
    assert sum(1 for s in rules.settings.values() if s["open"]) == sum(
        1 for s in planner.settings.values() if s.open
    )
    assert sum(p["beds"] for p in rules.placements.values() if p["on"]) == sum(
        s.occupied for s in planner.settings.values()
    )


# --- areas ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "area_id", "councils"),
    [
        ("north-west", "E12000002", 24),
        ("E12000002", "E12000002", 24),
        ("south-east", "E12000008", 19),
        ("E06000064", WESTMORLAND_AND_FURNESS, 1),
        ("westmorland-and-furness", WESTMORLAND_AND_FURNESS, 1),
        ("placements-north-west", "placements-north-west", 24),
    ],
)
def test_an_area_is_named_by_region_council_or_collaborative(name, area_id, councils):
    area = resolve_area(name)
    assert area.id == area_id
    assert len(area.councils) == councils


def test_an_unknown_area_names_the_regions_it_knows():
    with pytest.raises(UnknownAreaError, match="north-west"):
        resolve_area("narnia")


def test_scale_shrinks_the_region_roughly_in_proportion():
    full = plan(config("north-west", scale=1.0)).planner.settings
    tenth = plan(config("north-west", scale=0.1)).planner.settings
    assert 0.07 <= len(tenth) / len(full) <= 0.13


def test_a_plan_is_iterated_once():
    the_plan = plan(config(scale=0.1))
    next(iter(the_plan))
    with pytest.raises(RuntimeError, match="once"):
        iter(the_plan)
