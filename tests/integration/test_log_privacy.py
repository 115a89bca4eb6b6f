"""No log line carries a referral's details: only its id.

The authority, alerting and provider services run as `nearhome serve` runs them, as real
processes on a fresh database and fresh topics, logging JSON at DEBUG. A referral with a
distinctive value in every field is opened, changed, widened and closed; a bad request quotes
distinctive values; a poison referral event (distinctive values again) reaches alerting's consumer
and is dead-lettered; another referral is sent to a provider's vacancy, so that the provider's
inbox holds the child's details, and declined. Then every line the three processes wrote is JSON,
request lines carry their request id, consumer lines their event id, and no line contains any of
those values.
"""

import asyncio
import base64
import contextlib
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from common import free_port, until
from provider_fixtures import setting_body, vacancy_body

from contracts.topics import REFERRAL_EVENTS
from services.platform.auth import Principal, Role, issue_token, principal_for
from services.platform.settings import CommonSettings

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

NEARHOME = str(Path(sys.executable).parent / "nearhome")
SECRET = "test-secret-for-the-log-privacy-test"
SEFTON = "E08000014"

# A referral whose every field has a value found nowhere else in the services' output.
OPENED: dict[str, Any] = {
    "reference": "LOGPRIV-7Q3K9",
    "age": 15,
    "sex": "male",
    "needs": ["cce_risk", "youth_justice", "uasc"],
    "sibling_group_size": 1,
    "placement_types": ["supported_lodgings", "short_breaks"],
    "home_postcode_district": "CA17",
    "needed_by": "2027-02-19",
    "urgency": "emergency",
    "min_ofsted_rating": "outstanding",
    "accept_not_yet_inspected": True,
    "search_scope": "local",
    "widen_after_hours": 0.000537,  # about 2 s
}
CHANGED: dict[str, Any] = {
    "age": 16,
    "needs": ["cce_risk", "missing_episodes", "substance_misuse"],
    "home_postcode_district": "TD15",
    "needed_by": "2027-03-23",
}
# Refused with a 422: each value is bad, and each is quoted back nowhere.
REFUSED: dict[str, Any] = {
    **OPENED,
    "reference": "LOGPRIV BAD REF",
    "age": 97,
    "home_postcode_district": "QZ98 7XY",
    "needed_by": "2131-07-19",
    "favourite_colour": "ultramarine-canary",
}
# A referral event that breaks the contract, sent straight to the topic alerting reads.
POISON: dict[str, Any] = {
    "reference": "LOGPRIV-POISON-4F",
    "age": 99,
    "sex": "male",
    "needs": ["parent_and_child", "physical_disability"],
    "sibling_group_size": 1,
    "placement_types": ["residential_special_school"],
    "home_postcode_district": "QZ97",
    "needed_by": "2140-01-31",
    "urgency": "emergency",
    "min_ofsted_rating": "outstanding",
    "accept_not_yet_inspected": True,
    "search_scope": "local",
}


# Sent to a provider's vacancy (a Sefton home that fits it): the provider's inbox holds these.
REQUESTED: dict[str, Any] = {
    "reference": "LOGPRIV-REQ-5M",
    "age": 9,
    "sex": "female",
    "needs": ["autism"],
    "sibling_group_size": 1,
    "placement_types": ["childrens_home"],
    "home_postcode_district": "L21",
    "needed_by": "2027-04-11",
    "urgency": "planned",
    "min_ofsted_rating": "good",
    "accept_not_yet_inspected": False,
    "search_scope": "local",
}
PROVIDER_ID = "logpriv-care"
GROUPS = ("AUTHORITY", "ALERTING", "PROVIDER")


def forbidden_patterns(*bodies: dict[str, Any]) -> dict[str, re.Pattern[str]]:
    """What would show a value of these bodies' fields in a line: a text value anywhere, as a
    whole word; a number or boolean right after a word starting with its field's name (`age=15`,
    `'age': 15`, `aged 15`; alone, `15` is in every timestamp)."""
    patterns: dict[str, re.Pattern[str]] = {}
    for body in bodies:
        for name, value in body.items():
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str):
                    pattern = rf"(?<![\w-]){re.escape(item)}(?![\w-])"
                else:
                    text = json.dumps(item)
                    words = f"{text}|{text.capitalize()}"
                    pattern = rf"{re.escape(name)}\w*\W{{0,12}}({words})(?![\w.])"
                    if isinstance(item, float):
                        pattern += rf"|{re.escape(text)}"  # distinctive on its own
                patterns[f"{name}={item!r}"] = re.compile(pattern)
    return patterns


FORBIDDEN = forbidden_patterns(OPENED, CHANGED, REFUSED, POISON, REQUESTED)


