"""A running authority service for integration tests: its client, tokens, rows and sample bodies."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import uuid4

import httpx
from fastapi import FastAPI
from kafka_probe import TopicProbe
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.topics import REFERRAL_EVENTS
from services.authority.app import Settings, create_app
from services.platform.auth import Principal, Role, issue_token, principal_for
from services.platform.clock import Clock, utc_now
from services.platform.database import create_engine
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
    return {
        "reference": f"SEF-{uuid4().hex[:10]}",
        "age": 13,
        "sex": "female",
        "needs": ["semh"],
        "sibling_group_size": 1,
        "placement_types": ["childrens_home"],
        "home_postcode_district": "L20",
        "needed_by": "2026-12-01",
        "urgency": "planned",
        **changes,
    }


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
    settings.setdefault("consumer_group", f"test-authority-{uuid4().hex[:10]}")
    app = create_app(Settings(database_url=database_url, jwt_secret=SECRET, **settings), clock)
    engine = create_engine(database_url)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://authority.test"
            ) as client,
        ):
            yield RunningAuthority(app, client, engine)
    finally:
        await engine.dispose()


@asynccontextmanager
async def referral_events_probe() -> AsyncIterator[TopicProbe]:
    """Reads `referral.events` from now on."""
    probe = await TopicProbe.from_now(BOOTSTRAP, TOPIC)
    try:
        yield probe
    finally:
        await probe.close()
