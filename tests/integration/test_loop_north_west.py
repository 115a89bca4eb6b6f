"""From alert to placement in the North West, through the public APIs of all four services.

All four services run under `nearhome run` on the test's own topics and a fresh database; the
people in the story only call their HTTP APIs, with their own tokens:

- Lakeland Care registers Ashdale House in Windermere (LA23, Westmorland and Furness) and Furness
  View in Barrow (LA14, W&F); Bay Homes registers Carnforth Lodge (LA5, Lancashire). Each posts a
  vacancy of one bed.
- Westmorland and Furness opens a local referral for a child from Kendal (LA9); Sefton opens a
  regional one for a child from Bootle (L20). Every bed fits both.
- W&F's alert names Ashdale House and its referrals e-mail. W&F asks for it; Lakeland declines
  (`staffing`). W&F asks for Carnforth Lodge and Furness View; Bay Homes offers its bed, and
  Sefton's alert on that held bed is retracted (`held`).
- W&F accepts, Bay Homes starts the placement from the request: the referral is placed, the
  request to Furness View withdrawn, every alert of the referral retracted, and the ledger's
  figures are those worked out by hand below.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import httpx
import pytest
from alerting_fixtures import bearer
from authority_fixtures import referral_body
from provider_fixtures import profile_body, setting_body
from supervised import Supervised, running_exchange

from services.platform.auth import Role, issue_token, principal_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

SECRET = "loop-north-west-secret-of-32-bytes-or-more"
WESTMORLAND_AND_FURNESS = "E06000064"
SEFTON = "E08000014"
LANCASHIRE = "E10000017"
NORTH_WEST = "E12000002"
PLACEMENTS_NORTH_WEST = "placements-north-west"

# Distances from the child's home district, LA9 (Kendal), by contracts.geography.distance_miles:
# LA23 (Windermere, W&F) 7.5 miles; LA5 (Carnforth, Lancashire) 12.7 miles; LA14 (Barrow, W&F)
# 24.3 miles. All three are local to the W&F referral (rule 2): LA23 and LA5 by distance, LA14
# because it is inside W&F. Sefton's child (L20) is 47 to 64 miles from them: regional fits.
WINDERMERE, BARROW, CARNFORTH = "LA23", "LA14", "LA5"
KENDAL, BOOTLE = "LA9", "L20"

DEADLINE_S = 30.0

T = TypeVar("T")


def token_for(role: Role, **scope: Any) -> str:
    return issue_token(principal_for(role, **scope), SECRET, timedelta(hours=1))


async def eventually(
    fetch: Callable[[], Awaitable[T]],
    holds: Callable[[T], bool],
    what: str,
    within: float = DEADLINE_S,
) -> T:
    """Poll `fetch` until its answer `holds`; fail after `within` seconds with the last answer."""
    deadline = time.monotonic() + within
    while True:
        answer = await fetch()
        if holds(answer):
            return answer
        assert time.monotonic() < deadline, f"after {within}s, still not {what}: {answer!r}"
        await asyncio.sleep(0.1)


@pytest.fixture
async def exchange(fresh_database_url: str, topic_prefix: str) -> AsyncIterator[Supervised]:
    async with running_exchange(fresh_database_url, topic_prefix, SECRET) as supervised:
        yield supervised


class Api:
    """The four services' public APIs, as the people in the story call them."""

    def __init__(self, http: httpx.AsyncClient, ports: dict[str, int]) -> None:
        self.http = http
        self.url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}

    async def send(
        self, method: str, service: str, path: str, token: str, **kwargs: Any
    ) -> httpx.Response:
        return await self.http.request(
            method, self.url[service] + path, headers=bearer(token), **kwargs
        )

    async def call(self, method: str, service: str, path: str, token: str, **kwargs: Any) -> Any:
        answer = await self.send(method, service, path, token, **kwargs)
        assert answer.status_code in {200, 201}, (method, path, answer.status_code, answer.text)
        return answer.json()

    async def home_with_a_bed(
        self, provider: str, district: str, **profile: Any
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A children's home (4 places) with its profile, and a vacancy of one bed there."""
        setting = await self.call(
            "POST",
            "provider",
            "/v1/settings",
            provider,
            json=setting_body(postcode_district=district, **profile_body(**profile)),
        )
        vacancy = await self.call(
            "POST",
            "provider",
            "/v1/vacancies",
            provider,
            json={"setting_id": setting["setting_id"], "beds": 1, "available_from": "2026-12-01"},
        )
        assert (setting["name"], vacancy["beds"]) == (profile["name"], 1)
        return setting, vacancy

    async def alerts(self, council: str, **params: str) -> list[dict[str, Any]]:
        return list(await self.call("GET", "alerting", "/v1/alerts", council, params=params))

    async def request_bed(self, council: str, referral_id: str, vacancy_id: str) -> dict[str, Any]:
        """Ask for a vacancy's bed, once the authority service has heard of the vacancy."""
        path = f"/v1/referrals/{referral_id}/requests"
        body = {"vacancy_id": vacancy_id}
        # A vacancy the authority has not read yet is a 404 that writes nothing; ask again.
        answer = await eventually(
            lambda: self.send("POST", "authority", path, council, json=body),
            lambda answer: f"no vacancy {vacancy_id}" not in answer.text,
            f"a request for vacancy {vacancy_id} accepted",
        )
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    async def requests_of(self, council: str, referral_id: str) -> dict[str, dict[str, Any]]:
        listed = await self.call(
            "GET", "authority", f"/v1/referrals/{referral_id}/requests", council
        )
        return {request["vacancy_id"]: request for request in listed}

    async def in_inbox(self, provider: str, request_id: str, status: str) -> dict[str, Any]:
        """The provider's view of a request, once the provider service has it in `status`."""

        async def read() -> httpx.Response:
            return await self.send("GET", "provider", f"/v1/requests/{request_id}", provider)

        answer = await eventually(
            read,
            lambda answer: answer.status_code == 200 and answer.json()["status"] == status,
            f"request {request_id} {status} in the provider's inbox",
        )
        return dict(answer.json())

    async def figures(self, reader: str, path: str, **params: str) -> dict[str, Any]:
        return dict(await self.call("GET", "ledger", path, reader, params=params))


def _without_median(responses: dict[str, Any]) -> dict[str, Any]:
    # The median hours to the first answer is wall-clock time in this test: checked apart.
    return {k: v for k, v in responses.items() if k != "median_hours_to_first_answer"}


def _totals(answer: dict[str, Any]) -> Any:
    return answer["totals"]


def _totals_without_median(answer: dict[str, Any]) -> Any:
    return _without_median(answer["totals"])


def answer_is(
    part: Callable[[dict[str, Any]], Any], expected: Any
) -> Callable[[dict[str, Any]], bool]:
    """Whether `part` of an answer is `expected`."""
    return lambda answer: bool(part(answer) == expected)


def _held_and_occupied(answer: dict[str, Any]) -> tuple[tuple[int, int], tuple[int, int]]:
    homes, totals = answer["by_type"]["childrens_home"], answer["totals"]
    return (homes["held"], homes["occupied"]), (totals["held"], totals["occupied"])


class Story:
    """The people of the story, their tokens, and what they have made so far."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.wf = token_for(Role.AUTHORITY, authority_code=WESTMORLAND_AND_FURNESS)
        self.sefton = token_for(Role.AUTHORITY, authority_code=SEFTON)
        self.lakeland = token_for(Role.PROVIDER, provider_id="lakeland-care")
        self.bay = token_for(Role.PROVIDER, provider_id="bay-homes")
        self.analyst = token_for(Role.COLLABORATIVE, footprints=(PLACEMENTS_NORTH_WEST,))
        self.admin = token_for(Role.ADMIN)
        self.settings: dict[str, dict[str, Any]] = {}
        self.beds: dict[str, str] = {}
        self.referral_id = ""
        self.sefton_referral_id = ""
        self.requests: dict[str, dict[str, Any]] = {}

    async def homes_post_their_beds(self) -> None:
        """Step 1: three children's homes, each with its profile and a vacancy of one bed."""
        homes = {
            "ashdale": (self.lakeland, WINDERMERE, "Ashdale House", "SC100001"),
            "furness": (self.lakeland, BARROW, "Furness View", "SC100002"),
            "carnforth": (self.bay, CARNFORTH, "Carnforth Lodge", "SC200001"),
        }
        emails = {self.lakeland: "referrals@lakeland-care.example", self.bay: "bay@homes.example"}
        for home, (provider, district, name, urn) in homes.items():
            setting, vacancy = await self.api.home_with_a_bed(
                provider, district, name=name, ofsted_urn=urn, referrals_email=emails[provider]
            )
            self.settings[home], self.beds[home] = setting, vacancy["vacancy_id"]
        assert {home: s["authority_code"] for home, s in self.settings.items()} == {
            "ashdale": WESTMORLAND_AND_FURNESS,
            "furness": WESTMORLAND_AND_FURNESS,
            "carnforth": LANCASHIRE,
        }

    async def councils_open_referrals(self) -> None:
        """Step 2: W&F looks locally for a child from Kendal, Sefton regionally for one from
        Bootle (its local search would find none of these beds)."""
        referral = await self.api.call(
            "POST",
            "authority",
            "/v1/referrals",
            self.wf,
            json=referral_body(reference="WF-2026-0142", home_postcode_district=KENDAL),
        )
        theirs = await self.api.call(
            "POST",
            "authority",
            "/v1/referrals",
            self.sefton,
            json=referral_body(
                reference="SEF-2026-0077", home_postcode_district=BOOTLE, search_scope="regional"
            ),
        )
        assert (referral["status"], referral["search_scope"]) == ("open", "local")
        assert (theirs["status"], theirs["search_scope"]) == ("open", "regional")
        self.referral_id, self.sefton_referral_id = referral["referral_id"], theirs["referral_id"]

    async def alerts_name_the_homes(self) -> None:
        """Step 3: W&F is alerted to all three beds, local, nearest first, each alert naming the
        home and how to ask for it; Sefton to the same three, regional."""
        alerts = await eventually(
            lambda: self.api.alerts(self.wf, referral_id=self.referral_id, status="open"),
            lambda alerts: len(alerts) == 3,
            "three open alerts for W&F",
        )
        assert [(a["vacancy_id"], a["local"], a["distance_miles"]) for a in alerts] == [
            (self.beds["ashdale"], True, 7.5),
            (self.beds["carnforth"], True, 12.7),
            (self.beds["furness"], True, 24.3),
        ]
        ashdale = alerts[0]
        assert ashdale["setting_id"] == self.settings["ashdale"]["setting_id"]
        assert ashdale["postcode_district"] == WINDERMERE
        profile = ashdale["setting_profile"]
        assert (profile["name"], profile["ofsted_urn"], profile["referrals_email"]) == (
            "Ashdale House",
            "SC100001",
            "referrals@lakeland-care.example",
        )
        assert alerts[1]["setting_profile"]["referrals_email"] == "bay@homes.example"
        theirs = await eventually(
            lambda: self.api.alerts(self.sefton, referral_id=self.sefton_referral_id),
            lambda alerts: len(alerts) == 3,
            "three alerts for Sefton",
        )
        assert {a["vacancy_id"] for a in theirs} == set(self.beds.values())
        assert {(a["status"], a["local"]) for a in theirs} == {("open", False)}

    async def declined_then_offered(self) -> None:
        """Step 4: Ashdale declined for staffing; then Carnforth and Furness View asked for, and
        Carnforth Lodge offers its bed."""
        api = self.api
        to_ashdale = await api.request_bed(self.wf, self.referral_id, self.beds["ashdale"])
        assert to_ashdale["status"] == "requested"
        assert to_ashdale["setting"]["profile"]["name"] == "Ashdale House"
        seen = await api.in_inbox(self.lakeland, to_ashdale["request_id"], "requested")
        assert (seen["home_postcode_district"], seen["age"], seen["needs"]) == (
            KENDAL,
            13,
            ["semh"],
        )
        assert "reference" not in seen
        declined = await api.call(
            "POST",
            "provider",
            f"/v1/requests/{to_ashdale['request_id']}/decline",
            self.lakeland,
            json={"reason": "staffing"},
        )
        assert declined["status"] == "declined"
        await eventually(
            lambda: api.requests_of(self.wf, self.referral_id),
            lambda by_vacancy: by_vacancy[self.beds["ashdale"]]["status"] == "declined",
            "the decline seen by W&F",
        )

        to_carnforth = await api.request_bed(self.wf, self.referral_id, self.beds["carnforth"])
        to_furness = await api.request_bed(self.wf, self.referral_id, self.beds["furness"])
        again = await api.send(
            "POST",
            "authority",
            f"/v1/referrals/{self.referral_id}/requests",
            self.wf,
            json={"vacancy_id": self.beds["carnforth"]},
        )
        assert again.status_code == 409, "one open request per (referral, vacancy)"
        assert "already has an open request" in again.json()["detail"]
        await api.in_inbox(self.bay, to_carnforth["request_id"], "requested")
        await api.in_inbox(self.lakeland, to_furness["request_id"], "requested")
        offered = await api.call(
            "POST",
            "provider",
            f"/v1/requests/{to_carnforth['request_id']}/offer",
            self.bay,
            json={},
        )
        assert (offered["status"], offered["offered_beds"]) == ("offered", 1)
        self.requests = {
            "ashdale": to_ashdale,
            "carnforth": to_carnforth,
            "furness": to_furness,
        }

    async def the_held_bed_leaves_seftons_alerts(self) -> None:
        """Step 5: Sefton's alert on the held bed is retracted as `held`; its other two stay open,
        and so do W&F's three (the bed is held for W&F)."""
        retracted = await eventually(
            lambda: self.api.alerts(
                self.sefton, referral_id=self.sefton_referral_id, status="retracted"
            ),
            lambda alerts: len(alerts) == 1,
            "Sefton's alert on the held bed retracted",
        )
        assert [(a["vacancy_id"], a["reason"]) for a in retracted] == [
            (self.beds["carnforth"], "held")
        ]
        still_open = await self.api.alerts(
            self.sefton, referral_id=self.sefton_referral_id, status="open"
        )
        assert {a["vacancy_id"] for a in still_open} == {
            self.beds["ashdale"],
            self.beds["furness"],
        }
        ours = await self.api.alerts(self.wf, status="open")
        assert {a["vacancy_id"] for a in ours} == set(self.beds.values())

    async def accepted_and_placed(self) -> dict[str, Any]:
        """Step 6: W&F accepts the offer; Bay Homes starts the placement from the request."""
        request_id = self.requests["carnforth"]["request_id"]
        await eventually(
            lambda: self.api.requests_of(self.wf, self.referral_id),
            lambda by_vacancy: by_vacancy[self.beds["carnforth"]]["status"] == "offered",
            "the offer seen by W&F",
        )
        accepted = await self.api.call(
            "POST", "authority", f"/v1/requests/{request_id}/accept", self.wf
        )
        assert accepted["status"] == "accepted"
        await self.api.in_inbox(self.bay, request_id, "accepted")
        placement: dict[str, Any] = await self.api.call(
            "POST",
            "provider",
            "/v1/placements",
            self.bay,
            json={"request_id": request_id, "start_date": "2026-12-01"},
        )
        assert placement["setting_id"] == self.settings["carnforth"]["setting_id"]
        assert placement["placing_authority_code"] == WESTMORLAND_AND_FURNESS
        assert (placement["beds"], placement["vacancy_id"]) == (1, self.beds["carnforth"])
        return placement

    async def the_search_ends(self, placement: dict[str, Any]) -> None:
        """Step 7: the referral is placed, the other open request withdrawn, every alert of the
        referral retracted; Sefton is not alerted again to the bed now taken."""
        api = self.api
        placed = await eventually(
            lambda: api.call("GET", "authority", f"/v1/referrals/{self.referral_id}", self.wf),
            lambda answer: answer["status"] == "closed",
            "the referral closed",
        )
        assert placed["outcome"] == "placed"
        requests = await eventually(
            lambda: api.requests_of(self.wf, self.referral_id),
            lambda by_vacancy: by_vacancy[self.beds["furness"]]["status"] == "withdrawn",
            "the request to Furness View withdrawn",
        )
        assert {v: r["status"] for v, r in requests.items()} == {
            self.beds["ashdale"]: "declined",
            self.beds["carnforth"]: "placed",
            self.beds["furness"]: "withdrawn",
        }
        assert requests[self.beds["ashdale"]]["decline_reason"] == "staffing"
        assert requests[self.beds["carnforth"]]["placement_id"] == placement["placement_id"]
        assert requests[self.beds["furness"]]["withdrawal_reason"] == "referral_placed"
        await api.in_inbox(self.lakeland, self.requests["furness"]["request_id"], "withdrawn")
        await api.in_inbox(self.bay, self.requests["carnforth"]["request_id"], "placed")

        alerts = await eventually(
            lambda: api.alerts(self.wf, referral_id=self.referral_id),
            lambda alerts: len(alerts) == 3 and all(a["status"] == "retracted" for a in alerts),
            "every alert of the referral retracted",
        )
        assert {a["vacancy_id"] for a in alerts} == set(self.beds.values())
        assert await api.alerts(self.wf, status="open") == []
        theirs = await api.alerts(self.sefton, referral_id=self.sefton_referral_id, status="open")
        assert {a["vacancy_id"] for a in theirs} == {self.beds["ashdale"], self.beds["furness"]}

    async def ledger_reads(
        self, path: str, holds: Callable[[dict[str, Any]], bool], what: str, **params: str
    ) -> dict[str, Any]:
        """The ledger's answer at `path`, once it `holds` (the ledger reads both topics)."""
        return await eventually(lambda: self.api.figures(self.admin, path, **params), holds, what)

    async def capacity_is(self, expected: dict[str, tuple[int, int]]) -> None:
        """Each footprint's (held, occupied) children's-home beds, the only type here, and so
        also its totals."""
        for footprint_id, figures in expected.items():
            both = (figures, figures)
            answer = await self.ledger_reads(
                f"/v1/capacity/{footprint_id}",
                answer_is(_held_and_occupied, both),
                f"(held, occupied) of {footprint_id} = {figures}",
            )
            assert _held_and_occupied(answer) == both

    async def responses_are(self, expected: dict[str, dict[str, Any]]) -> None:
        for footprint_id, figures in expected.items():
            answer = await self.ledger_reads(
                f"/v1/capacity/{footprint_id}/responses",
                answer_is(_totals_without_median, figures),
                f"the responses of {footprint_id} as worked out",
            )
            homes = answer["by_type"]["childrens_home"]
            assert _without_median(homes) == _without_median(answer["totals"]) == figures
            median = homes["median_hours_to_first_answer"]
            assert median is not None
            assert 0 <= median < 1, "every answer came within the test's minute"
        collaborative = await self.api.figures(
            self.analyst, f"/v1/capacity/{PLACEMENTS_NORTH_WEST}/responses"
        )
        assert _without_median(collaborative["totals"]) == expected[PLACEMENTS_NORTH_WEST]

    async def sufficiency_is(self, expected: dict[str, dict[str, Any]]) -> None:
        for footprint_id, figures in expected.items():
            answer = await self.ledger_reads(
                f"/v1/capacity/{footprint_id}/sufficiency",
                answer_is(_totals, figures),
                f"the sufficiency of {footprint_id} as worked out",
            )
            assert answer["counted_by"] == "setting"
            assert answer["by_type"]["childrens_home"] == figures


# (held, occupied) children's-home beds per footprint while Carnforth's offer holds its bed:
# Carnforth Lodge is in Lancashire, so its 1 held bed counts in the North West and in Placements
# North West (Lancashire is one of its 24 councils), not in W&F; nothing is occupied yet.
WHILE_HELD = {
    WESTMORLAND_AND_FURNESS: (0, 0),
    NORTH_WEST: (1, 0),
    PLACEMENTS_NORTH_WEST: (1, 0),
}
# After the placement from the offer: the hold is taken, 1 - 1 = 0 held; its 1 bed is occupied,
# again at Carnforth: NW and PNW 0 + 1 = 1, W&F 0 (Ashdale and Furness View house nobody).
PLACED = {
    WESTMORLAND_AND_FURNESS: (0, 0),
    NORTH_WEST: (0, 1),
    PLACEMENTS_NORTH_WEST: (0, 1),
}
# Responses count the requests sent to each footprint's settings.
# W&F's settings (Ashdale, Furness View) got 2: Ashdale declined (staffing), Furness View never
# answered (withdrawn at placement): 0 offers, 1 decline, 1 answered; the child's one need (semh)
# counts once for the decline; no placement from a request there: requests per placement null.
IN_WESTMORLAND: dict[str, Any] = {
    "requests": 2,
    "offers": 0,
    "declines": 1,
    "declines_by_reason": {"staffing": 1},
    "declines_by_need": {"semh": 1},
    "answered": 1,
    "placements_from_requests": 0,
    "requests_per_placement": None,
}
# The North West's settings (all three) got 3: 1 offer (Carnforth), 1 decline (Ashdale),
# 1 + 1 = 2 answered, 1 placement from a request: 3 requests / 1 placement = 3.0.
IN_THE_NORTH_WEST: dict[str, Any] = {
    "requests": 3,
    "offers": 1,
    "declines": 1,
    "declines_by_reason": {"staffing": 1},
    "declines_by_need": {"semh": 1},
    "answered": 2,
    "placements_from_requests": 1,
    "requests_per_placement": 3.0,
}
RESPONSES = {
    WESTMORLAND_AND_FURNESS: IN_WESTMORLAND,
    NORTH_WEST: IN_THE_NORTH_WEST,
    PLACEMENTS_NORTH_WEST: IN_THE_NORTH_WEST,
}
# Sufficiency counted where the setting is: the one placement from a referral is at Carnforth
# (LA5, Lancashire). LA9 -> LA5 is 12.7 miles <= 20: within 1 of 1 home district known, share
# 1/1 = 1.0; Lancashire is not the placing council (W&F): inside 0 of 1, share 0/1 = 0.0.
# W&F's own homes had no placement from a referral: all 0, both shares null (nothing to divide).
NONE_HERE: dict[str, Any] = {
    "placements": 0,
    "home_known": 0,
    "within_20_miles": 0,
    "inside_placing_council": 0,
    "share_within_20_miles": None,
    "share_inside_placing_council": None,
}
NEAR_BUT_OUTSIDE: dict[str, Any] = {
    "placements": 1,
    "home_known": 1,
    "within_20_miles": 1,
    "inside_placing_council": 0,
    "share_within_20_miles": 1.0,
    "share_inside_placing_council": 0.0,
}
SUFFICIENCY = {
    WESTMORLAND_AND_FURNESS: NONE_HERE,
    NORTH_WEST: NEAR_BUT_OUTSIDE,
    PLACEMENTS_NORTH_WEST: NEAR_BUT_OUTSIDE,
}


async def test_a_kendal_child_is_placed_from_an_alert_through_all_four_services(
    exchange: Supervised,
) -> None:
    async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
        story = Story(Api(http, exchange.ports))
        await story.homes_post_their_beds()
        await story.councils_open_referrals()
        await story.alerts_name_the_homes()
        await story.declined_then_offered()
        await story.the_held_bed_leaves_seftons_alerts()
        await story.capacity_is(WHILE_HELD)

        placement = await story.accepted_and_placed()
        await story.the_search_ends(placement)
        await story.capacity_is(PLACED)
        await story.responses_are(RESPONSES)
        await story.sufficiency_is(SUFFICIENCY)
        # Counted by the placing council instead, the same placement is W&F's: near home (12.7
        # miles) but outside the council.
        by_placing = await story.api.figures(
            story.admin,
            f"/v1/capacity/{WESTMORLAND_AND_FURNESS}/sufficiency",
            counted_by="placing_council",
        )
        assert (by_placing["counted_by"], by_placing["totals"]) == (
            "placing_council",
            NEAR_BUT_OUTSIDE,
        )

    assert await exchange.stop() == 0, exchange.transcript()
