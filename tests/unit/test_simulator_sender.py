"""The simulator's sender against fake services at the HTTP boundary (httpx.MockTransport).

The fakes stand for the provider and authority services only to observe what the sender sends;
the real services are driven in tests/integration/test_simulator_services.py.
"""

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
from typer.testing import CliRunner

from services.platform.auth import Role, decode_token
from tools.simulator.cli import app, default_rate
from tools.simulator.progress import Progress
from tools.simulator.requests import Api, Kind, Phase, PlannedRequest, placeholder
from tools.simulator.sender import Sender, SenderOptions

SECRET = "simulator-sender-test-secret-32-bytes!"
START = datetime(2026, 3, 2, 8, tzinfo=UTC)


@dataclass
class FakeService:
    """Answers like a service: 201 with a new id for creates, 200 otherwise; remembers all."""

    id_field: dict[str, str]
    arrived: list[str] = field(default_factory=list)  # paths, as requests arrive
    received: list[httpx.Request] = field(default_factory=list)  # as they are answered
    fail_first: dict[str, int] = field(default_factory=dict)  # Idempotency-Key -> failures
    refuse: dict[str, int] = field(default_factory=dict)  # Idempotency-Key -> status
    delay: Callable[[httpx.Request], float] = lambda _: 0.0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        key = request.headers["Idempotency-Key"]
        if self.fail_first.get(key, 0) > 0:
            self.fail_first[key] -= 1
            raise httpx.ConnectError("connection refused", request=request)
        self.arrived.append(request.url.path)
        await asyncio.sleep(self.delay(request))
        self.received.append(request)
        if key in self.refuse:
            return httpx.Response(self.refuse[key], json={"detail": "refused"})
        field_name = self.id_field.get(request.url.path)
        if field_name is not None:
            return httpx.Response(201, json={field_name: str(uuid4())})
        return httpx.Response(200, json={})

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request.content) for request in self.received]


def services() -> tuple[FakeService, FakeService]:
    provider = FakeService(
        {
            "/v1/settings": "setting_id",
            "/v1/vacancies": "vacancy_id",
            "/v1/placements": "placement_id",
        }
    )
    return provider, FakeService({"/v1/referrals": "referral_id"})


def clients(provider: FakeService, authority: FakeService) -> dict[Api, httpx.AsyncClient]:
    return {
        Api.PROVIDER: httpx.AsyncClient(
            transport=httpx.MockTransport(provider), base_url="http://provider"
        ),
        Api.AUTHORITY: httpx.AsyncClient(
            transport=httpx.MockTransport(authority), base_url="http://authority"
        ),
    }


def request(
    step: int,
    kind: Kind,
    path: str,
    body: dict[str, Any],
    *,
    lane: str,
    org: str = "brightwater-care",
    creates: str | None = None,
    id_field: str | None = None,
    phase: Phase = Phase.SEED,
    at: datetime = START,
) -> PlannedRequest:
    return PlannedRequest(
        step=step,
        at=at,
        phase=phase,
        kind=kind,
        api=Api.AUTHORITY if path.startswith("/v1/referrals") else Api.PROVIDER,
        org=org,
        method="POST",
        path=path,
        body=body,
        idempotency_key=f"sim-test-{step}",
        lane=lane,
        creates=creates,
        id_field=id_field,
    )


def setting_then_vacancy(lane: str = "setting-1", first_step: int = 1) -> list[PlannedRequest]:
    vacancy = lane.replace("setting", "vacancy")
    return [
        request(
            first_step,
            Kind.REGISTER_SETTING,
            "/v1/settings",
            {"registered_places": 3},
            lane=lane,
            creates=lane,
            id_field="setting_id",
        ),
        request(
            first_step + 1,
            Kind.POST_VACANCY,
            "/v1/vacancies",
            {"setting_id": placeholder(lane), "beds": 1},
            lane=lane,
            creates=vacancy,
            id_field="vacancy_id",
        ),
        request(
            first_step + 2,
            Kind.WITHDRAW_VACANCY,
            f"/v1/vacancies/{placeholder(vacancy)}/withdraw",
            {"reason": "filled"},
            lane=lane,
        ),
    ]


async def send(
    planned: list[PlannedRequest],
    provider: FakeService,
    authority: FakeService,
    **options: Any,
) -> Sender:
    sender = Sender(
        clients(provider, authority), SECRET, SenderOptions(**{"rate": 10_000.0, **options})
    )
    await sender.run(planned)
    return sender


async def test_ids_the_service_assigns_replace_the_plans_handles():
    provider, authority = services()
    sender = await send(setting_then_vacancy(), provider, authority)
    setting_id, vacancy_id = sender.ids["setting-1"], sender.ids["vacancy-1"]
    assert provider.bodies()[1] == {"setting_id": setting_id, "beds": 1}
    assert provider.received[2].url.path == f"/v1/vacancies/{vacancy_id}/withdraw"
    assert sender.progress.answers == {"ok": 3}


async def test_each_request_carries_its_organisations_token_and_its_idempotency_key():
    provider, authority = services()
    referral = request(
        4,
        Kind.OPEN_REFERRAL,
        "/v1/referrals",
        {"age": 14},
        lane="referral-1",
        org="E08000014",
        creates="referral-1",
        id_field="referral_id",
    )
    await send([*setting_then_vacancy(), referral], provider, authority)
    token = provider.received[0].headers["Authorization"].removeprefix("Bearer ")
    principal = decode_token(token, SECRET)
    assert (principal.role, principal.provider_id) == (Role.PROVIDER, "brightwater-care")
    council = decode_token(
        authority.received[0].headers["Authorization"].removeprefix("Bearer "), SECRET
    )
    assert (council.role, council.authority_code) == (Role.AUTHORITY, "E08000014")
    assert [r.headers["Idempotency-Key"] for r in provider.received] == [
        "sim-test-1",
        "sim-test-2",
        "sim-test-3",
    ]