def leaks(lines: Iterable[str]) -> list[tuple[str, str]]:
    """(which value, line) for every line that shows a forbidden value."""
    return [
        (what, line)
        for line in lines
        for what, pattern in FORBIDDEN.items()
        if pattern.search(line)
    ]


@dataclass
class Served:
    """A service running as `nearhome serve <name>`: every line it has written."""

    name: str
    process: asyncio.subprocess.Process
    port: int
    lines: list[str] = field(default_factory=list)

    async def read(self) -> None:
        assert self.process.stdout is not None
        while raw := await self.process.stdout.readline():
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]


@contextlib.asynccontextmanager
async def serve(name: str, env: dict[str, str]) -> AsyncIterator[Served]:
    """`nearhome serve <name>` with `env`, its stdout and stderr read line by line; stopped with
    SIGTERM (then killed) at the end."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        NEARHOME,
        "serve",
        name,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **env, f"{name.upper()}_PORT": str(port)},
        start_new_session=True,
    )
    served = Served(name, process, port)
    reader = asyncio.create_task(served.read())
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def ready() -> bool:
                assert process.returncode is None, "\n".join(served.lines[-40:])
                with contextlib.suppress(httpx.TransportError):
                    return (await client.get("/ready")).status_code == 200
                return False

            await until(ready, f"{name} to be ready", timeout_s=60)
        yield served
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(15):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await reader
        reader.cancel()


def poison_event(topic_prefix: str) -> tuple[str, bytes]:
    """A ReferralOpened whose payload breaks the contract: (its event id, its bytes)."""
    event_id = str(uuid4())
    referral_id = str(uuid4())
    envelope = {
        "event_id": event_id,
        "event_type": "ReferralOpened",
        "schema_version": 1,
        "occurred_at": "2026-11-27T12:00:00Z",
        "producer": "authority",
        "organisation_id": SEFTON,
        "aggregate_id": referral_id,
        "sequence": 1,
        "payload": {"referral_id": referral_id, "authority_code": SEFTON, **POISON},
    }
    return event_id, json.dumps(envelope).encode()


def headers(principal: Principal) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(principal, SECRET)}"}


COUNCIL = headers(principal_for(Role.AUTHORITY, authority_code=SEFTON))
PROVIDER = headers(principal_for(Role.PROVIDER, provider_id=PROVIDER_ID))


async def a_referrals_life(authority: httpx.AsyncClient) -> str:
    """Open, change, widen and close a referral, and have a bad one refused: its id."""
    opened = await authority.post("/v1/referrals", json=OPENED, headers=COUNCIL)
    assert opened.status_code == 201, opened.text
    referral_id: str = opened.json()["referral_id"]
    changed = await authority.patch(f"/v1/referrals/{referral_id}", json=CHANGED, headers=COUNCIL)
    assert changed.status_code == 200, changed.text
    refused = await authority.post("/v1/referrals", json=REFUSED, headers=COUNCIL)
    assert refused.status_code == 422, refused.text

    async def widened() -> bool:
        answer = await authority.get(f"/v1/referrals/{referral_id}", headers=COUNCIL)
        return answer.json()["widened_at"] is not None

    await until(widened, "the referral to widen", timeout_s=30)
    closed = await authority.post(
        f"/v1/referrals/{referral_id}/close", json={"outcome": "withdrawn"}, headers=COUNCIL
    )
    assert closed.status_code == 200, closed.text
    return referral_id


async def a_request_declined(authority: httpx.AsyncClient, provider: httpx.AsyncClient) -> str:
    """A Sefton home with a vacancy; a referral sent to it; the provider reads the request and
    declines it: the request's id."""
    setting = await provider.post(
        "/v1/settings", json=setting_body(postcode_district="L20"), headers=PROVIDER
    )
    assert setting.status_code == 201, setting.text
    vacancy = await provider.post(
        "/v1/vacancies", json=vacancy_body(setting.json()["setting_id"]), headers=PROVIDER
    )
    assert vacancy.status_code == 201, vacancy.text
    opened = await authority.post("/v1/referrals", json=REQUESTED, headers=COUNCIL)
    assert opened.status_code == 201, opened.text
    sent: list[str] = []

    async def request_sent() -> bool:  # once the authority has taken in the vacancy
        answer = await authority.post(
            f"/v1/referrals/{opened.json()['referral_id']}/requests",
            json={"vacancy_id": vacancy.json()["vacancy_id"]},
            headers=COUNCIL,
        )
        if answer.status_code == 201:
            sent.append(answer.json()["request_id"])
        return bool(sent)

    await until(request_sent, "the authority to send the referral to the vacancy", timeout_s=30)

    async def received() -> bool:
        answer = await provider.get(f"/v1/requests/{sent[0]}", headers=PROVIDER)
        return answer.status_code == 200

    await until(received, "the request to reach the provider", timeout_s=30)
    declined = await provider.post(
        f"/v1/requests/{sent[0]}/decline", json={"reason": "staffing"}, headers=PROVIDER
    )
    assert declined.status_code == 200, declined.text
    return sent[0]


