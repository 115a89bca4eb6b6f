"""A running authority service for integration tests: its client, tokens, rows and sample bodies."""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
from aiokafka import AIOKafkaProducer
from builders import (
    PROVIDER_ID,
    REFERRAL_DETAILS,
    placement_keys,
    request_keys,
    setting_fields,
    vacancy_fields,
)
from common import in_process_on, settings_for_test
from fastapi import FastAPI
from kafka_probe import TopicProbe
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.envelope import envelop
from contracts.serialization import payload_from, to_bytes
from contracts.topics import PROVIDER_EVENTS, REFERRAL_EVENTS
from services.authority.app import Settings, create_app
from services.platform.auth import Principal, Role, issue_token, principal_for
from services.platform.clock import Clock, utc_now
from services.platform.settings import CommonSettings

SECRET = "test-secret-for-the-authority-service-suite"
BOOTSTRAP = CommonSettings().kafka_bootstrap_servers
TOPIC = REFERRAL_EVENTS.name

SEFTON = "E08000014"
WESTMORLAND_AND_FURNESS = "E06000064"

# The ReferralState fields, without referral_id and authority_code (the service assigns those).
STATE_FIELDS = (
    "referral_id",
    "authority_code",
    "reference",
    "age",
    "sex",
    "needs",
    "sibling_group_size",
    "placement_types",
    "home_postcode_district",
    "needed_by",
    "urgency",
    "min_ofsted_rating",
    "accept_not_yet_inspected",
    "search_scope",
)


def referral_body(**changes: Any) -> dict[str, Any]:
    """A valid POST /v1/referrals body with a reference of its own."""
    return {"reference": f"SEF-{uuid4().hex[:10]}", **REFERRAL_DETAILS, **changes}


def bearer(principal: Principal, ttl: timedelta = timedelta(hours=1)) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(principal, SECRET, ttl=ttl)}"}


def council(authority_code: str = SEFTON) -> dict[str, str]:
    return bearer(principal_for(Role.AUTHORITY, authority_code=authority_code))


def provider() -> dict[str, str]:
    return bearer(principal_for(Role.PROVIDER, provider_id="acme-care"))


def state_of(answer: dict[str, Any]) -> dict[str, Any]:
    """The fields of an API answer that its event's payload carries."""
    return {field: answer[field] for field in STATE_FIELDS}


@dataclass
class RunningAuthority:
    app: FastAPI
    client: httpx.AsyncClient
    engine: AsyncEngine

    async def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        async with self.engine.connect() as connection:
            result = await connection.execute(text(sql), params)
            return [dict(row._mapping) for row in result]

    async def count(self, table: str) -> int:
        rows = await self.rows(f"SELECT count(*) AS n FROM authority.{table}")
        return int(rows[0]["n"])

    async def open_referral(self, authority_code: str = SEFTON, **changes: Any) -> dict[str, Any]:
        answer = await self.client.post(
            "/v1/referrals", json=referral_body(**changes), headers=council(authority_code)
        )
        assert answer.status_code == 201, answer.text
        body: dict[str, Any] = answer.json()
        return body

    async def audit_rows(self) -> list[dict[str, Any]]:
        return await self.rows("SELECT * FROM authority.audit_log ORDER BY id")


@asynccontextmanager
async def running_authority(
    database_url: str, clock: Clock = utc_now, **settings: Any
) -> AsyncIterator[RunningAuthority]:
    """The service, its lifespan running (migrations, consumer, relay, scheduler), and a client.

    Its consumer joins a group of its own, so services running at the same time never rebalance
    each other.
    """
    app = create_app(
        settings_for_test(Settings, "authority", database_url, SECRET, **settings), clock
    )
    async with in_process_on(app, "authority", database_url) as (client, engine):
        yield RunningAuthority(app, client, engine)


@asynccontextmanager
async def referral_events_probe() -> AsyncIterator[TopicProbe]:
    """Reads `referral.events` from now on."""
    probe = await TopicProbe.from_now(BOOTSTRAP, TOPIC)
    try:
        yield probe
    finally:
        await probe.close()


# --- the provider side, as the authority's consumer reads it --------------------------------------


