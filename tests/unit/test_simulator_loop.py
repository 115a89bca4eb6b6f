"""The loop driver's choices, against a fake of the three services' HTTP answers.

httpx.MockTransport stands in for the services here: what is tested is which calls the driver
makes for given alerts, inboxes and request states (the real services are in
tests/integration/test_simulator_services.py).
"""

import json
from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
import pytest

from contracts.enums import DeclineReason, PlacementType
from services.platform.auth import decode_token
from tools.simulator.loop import Answer, Loop, Step, answer, decline_share, round_interval
from tools.simulator.progress import Progress
from tools.simulator.requests import Api
from tools.simulator.sender import Tokens
from tools.synthetic import figures

SECRET = "loop-unit-test-secret-of-32-bytes!!"
COUNCIL = "E06000064"
OTHER_COUNCIL = "E08000014"
PROVIDER = "provider-1"

Handler = Callable[[httpx.Request], httpx.Response]


class FakeServices:
    """Answers each call from the tables a test fills in, and records every call made."""

    def __init__(self) -> None:
        self.alerts: dict[str, list[dict[str, Any]]] = {}  # council -> open alerts, best first
        self.requests_of: dict[str, list[dict[str, Any]]] = {}  # referral -> its requests
        self.inbox: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (provider, status)
        self.placements_status = 201
        self.refuse_requests = False  # 409 to every POST /v1/referrals/{id}/requests
        self.calls: list[tuple[str, str, str, dict[str, Any] | None, str | None]] = []

    def handler(self, api: Api) -> Handler:
        def handle(request: httpx.Request) -> httpx.Response:
            body = json.loads(request.content) if request.content else None
            self.calls.append(
                (
                    api.value,
                    request.method,
                    str(request.url.copy_with(scheme="http", host="x")).removeprefix("http://x"),
                    body,
                    request.headers.get("idempotency-key"),
                )
            )
            return self._answer(api, request, body)

        return handle

    def _answer(  # noqa: PLR0911 - one answer per route
        self, api: Api, request: httpx.Request, body: dict[str, Any] | None
    ) -> httpx.Response:
        path = request.url.path
        council = _org(request)
        if api is Api.ALERTING:
            return httpx.Response(200, json=self.alerts.get(council, []))
        if api is Api.PROVIDER and request.method == "GET":
            status = request.url.params["status"]
            return httpx.Response(200, json=self.inbox.get((_org(request), status), []))
        if api is Api.PROVIDER and path == "/v1/placements":
            return httpx.Response(self.placements_status, json={"detail": "no request_id here"})
        if api is Api.PROVIDER:
            return httpx.Response(200, json={})
        parts = path.strip("/").split("/")
        if request.method == "GET":
            return httpx.Response(200, json=self.requests_of.get(parts[2], []))
        if parts[-1] == "requests" and self.refuse_requests:
            return httpx.Response(409, json={"detail": "the referral has an open request"})
        if parts[-1] == "requests":
            assert body is not None
            return httpx.Response(
                201,
                json=_request(f"r-{parts[2]}-{body['vacancy_id']}", parts[2], body["vacancy_id"]),
            )
        return httpx.Response(200, json={})


def _org(request: httpx.Request) -> str:
    """The organisation the bearer token names (the fake trusts it without checking)."""
    principal = decode_token(request.headers["authorization"].removeprefix("Bearer "), SECRET)
    return principal.provider_id or principal.authority_code or ""


def _alert(referral: str, vacancy: str, placement_type: str = "childrens_home") -> dict[str, Any]:
    return {"referral_id": referral, "vacancy_id": vacancy, "placement_type": placement_type}


def _request(
    request_id: str, referral: str, vacancy: str, status: str = "requested", **more: Any
) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "referral_id": referral,
        "vacancy_id": vacancy,
        "provider_id": PROVIDER,
        "status": status,
        "requested_at": "2026-03-02T09:00:00Z",
        "needs": [],
        "authority_code": COUNCIL,
        **more,
    }


def make_loop(fake: FakeServices, seed: int = 1, councils: tuple[str, ...] = (COUNCIL,)) -> Loop:
    clients = {
        api: httpx.AsyncClient(
            transport=httpx.MockTransport(fake.handler(api)), base_url="http://t"
        )
        for api in Api
    }
    return Loop(
        clients,
        Tokens(SECRET),
        councils=councils,
        seed=seed,
        run_id="run1",
        today=lambda: date(2026, 3, 3),
        progress=Progress(),
        retries=0,
    )


def writes(fake: FakeServices) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [(api, path, body) for api, method, path, body, _ in fake.calls if method == "POST"]