async def send_poison(topic_prefix: str) -> str:
    """The poison event, on the referral topic alerting reads: its event id."""
    poison_id, poison = poison_event(topic_prefix)
    producer = AIOKafkaProducer(bootstrap_servers=CommonSettings().kafka_bootstrap_servers)
    await producer.start()
    try:
        topic = topic_prefix + REFERRAL_EVENTS.name
        await producer.send_and_wait(topic, poison, key=str(uuid4()).encode())
    finally:
        await producer.stop()
    return poison_id


def consumer_lines(served: Served, *messages: str) -> list[str]:
    return [
        line
        for line in served.lines
        if '"logger": "services.platform.consumer"' in line
        and any(message in line for message in messages)
    ]


async def test_no_log_line_carries_a_referrals_details_only_its_id(
    fresh_database_url: str, topic_prefix: str
) -> None:
    env = {
        "DATABASE_URL": fresh_database_url,
        "NEARHOME_TOPIC_PREFIX": topic_prefix,
        "NEARHOME_JWT_SECRET": SECRET,
        "NEARHOME_LOG_FORMAT": "json",
        "NEARHOME_LOG_LEVEL": "DEBUG",
        "NEARHOME_SECRET_KEYS": "test-1:"
        + base64.b64encode(b"log-privacy-test-key-of-32-bytes").decode(),
        "WIDEN_CHECK_INTERVAL": "0.5",
        **{f"{name}_CONSUMER_GROUP": f"{name}-logs-{uuid4().hex[:8]}" for name in GROUPS},
    }
    async with (
        serve("authority", env) as authority,
        serve("alerting", env) as alerting,
        serve("provider", env) as provider,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{authority.port}") as authority_api,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{provider.port}") as provider_api,
    ):
        referral_id = await a_referrals_life(authority_api)
        request_id = await a_request_declined(authority_api, provider_api)
        poison_id = await send_poison(topic_prefix)

        async def all_consumed() -> bool:
            applied = consumer_lines(alerting, f"to {referral_id}")
            return len(applied) >= 4 and bool(consumer_lines(alerting, "dead-lettering"))

        await until(all_consumed, "alerting to apply four events and dead-letter one", 30)

    served = (authority, alerting, provider)
    lines = [line for service in served for line in service.lines]
    assert not [line for line in lines if not line.startswith("{")], "every line is JSON"
    for service in served:
        assert {record["service"] for record in service.records()} == {service.name}
    records = [record for service in served for record in service.records()]

    answered = [record for record in records if record["logger"] == "nearhome.access"]
    assert {(r["method"], r["status"]) for r in answered} >= {
        ("POST", 201),
        ("PATCH", 200),
        ("POST", 422),
        ("POST", 200),
        ("GET", 200),
    }
    assert all(record.get("request_id") for record in answered)
    consumed = [r for r in records if r["logger"] == "services.platform.consumer"]
    assert consumer_lines(provider, "applying PlacementRequested")
    assert all(record.get("event_id") for record in consumed)
    # Alerting and the provider's inbox both read referral.events: each dead-letters the poison.
    dead = [r for r in consumed if r["message"].startswith("dead-lettering")]
    assert {(r["service"], r["event_id"]) for r in dead} >= {("alerting", poison_id)}
    assert {r["event_id"] for r in dead} == {poison_id}
    assert referral_id in "\n".join(lines), "a referral is named by its id"
    assert request_id in "\n".join(provider.lines), "a request too"

    found = leaks(lines)
    assert not found, "\n".join(f"{what} in {line[:400]}" for what, line in found)


def test_the_check_finds_each_kind_of_value() -> None:
    shown = [
        '{"message": "opened LOGPRIV-7Q3K9"}',
        '{"message": "needs cce_risk"}',
        '{"message": "age=16"}',
        '{"message": "a child aged 9"}',
        "{'age': 99, 'sex': 'male'}",
        '{"message": "accept_not_yet_inspected: True"}',
        '{"message": "widen after 0.000537 h"}',
        '{"message": "needed by 2140-01-31"}',
        '{"message": "at QZ98 7XY"}',
    ]
    assert {what for what, _ in leaks(shown)} == {
        "reference='LOGPRIV-7Q3K9'",
        "needs='cce_risk'",
        "age=16",
        "age=99",
        "age=9",
        "sex='male'",
        "accept_not_yet_inspected=True",
        "widen_after_hours=0.000537",
        "needed_by='2140-01-31'",
        "home_postcode_district='QZ98 7XY'",
    }
    assert leaks(['{"timestamp": "2026-11-27T20:15:16.99+00:00", "message": "females"}']) == []