async def test_a_connection_error_is_retried_with_the_same_idempotency_key():
    provider, authority = services()
    provider.fail_first["sim-test-2"] = 2
    sender = await send(setting_then_vacancy(), provider, authority)
    assert [r.headers["Idempotency-Key"] for r in provider.received] == [
        "sim-test-1",
        "sim-test-2",
        "sim-test-3",
    ]
    assert sender.progress.answers == {"ok": 3}


async def test_requests_needing_a_record_whose_creation_was_refused_are_skipped():
    provider, authority = services()
    provider.refuse["sim-test-1"] = 409
    sender = await send(setting_then_vacancy(), provider, authority)
    assert len(provider.received) == 1
    assert sender.progress.answers == {"409": 1, "skipped": 2}


async def test_a_lane_is_sent_in_plan_order_while_lanes_run_side_by_side():
    provider, authority = services()
    # Registering is slow and the later steps quick: a sender that did not keep each lane in
    # order would withdraw vacancies before posting them.
    provider.delay = lambda r: 0.05 if r.url.path == "/v1/settings" else 0.0
    planned = [
        step
        for lane in range(1, 6)
        for step in setting_then_vacancy(f"setting-{lane}", first_step=lane * 10)
    ]
    sender = await send(planned, provider, authority, concurrency=8)
    for lane in range(1, 6):
        keys = [f"sim-test-{lane * 10 + i}" for i in range(3)]
        sent = [r.headers["Idempotency-Key"] for r in provider.received]
        assert [key for key in sent if key in keys] == keys
    assert sender.progress.answers == {"ok": 15}
    # The five registrations were in flight together, not one after another.
    assert provider.arrived[:5] == ["/v1/settings"] * 5


def _steady_vacancy(at: datetime) -> PlannedRequest:
    """A second request in lane setting-1: a vacancy posted in the steady phase, due `at`."""
    return request(
        2,
        Kind.POST_VACANCY,
        "/v1/vacancies",
        {"setting_id": placeholder("setting-1"), "beds": 1},
        lane="setting-1",
        phase=Phase.STEADY,
        at=at,
    )


async def test_steady_requests_wait_for_the_simulated_clock():
    provider, authority = services()
    seed = setting_then_vacancy()[:1]
    later = _steady_vacancy(at=START + timedelta(hours=1))
    loop = asyncio.get_running_loop()
    began = loop.time()
    await send([*seed, later], provider, authority, speed=3600 * 5)  # an hour in 0.2 s
    assert loop.time() - began >= 0.19
    assert len(provider.received) == 2


async def test_the_duration_stops_the_run_before_requests_due_after_it():
    provider, authority = services()
    seed = setting_then_vacancy()[:1]
    much_later = _steady_vacancy(at=START + timedelta(days=1))
    sender = await send([*seed, much_later], provider, authority, speed=60, duration=0.2)
    assert len(provider.received) == 1
    assert sender.progress.finished == 1


async def test_the_rate_limits_requests_a_second():
    provider, authority = services()
    planned = [
        s for lane in range(1, 5) for s in setting_then_vacancy(f"setting-{lane}", lane * 10)
    ]
    loop = asyncio.get_running_loop()
    began = loop.time()
    await send(planned, provider, authority, rate=40.0)
    assert loop.time() - began >= (len(planned) - 1) / 40 - 0.01


def test_the_status_line_shows_simulated_time_seed_progress_answers_and_records():
    progress = Progress(seed_total=3)
    planned = setting_then_vacancy()
    for step in planned:
        progress.answered(step, 201)
    confirm = request(
        9, Kind.CONFIRM_VACANCY, "/v1/vacancies/x/confirm", {}, lane="x", phase=Phase.STEADY
    )
    progress.clock_started(START, speed=60)
    progress.dispatched(confirm, lag=timedelta(hours=3))
    progress.answered(confirm, 409)
    line = progress.line()
    assert line.startswith("sim 2026-03-02 08:00 (requests 3h behind) | seed 3/3 | ok 3 409 1 |")
    assert line.endswith("settings 1 vacancies 2")


def test_the_default_rate_follows_the_speed_within_bounds():
    assert default_rate(1) == 20
    assert default_rate(60) == 120
    assert default_rate(10_000) == 500


def test_a_dry_run_prints_the_planned_requests_as_json_lines():
    result = CliRunner().invoke(
        app, ["--region", "westmorland-and-furness", "--seed", "3", "--dry-run", "--requests", "8"]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 8
    assert lines[0]["method"] == "POST"
    # A council's seed starts with the referrals it already has open.
    assert lines[0]["path"] == "/v1/referrals"
    assert lines[0]["org"] == "E06000064"
    assert lines[0]["idempotency_key"].startswith("sim-")
    assert lines[0]["body"]["home_postcode_district"]
    assert "/v1/settings" in {line["path"] for line in lines}


def test_a_dry_run_with_a_duration_stops_at_that_much_simulated_time():
    result = CliRunner().invoke(
        app,
        ["--region", "E06000064", "--dry-run", "--speed", "3600", "--duration", "72"],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    last = datetime.fromisoformat(lines[-1]["at"])
    assert lines[-1]["phase"] == "steady"
    assert timedelta(days=2) < last - datetime.fromisoformat(lines[0]["at"]) <= timedelta(days=3)


def test_an_unknown_region_is_refused_with_the_regions_known():
    result = CliRunner().invoke(app, ["--region", "narnia", "--dry-run"])
    assert result.exit_code == 2
    assert "north-west" in result.output