async def test_a_council_requests_the_best_alerted_vacancy_of_each_referral() -> None:
    fake = FakeServices()
    fake.alerts[COUNCIL] = [_alert("ref-a", "v-1"), _alert("ref-b", "v-2"), _alert("ref-a", "v-3")]
    loop = make_loop(fake)

    await loop.round()

    assert fake.calls[0][:3] == ("alerting", "GET", "/v1/alerts?status=open&limit=1000")
    assert writes(fake) == [
        ("authority", "/v1/referrals/ref-a/requests", {"vacancy_id": "v-1"}),
        ("authority", "/v1/referrals/ref-b/requests", {"vacancy_id": "v-2"}),
    ]
    keys = [key for *_, key in fake.calls if key]
    assert keys == ["loop-run1-request-ref-a-v-1", "loop-run1-request-ref-b-v-2"]
    assert loop.progress.loop[Step.REQUESTED] == 2


async def test_a_referral_in_play_is_not_asked_again_while_its_request_waits() -> None:
    fake = FakeServices()
    fake.alerts[COUNCIL] = [_alert("ref-a", "v-1"), _alert("ref-a", "v-3")]
    loop = make_loop(fake)
    await loop.round()
    fake.calls.clear()
    fake.inbox[PROVIDER, "requested"] = []  # the provider has not seen it yet
    fake.requests_of["ref-a"] = [_request("r-1", "ref-a", "v-1")]

    await loop.round()

    assert writes(fake) == []
    assert ("authority", "GET", "/v1/referrals/ref-a/requests") in [c[:3] for c in fake.calls]


async def test_a_provider_answers_its_inbox_and_the_council_accepts_the_offer() -> None:
    fake = FakeServices()
    fake.alerts[COUNCIL] = [_alert("ref-a", "v-1")]
    loop = make_loop(fake, seed=3)
    await loop.round()  # the request
    fake.calls.clear()
    waiting = _request("r-ref-a-v-1", "ref-a", "v-1")
    fake.inbox[PROVIDER, "requested"] = [waiting]
    fake.requests_of["ref-a"] = [waiting]

    await loop.round()  # the provider answers; the request still waits as the council reads it

    chosen = answer(3, waiting, PlacementType.CHILDRENS_HOME)
    verb = "offer" if chosen.offers else "decline"
    assert writes(fake) == [("provider", f"/v1/requests/r-ref-a-v-1/{verb}", chosen.body())]

    fake.calls.clear()
    fake.inbox[PROVIDER, "requested"] = []
    fake.requests_of["ref-a"] = [_request("r-ref-a-v-1", "ref-a", "v-1", status="offered")]
    await loop.round()

    assert writes(fake) == [("authority", "/v1/requests/r-ref-a-v-1/accept", {})]
    assert loop.progress.loop[Step.ACCEPTED] == 1


async def test_an_accepted_offer_is_placed_from_its_request_and_the_referral_forgotten() -> None:
    fake = FakeServices()
    fake.alerts[COUNCIL] = [_alert("ref-a", "v-1")]
    loop = make_loop(fake)
    await loop.round()
    fake.inbox[PROVIDER, "accepted"] = [_request("r-1", "ref-a", "v-1", status="accepted")]
    fake.requests_of["ref-a"] = [_request("r-1", "ref-a", "v-1", status="accepted")]
    fake.alerts[COUNCIL] = [_alert("ref-a", "v-1")]
    fake.calls.clear()

    await loop.round()

    assert writes(fake) == [
        ("provider", "/v1/placements", {"request_id": "r-1", "start_date": "2026-03-03"})
    ]
    assert loop.progress.loop[Step.PLACED] == 1

    fake.calls.clear()
    fake.inbox[PROVIDER, "accepted"] = []
    fake.requests_of["ref-a"] = [_request("r-1", "ref-a", "v-1", status="placed")]
    fake.alerts[COUNCIL] = []
    await loop.round()
    await loop.round()
    # Placed: neither the provider (nothing left to answer) nor the referral is read again.
    assert [c[:3] for c in fake.calls if c[1] == "GET" and c[0] != "alerting"] == [
        ("provider", "GET", "/v1/requests?status=requested"),
        ("provider", "GET", "/v1/requests?status=accepted"),
        ("authority", "GET", "/v1/referrals/ref-a/requests"),
    ]


async def test_without_placements_from_requests_the_loop_ends_at_acceptance_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeServices()
    fake.placements_status = 422
    fake.alerts[COUNCIL] = [_alert("ref-a", "v-1")]
    loop = make_loop(fake)
    await loop.round()
    fake.inbox[PROVIDER, "accepted"] = [
        _request("r-1", "ref-a", "v-1", status="accepted"),
        _request("r-2", "ref-b", "v-2", status="accepted"),
    ]

    await loop.round()
    await loop.round()

    placements = [c for c in fake.calls if c[2] == "/v1/placements"]
    assert len(placements) == 1
    assert not loop.places_from_requests
    assert len([r for r in caplog.records if "ends at acceptance" in r.message]) == 1
    fake.calls.clear()
    await loop.round()
    assert ("provider", "GET", "/v1/requests?status=accepted") not in [c[:3] for c in fake.calls]
    assert loop.progress.loop[Step.PLACED] == 0


