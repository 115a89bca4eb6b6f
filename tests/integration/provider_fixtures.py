"""The provider service run in-process for a test: its app, an HTTP client, tokens and bodies."""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import httpx
from fastapi import FastAPI
from kafka_probe import TopicProbe
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from contracts.envelope import Envelope
from contracts.events import EventPayload
from contracts.topics import PROVIDER_EVENTS, TopicSpec
from services.platform.auth import Role, issue_token, principal_for
from services.platform.clock import Clock, utc_now
from services.provider import tables
from services.provider.app import Settings, create_app

SECRET = "provider-test-secret-of-at-least-32-bytes"
SEFTON = "E08000014"
WESTMORLAND_AND_FURNESS = "E06000064"
BOOTSTRAP = Settings().kafka_bootstrap_servers


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
    return {
        **profile_body(),
        "placement_type": "childrens_home",
        "registered_places": 4,
        "ofsted_rating": "good",
        "age_min": 8,
        "age_max": 17,
        "sexes_accepted": ["female", "male"],
        "needs_met": ["semh", "autism"],
        "postcode_district": "LA9",
        **changes,
    }


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

    async def register_setting(self, provider_id: str, **changes: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/settings", json=setting_body(**changes), headers=provider_headers(provider_id)
        )
        assert response.status_code == 201, response.text
        answer: dict[str, Any] = response.json()
        return answer

    async def post_vacancy(
        self, provider_id: str, setting_id: str, **changes: Any
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/vacancies",
            json=vacancy_body(setting_id, **changes),
            headers=provider_headers(provider_id),
        )
        assert response.status_code == 201, response.text
        answer: dict[str, Any] = response.json()
        return answer

    async def start_placement(
        self, provider_id: str, setting_id: str, **changes: Any
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/placements",
            json=placement_body(setting_id, **changes),
            headers=provider_headers(provider_id),
        )
        assert response.status_code == 201, response.text
        answer: dict[str, Any] = response.json()
        return answer


@contextlib.asynccontextmanager
async def running_provider(
    database_url: str, *, clock: Clock = utc_now, **settings: Any
) -> AsyncIterator[RunningProvider]:
    """The service on `database_url` (a fresh database), its lifespan run around the block."""
    configured = Settings(
        database_url=database_url,
        jwt_secret=SECRET,
        **{
            "expiry_check_interval": 3600.0,
            "relay_retry_interval": 0.2,
            # Each service under test reads referral.events in a group of its own.
            "consumer_group": f"nearhome-provider-test-{uuid4().hex[:10]}",
            "broker_retry_interval": 0.5,
            **settings,
        },
    )
    app = create_app(configured, clock=clock)
    database = create_async_engine(database_url)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://provider.test"
            ) as client,
        ):
            yield RunningProvider(app, client, configured, database)
    finally:
        await database.dispose()


async def probe_from_now(bootstrap_servers: str, topic: TopicSpec) -> TopicProbe:
    """A probe on every partition of `topic`, from its current end."""
    return await TopicProbe.from_now(bootstrap_servers, topic)


@contextlib.asynccontextmanager
async def provider_events_probe() -> AsyncIterator[TopicProbe]:
    """Reads `provider.events` from now on."""
    probe = await probe_from_now(BOOTSTRAP, PROVIDER_EVENTS)
    try:
        yield probe
    finally:
        await probe.close()


def of_provider(provider_id: str) -> Any:
    """A probe match for every event a provider's actions caused."""
    return lambda event: event.organisation_id == provider_id


async def settled_events_of(
    probe: TopicProbe, provider_id: str, count: int, timeout_s: float = 30
) -> list[Envelope[EventPayload]]:
    """Wait for `count` events of `provider_id`, read on a little, and return all that came."""
    await probe.wait_for(of_provider(provider_id), count=count, timeout_s=timeout_s)
    await probe.settle()
    return [arrival.event for arrival in probe.matching(of_provider(provider_id))]


def answer_matches(answer: dict[str, Any], payload: EventPayload, *fields: str) -> None:
    """Each field of the HTTP answer equals the event payload's, as JSON."""
    published = payload.model_dump(mode="json")
    for field in fields:
        assert answer[field] == published[field], (field, answer[field], published[field])