def setting_state(setting_id: UUID, **changes: Any) -> dict[str, Any]:
    """A SettingRegistered payload: a Sefton children's home that fits `referral_body()`."""
    return setting_fields(
        setting_id,
        **{
            "registered_places": 3,
            "age_min": 10,
            "needs_met": ["self_harm", "semh", "sibling_group", "solo_placement"],
            "postcode_district": "L20",
            "authority_code": SEFTON,
            "name": "Seaview House",
            "ofsted_urn": "SC123456",
            "referrals_email": "referrals@acme-care.example",
            **changes,
        },
    )


class ProviderFeed:
    """Publishes provider events as the provider service would, on a test's own topic."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self._sequences: dict[UUID, int] = {}
        self.sent = 0

    async def send(self, event_type: str, aggregate_id: UUID, **payload: Any) -> None:
        sequence = self._sequences.get(aggregate_id, 0) + 1
        self._sequences[aggregate_id] = sequence
        event = envelop(
            payload_from(event_type, payload),
            producer="provider",
            organisation_id=PROVIDER_ID,
            aggregate_id=aggregate_id,
            sequence=sequence,
            occurred_at=datetime.now(UTC),
        )
        await self._producer.send_and_wait(self._topic, to_bytes(event), key=event.key)
        self.sent += 1

    async def setting(self, **changes: Any) -> UUID:
        setting_id = uuid4()
        await self.send("SettingRegistered", setting_id, **setting_state(setting_id, **changes))
        return setting_id

    async def vacancy(self, setting_id: UUID, **changes: Any) -> UUID:
        vacancy_id = uuid4()
        await self.send(
            "VacancyPosted", vacancy_id, **vacancy_fields(setting_id, vacancy_id, **changes)
        )
        return vacancy_id

    async def fitting_vacancy(self, **setting_changes: Any) -> UUID:
        return await self.vacancy(await self.setting(**setting_changes))

    async def answer(self, event_type: str, request: dict[str, Any], **fields: Any) -> None:
        """A provider's answer to a request (as `GET /v1/referrals/{id}/requests` lists it)."""
        await self.send(
            event_type,
            UUID(request["vacancy_id"]),
            **request_keys(
                referral_id=request["referral_id"],
                request_id=request["request_id"],
                setting_id=request["setting_id"],
                vacancy_id=request["vacancy_id"],
                **fields,
            ),
        )

    async def placement(self, setting_id: UUID, **fields: Any) -> UUID:
        placement_id = uuid4()
        await self.send(
            "PlacementStarted",
            placement_id,
            **placement_keys(setting_id, placement_id, start_date="2026-11-24", **fields),
        )
        return placement_id


@dataclass
class RequestsWorld:
    """A running authority fed by a provider on the test's own topics, and its referral events."""

    authority: RunningAuthority
    feed: ProviderFeed
    referral_events: TopicProbe

    async def until_seen(self, timeout_s: float = 30) -> None:
        """Wait until the authority's consumer has taken in every provider event sent so far."""
        deadline = time.monotonic() + timeout_s
        while await self.authority.count("inbox") < self.feed.sent:
            assert time.monotonic() < deadline, "the authority did not take in the provider events"
            await asyncio.sleep(0.05)

    async def request(
        self, referral_id: str, vacancy_id: UUID, authority_code: str = SEFTON, **headers: str
    ) -> httpx.Response:
        return await self.authority.client.post(
            f"/v1/referrals/{referral_id}/requests",
            json={"vacancy_id": str(vacancy_id)},
            headers={**council(authority_code), **headers},
        )

    async def requests_of(self, referral_id: str) -> list[dict[str, Any]]:
        answer = await self.authority.client.get(
            f"/v1/referrals/{referral_id}/requests", headers=council()
        )
        assert answer.status_code == 200, answer.text
        listed: list[dict[str, Any]] = answer.json()
        return listed

    async def decide(
        self, request_id: str, decision: str, authority_code: str = SEFTON
    ) -> httpx.Response:
        return await self.authority.client.post(
            f"/v1/requests/{request_id}/{decision}", headers=council(authority_code)
        )


@asynccontextmanager
async def requests_world(database_url: str, topic_prefix: str) -> AsyncIterator[RequestsWorld]:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    try:
        probe = await TopicProbe.from_now(BOOTSTRAP, REFERRAL_EVENTS.prefixed(topic_prefix))
        try:
            async with running_authority(database_url, topic_prefix=topic_prefix) as authority:
                yield RequestsWorld(
                    authority, ProviderFeed(producer, topic_prefix + PROVIDER_EVENTS.name), probe
                )
        finally:
            await probe.close()
    finally:
        await producer.stop()
