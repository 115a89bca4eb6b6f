"""The provider service run in-process for a test: its app, an HTTP client, tokens and bodies."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from dataclasses import field as default
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID, uuid4

import httpx
from aiokafka import AIOKafkaProducer
from builders import CHILD, SETTING_DETAILS, request_keys
from common import in_process_on, settings_for_test
from fastapi import FastAPI
from kafka_probe import TopicProbe
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.envelope import Envelope, envelop
from contracts.events import EventPayload, PlacementRequested
from contracts.serialization import to_bytes
from contracts.topics import PROVIDER_EVENTS, REFERRAL_EVENTS, TopicSpec, all_topics
from services.platform.auth import Role, issue_token, principal_for
from services.platform.clock import Clock, utc_now
from services.provider import tables
from services.provider.app import Settings, create_app

SECRET = "provider-test-secret-of-at-least-32-bytes"
SEFTON = "E08000014"
WESTMORLAND_AND_FURNESS = "E06000064"
BOOTSTRAP = Settings().kafka_bootstrap_servers

Followed = TypeVar("Followed", bound=EventPayload)


def new_provider_id() -> str:
    return f"acme-{uuid4().hex[:10]}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def provider_headers(provider_id: str, **extra: str) -> dict[str, str]:
    token = issue_token(principal_for(Role.PROVIDER, provider_id=provider_id), SECRET)
    return {**bearer(token), **extra}


def authority_headers(authority_code: str = SEFTON) -> dict[str, str]:
    return bearer(issue_token(principal_for(Role.AUTHORITY, authority_code=authority_code), SECRET))


PROFILE_FIELDS = ("name", "ofsted_urn", "referrals_email", "referrals_phone", "description")


def profile_body(**changes: Any) -> dict[str, Any]:
    """A setting's public profile: required to register any setting but a foster household."""
    return {
        "name": "Ashdale House",
        "ofsted_urn": "SC123456",
        "referrals_email": "referrals@acme-care.example",
        "referrals_phone": "01539 000 123",
        "description": "A four-bed home on the edge of Kendal, close to schools and the fells.",
        **changes,
    }


def setting_body(**changes: Any) -> dict[str, Any]:
    return {**profile_body(), **SETTING_DETAILS, **changes}


def vacancy_body(setting_id: str, **changes: Any) -> dict[str, Any]:
    return {"setting_id": setting_id, "beds": 1, "available_from": "2026-12-01", **changes}


def placement_body(setting_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "setting_id": setting_id,
        "placing_authority_code": SEFTON,
        "start_date": "2026-11-24",
        **changes,
    }