async def test_when_every_request_is_declined_the_next_best_alert_is_asked_for() -> None:
    fake = FakeServices()
    fake.alerts[COUNCIL] = [_alert("ref-a", "v-1"), _alert("ref-a", "v-2")]
    loop = make_loop(fake)
    await loop.round()
    fake.requests_of["ref-a"] = [
        _request("r-1", "ref-a", "v-1", status="declined", decline_reason="staffing")
    ]
    fake.calls.clear()

    await loop.round()

    assert writes(fake) == [("authority", "/v1/referrals/ref-a/requests", {"vacancy_id": "v-2"})]


async def test_a_refused_request_is_followed_not_repeated() -> None:
    fake = FakeServices()
    fake.alerts[COUNCIL] = [_alert("ref-a", "v-1")]
    loop = make_loop(fake)

    fake.refuse_requests = True

    await loop.round()
    await loop.round()

    assert loop.progress.loop[Step.REQUESTED] == 0
    authority = [c[:3] for c in fake.calls if c[0] == "authority"]
    assert authority == [
        ("authority", "POST", "/v1/referrals/ref-a/requests"),
        ("authority", "GET", "/v1/referrals/ref-a/requests"),
    ]


async def test_the_same_seed_makes_the_same_calls_and_another_seed_others() -> None:
    def run_calls(seed: int) -> Callable[[], Any]:
        async def run() -> list[tuple[str, str, dict[str, Any] | None]]:
            fake = FakeServices()
            fake.alerts[COUNCIL] = [_alert(f"ref-{n}", f"v-{n}") for n in range(40)]
            fake.alerts[OTHER_COUNCIL] = [_alert("ref-x", "v-x", "foster_care_ifa")]
            loop = make_loop(fake, seed, councils=(OTHER_COUNCIL, COUNCIL))
            await loop.round()
            fake.inbox[PROVIDER, "requested"] = [
                _request(f"r-{n}", f"ref-{n}", f"v-{n}", needs=["autism"] * (n % 3))
                for n in range(40)
            ]
            await loop.round()
            return writes(fake)

        return run

    first, again, other = await run_calls(5)(), await run_calls(5)(), await run_calls(6)()

    assert first == again
    assert first != other
    answers = [path.rsplit("/", 1)[-1] for api, path, _ in first if api == "provider"]
    assert Counter(answers)["offer"] > Counter(answers)["decline"] > 0


def test_answers_offer_most_and_decline_with_every_reason_in_about_the_assumed_shares() -> None:
    answers = [
        answer(1, {"request_id": f"r-{n}", "needs": []}, PlacementType.CHILDRENS_HOME)
        for n in range(4000)
    ]
    declined = Counter(a.reason for a in answers if not a.offers)

    assert sum(declined.values()) / len(answers) == pytest.approx(
        figures.REQUEST_DECLINE_SHARE, abs=0.03
    )
    assert set(declined) == set(figures.DECLINE_REASON_MIX)
    assert DeclineReason.OTHER not in declined
    total = sum(figures.DECLINE_REASON_MIX.values())
    for reason, weight in figures.DECLINE_REASON_MIX.items():
        assert declined[reason] / sum(declined.values()) == pytest.approx(weight / total, abs=0.05)
    fees = figures.BY_TYPE[PlacementType.CHILDRENS_HOME].weekly_fee_gbp
    assert fees is not None
    low, high = fees
    assert all(low <= (a.weekly_fee_gbp or 0) <= high for a in answers if a.offers)


def test_more_needs_are_declined_more_often_up_to_a_limit() -> None:
    shares = [decline_share(needs) for needs in range(20)]
    assert shares == sorted(shares)
    assert shares[0] == figures.REQUEST_DECLINE_SHARE
    assert max(shares) == figures.REQUEST_DECLINE_SHARE_AT_MOST


def test_an_offer_of_an_unpriced_type_names_no_fee_and_a_decline_only_its_reason() -> None:
    for n in range(20):
        body = answer(1, {"request_id": f"r-{n}"}, None).body()
        assert body == {} or set(body) == {"reason"}
    assert Answer("r", reason=DeclineReason.STAFFING).body() == {"reason": "staffing"}
    assert Answer("r", weekly_fee_gbp=4500.0).body() == {"weekly_fee_gbp": 4500.0}


def test_rounds_come_every_quarter_simulated_hour_between_a_second_and_a_minute() -> None:
    assert round_interval(60.0) == 15.0
    assert round_interval(100_000.0) == 1.0
    assert round_interval(1.0) == 60.0


def test_the_status_line_and_summary_show_the_loop_once_it_has_done_something() -> None:
    progress = Progress(seed_total=10)
    assert "loop" not in progress.line()
    progress.looped(Step.REQUESTED)
    progress.looped(Step.OFFERED)
    progress.looped(Step.ACCEPTED)

    assert progress.line().endswith("| loop requests 1 offers 1 declines 0 accepted 1 placed 0")
    assert "loop requests 1 offers 1 declines 0 accepted 1 placed 0" in progress.summary()
