"""No log line carries a referral's details: only its id.

The authority and alerting services run as `nearhome serve` runs them, as real processes on a fresh
database and fresh topics, logging JSON at DEBUG. A referral with a distinctive value in every
field is opened, changed, widened and closed; a bad request quotes distinctive values; a poison
referral event (distinctive values again) reaches alerting's consumer and is dead-lettered. Then
every line the two processes wrote is JSON, request lines carry their request id, consumer lines
their event id, and no line contains any of those values.
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

from contracts.topics import REFERRAL_EVENTS
from services.platform.auth import Role, issue_token, principal_for
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


def forbidden_patterns(*bodies: dict[str, Any]) -> dict[str, re.Pattern[str]]:
    """What would show a value of these bodies' fields in a line: a text value anywhere, as a
    whole word; a number or boolean right after its field's name (alone, `15` is in timestamps)."""
    patterns: dict[str, re.Pattern[str]] = {}
    for body in bodies:
        for name, value in body.items():
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str):
                    pattern = rf"(?<![\w-]){re.escape(item)}(?![\w-])"
                else:
                    text = json.dumps(item)
                    words = f"{text}|{text.capitalize()}"
                    pattern = rf"{re.escape(name)}\W{{0,12}}({words})(?![\w.])"
                    if isinstance(item, float):
                        pattern += rf"|{re.escape(text)}"  # distinctive on its own
                patterns[f"{name}={item!r}"] = re.compile(pattern)
    return patterns


FORBIDDEN = forbidden_patterns(OPENED, CHANGED, REFUSED, POISON)


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
        "AUTHORITY_CONSUMER_GROUP": f"authority-logs-{uuid4().hex[:8]}",
        "ALERTING_CONSUMER_GROUP": f"alerting-logs-{uuid4().hex[:8]}",
    }
    token = issue_token(principal_for(Role.AUTHORITY, authority_code=SEFTON), SECRET)
    council = {"Authorization": f"Bearer {token}"}
    async with serve("authority", env) as authority, serve("alerting", env) as alerting:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{authority.port}") as client:
            opened = await client.post("/v1/referrals", json=OPENED, headers=council)
            assert opened.status_code == 201, opened.text
            referral_id = opened.json()["referral_id"]
            changed = await client.patch(
                f"/v1/referrals/{referral_id}", json=CHANGED, headers=council
            )
            assert changed.status_code == 200, changed.text
            refused = await client.post("/v1/referrals", json=REFUSED, headers=council)
            assert refused.status_code == 422, refused.text

            async def widened() -> bool:
                answer = await client.get(f"/v1/referrals/{referral_id}", headers=council)
                return answer.json()["widened_at"] is not None

            await until(widened, "the referral to widen", timeout_s=30)
            closed = await client.post(
                f"/v1/referrals/{referral_id}/close", json={"outcome": "withdrawn"}, headers=council
            )
            assert closed.status_code == 200, closed.text

        poison_id, poison = poison_event(topic_prefix)
        producer = AIOKafkaProducer(bootstrap_servers=CommonSettings().kafka_bootstrap_servers)
        await producer.start()
        try:
            topic = topic_prefix + REFERRAL_EVENTS.name
            await producer.send_and_wait(topic, poison, key=str(uuid4()).encode())
        finally:
            await producer.stop()

        def consumer_lines(*messages: str) -> list[str]:
            return [
                line
                for line in alerting.lines
                if '"logger": "services.platform.consumer"' in line
                and any(message in line for message in messages)
            ]

        async def all_consumed() -> bool:
            applied = consumer_lines(f"to {referral_id}")
            return len(applied) >= 4 and bool(consumer_lines("dead-lettering"))

        await until(all_consumed, "alerting to apply four events and dead-letter one", 30)

    lines = authority.lines + alerting.lines
    assert not [line for line in lines if not line.startswith("{")], "every line is JSON"
    records = authority.records() + alerting.records()
    assert all(isinstance(record, dict) for record in records)
    assert {record["service"] for record in authority.records()} == {"authority"}
    assert {record["service"] for record in alerting.records()} == {"alerting"}

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
    assert consumed
    assert all(record.get("event_id") for record in consumed)
    [dead] = [r for r in consumed if r["message"].startswith("dead-lettering")]
    assert dead["event_id"] == poison_id
    assert referral_id in "\n".join(lines), "a referral is named by its id"

    found = leaks(lines)
    assert not found, "\n".join(f"{what} in {line[:400]}" for what, line in found)


def test_the_check_finds_each_kind_of_value() -> None:
    shown = [
        '{"message": "opened LOGPRIV-7Q3K9"}',
        '{"message": "needs cce_risk"}',
        '{"message": "age=16"}',
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
        "sex='male'",
        "accept_not_yet_inspected=True",
        "widen_after_hours=0.000537",
        "needed_by='2140-01-31'",
        "home_postcode_district='QZ98 7XY'",
    }
    assert leaks(['{"timestamp": "2026-11-27T20:15:16.99+00:00", "message": "female"}']) == []