@dataclass
class RunningProvider:
    """A provider service with its lifespan running, and a client that calls it in-process."""

    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    database: AsyncEngine

    async def count(self, table: Table) -> int:
        async with self.database.connect() as connection:
            return int(await connection.scalar(select(func.count()).select_from(table)) or 0)

    async def counts(self) -> dict[str, int]:
        """Rows in every table of the provider schema: a request that changed nothing keeps them.

        But the inbox consumer's own bookkeeping, which moves on as it reads referral.events.
        """
        return {
            table.name: await self.count(table)
            for table in tables.METADATA.sorted_tables
            if table not in tables.CONSUMER_TABLES
        }

    async def created(self, provider_id: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` to `path` as the provider; the 201 answer's body."""
        response = await self.client.post(path, json=body, headers=provider_headers(provider_id))
        assert response.status_code == 201, response.text
        answer: dict[str, Any] = response.json()
        return answer

    async def register_setting(self, provider_id: str, **changes: Any) -> dict[str, Any]:
        return await self.created(provider_id, "/v1/settings", setting_body(**changes))

    async def post_vacancy(
        self, provider_id: str, setting_id: str, **changes: Any
    ) -> dict[str, Any]:
        return await self.created(provider_id, "/v1/vacancies", vacancy_body(setting_id, **changes))

    async def start_placement(
        self, provider_id: str, setting_id: str, **changes: Any
    ) -> dict[str, Any]:
        body = placement_body(setting_id, **changes)
        return await self.created(provider_id, "/v1/placements", body)


@contextlib.asynccontextmanager
async def running_provider(
    database_url: str, *, clock: Clock = utc_now, **settings: Any
) -> AsyncIterator[RunningProvider]:
    """The service on `database_url` (a fresh database), its lifespan run around the block."""
    configured = settings_for_test(
        Settings,
        "provider",
        database_url,
        SECRET,
        **{
            "expiry_check_interval": 3600.0,
            "relay_retry_interval": 0.2,
            "broker_retry_interval": 0.5,
            **settings,
        },
    )
    app = create_app(configured, clock=clock)
    async with in_process_on(app, "provider", database_url) as (client, database):
        yield RunningProvider(app, client, configured, database)


async def probe_from_now(bootstrap_servers: str, topic: TopicSpec) -> TopicProbe:
    """A probe on every partition of `topic`, from its current end."""
    return await TopicProbe.from_now(bootstrap_servers, topic)


def of_provider(provider_id: str) -> Any:
    """A probe match for every event a provider's actions caused."""
    return lambda event: event.organisation_id == provider_id


class ProviderEvents(TopicProbe):
    """A probe on (a prefixed) `provider.events`, read by provider."""

    async def settled_of(
        self, provider_id: str, count: int, timeout_s: float = 30
    ) -> list[Envelope[EventPayload]]:
        """Wait for `count` events of `provider_id`, read on a little, and return all that came."""
        await self.wait_for(of_provider(provider_id), count=count, timeout_s=timeout_s)
        await self.settle()
        return [arrival.event for arrival in self.matching(of_provider(provider_id))]


@contextlib.asynccontextmanager
async def provider_events_probe() -> AsyncIterator[ProviderEvents]:
    """Reads `provider.events` from now on."""
    probe = await ProviderEvents.from_now(BOOTSTRAP, PROVIDER_EVENTS)
    try:
        yield probe
    finally:
        await probe.close()


def answer_matches(answer: dict[str, Any], payload: EventPayload, *fields: str) -> None:
    """Each field of the HTTP answer equals the event payload's, as JSON."""
    published = payload.model_dump(mode="json")
    for field in fields:
        assert answer[field] == published[field], (field, answer[field], published[field])


# --- an exchange: the service with a council publishing on its referral.events -------------------

START = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


class Clock:
    """The service's clock, moved on by the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def prefixed_topic(prefix: str, topic: TopicSpec) -> TopicSpec:
    return next(spec for spec in all_topics(prefix) if spec.name == prefix + topic.name)


def placement_requested(
    authority_code: str, vacancy: dict[str, Any], **child: Any
) -> PlacementRequested:
    """A fresh referral from `authority_code` for `vacancy`: a planned place for a girl of 14."""
    return PlacementRequested.model_validate(
        request_keys(
            referral_id=uuid4(),
            request_id=uuid4(),
            setting_id=vacancy["setting_id"],
            vacancy_id=vacancy["vacancy_id"],
            authority_code=authority_code,
            provider_id=vacancy["provider_id"],
            **{**CHILD, "age": 14, "needed_by": "2026-12-07", **child},
        )
    )


def following(kind: type[Followed], requested: PlacementRequested, **more: Any) -> Followed:
    """An event of the request `requested` made (a withdrawal, an offer...): `more`, and the
    fields naming the request."""
    return kind(**requested.model_dump(include=set(request_keys())), **more)


@dataclass
class Council:
    """Publishes a council's referral events on the test's referral.events, as the authority."""

    producer: AIOKafkaProducer
    topic: str
    code: str = SEFTON
    sequences: dict[UUID, int] = default(default_factory=dict)

    async def publish(self, payload: EventPayload, referral_id: UUID) -> Envelope[Any]:
        self.sequences[referral_id] = self.sequences.get(referral_id, 0) + 1
        envelope = envelop(
            payload,
            producer="authority",
            organisation_id=self.code,
            aggregate_id=referral_id,
            sequence=self.sequences[referral_id],
        )
        await self.deliver(envelope)
        return envelope

    async def deliver(self, envelope: Envelope[Any]) -> None:
        await self.producer.send_and_wait(self.topic, to_bytes(envelope), key=envelope.key)

    async def request(self, vacancy: dict[str, Any], **child: Any) -> PlacementRequested:
        requested = placement_requested(self.code, vacancy, **child)
        await self.publish(requested, requested.referral_id)
        return requested

    async def about(
        self, kind: type[EventPayload], requested: PlacementRequested, **more: Any
    ) -> Any:
        return await self.publish(following(kind, requested, **more), requested.referral_id)


@dataclass
class Exchange:
    service: RunningProvider
    council: Council
    probe: ProviderEvents
    clock: Clock

    async def get(self, path: str, provider_id: str) -> Any:
        answer = await self.service.client.get(path, headers=provider_headers(provider_id))
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def post(self, path: str, provider_id: str, body: dict[str, Any]) -> Any:
        return await self.service.client.post(
            path, json=body, headers=provider_headers(provider_id)
        )

    async def until(
        self, provider_id: str, request_id: UUID, status: str, timeout_s: float = 20
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            answer = await self.service.client.get(
                f"/v1/requests/{request_id}", headers=provider_headers(provider_id)
            )
            if answer.status_code == 200 and answer.json()["status"] == status:
                return dict(answer.json())
            assert time.monotonic() < deadline, f"request {request_id} not {status}: {answer.text}"
            await asyncio.sleep(0.1)

    async def open_vacancy(self, provider_id: str, beds: int = 1) -> dict[str, Any]:
        setting = await self.service.register_setting(provider_id)
        return await self.service.post_vacancy(provider_id, setting["setting_id"], beds=beds)

    async def requested(self, provider_id: str, beds: int = 1, **child: Any) -> Any:
        vacancy = await self.open_vacancy(provider_id, beds)
        requested = await self.council.request(vacancy, **child)
        await self.until(provider_id, requested.request_id, "requested")
        return vacancy, requested

    async def events_of(self, provider_id: str, count: int) -> list[Envelope[Any]]:
        return await self.probe.settled_of(provider_id, count)


@contextlib.asynccontextmanager
async def exchange(database_url: str, prefix: str, **settings: Any) -> AsyncIterator[Exchange]:
    clock = Clock()
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    probe = await ProviderEvents.from_now(BOOTSTRAP, prefixed_topic(prefix, PROVIDER_EVENTS))
    try:
        async with running_provider(
            database_url, topic_prefix=prefix, clock=clock, **settings
        ) as service:
            council = Council(producer, prefix + REFERRAL_EVENTS.name)
            yield Exchange(service, council, probe, clock)
    finally:
        await probe.close()
        await producer.stop()


def of_type(events: list[Envelope[Any]], kind: type[EventPayload]) -> list[Envelope[Any]]:
    return [event for event in events if isinstance(event.payload, kind)]


async def no_new_events(ex: Exchange, provider_id: str, before: int) -> None:
    await ex.probe.settle()
    mine: Callable[[Envelope[Any]], bool] = lambda e: e.organisation_id == provider_id  # noqa: E731
    assert len(ex.probe.matching(mine)) == before
