"""The alerting service run in-process for a test, a webhook receiver, and events to feed it.

Each alerting app joins its own consumer group and reads the test's prefixed topics; webhooks go to
a real HTTP receiver on 127.0.0.1 (uvicorn, in-process) that can be told to refuse.
"""

import asyncio
import base64
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaProducer
from builders import (
    CHILD,
    IN_LANCASHIRE,
    referral_fields,
    request_keys,
    setting_fields,
    vacancy_fields,
)
from common import Metrics, in_process_on, metrics_of, settings_for_test, until
from fastapi import FastAPI
from identity_provider import IdentityProvider, serving_identity_provider
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from contracts.envelope import Envelope, envelop
from contracts.serialization import payload_from, to_bytes
from contracts.topics import REFERRAL_EVENTS, topic_for_event
from services.alerting.app import Settings, create_app
from services.platform.auth import Principal, Role, issue_token, principal_for
from services.platform.environment import is_development
from services.platform.migrations import upgrade_to_head_async
from services.platform.tables import connection_of

# Alerting's shards: one per partition of referral.events (services/alerting/shards.py).
SHARDS = REFERRAL_EVENTS.partitions

SECRET = "alerting-test-secret-of-at-least-32-bytes"
LOCAL_RECEIVERS = "127.0.0.1"
SECRET_KEYS = "test-1:" + base64.b64encode(b"alerting-test-key-of-32-bytes!!!").decode()
BOOTSTRAP = Settings().kafka_bootstrap_servers

SEFTON = "E08000014"
LANCASHIRE = "E10000017"
MANCHESTER = "E08000003"
WESTMORLAND_AND_FURNESS = "E06000064"

# Short enough for a test: a delivery is tried four times within about a second.
FAST_RETRIES: dict[str, Any] = {
    "webhook_backoff": (0.2, 0.3, 0.4),
    "webhook_timeout": 2.0,
    "delivery_poll_interval": 0.05,
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Identity:
    """Who signs the tests' tokens: `issue_token` (development), or while a test runs in
    production (the `production_identity` fixture), its stand-in identity provider."""

    provider: IdentityProvider | None = None

    def token(self, principal: Principal) -> str:
        if self.provider is not None:
            return self.provider.token_for(principal)
        return issue_token(principal, SECRET)


IDENTITY = Identity()


def council_headers(authority_code: str = SEFTON, **extra: str) -> dict[str, str]:
    token = IDENTITY.token(principal_for(Role.AUTHORITY, authority_code=authority_code))
    return {**bearer(token), **extra}


def provider_headers(provider_id: str = "acme-care") -> dict[str, str]:
    return bearer(IDENTITY.token(principal_for(Role.PROVIDER, provider_id=provider_id)))


@contextlib.contextmanager
def production_identity(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Production (NEARHOME_ENV unset): the settings of services that trust a stand-in identity
    provider, whose tokens `council_headers` and `provider_headers` make meanwhile."""
    monkeypatch.delenv("NEARHOME_ENV", raising=False)
    with serving_identity_provider() as provider:
        IDENTITY.provider = provider
        try:
            yield provider.settings()
        finally:
            IDENTITY.provider = None


# --- the service ----------------------------------------------------------------------------------


@dataclass
class RunningAlerting:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    engine: AsyncEngine

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        async with connection_of(self.engine) as connection:
            return [dict(row) for row in await connection.fetch(sql, *args)]

    async def subscribe(
        self, authority_code: str, url: str, secret: str | None = None
    ) -> dict[str, Any]:
        body = {"url": url} if secret is None else {"url": url, "secret": secret}
        response = await self.client.post(
            "/v1/subscriptions", json=body, headers=council_headers(authority_code)
        )
        assert response.status_code == 201, response.text
        answer: dict[str, Any] = response.json()
        return answer

    async def subscribe_as(self, headers: dict[str, str], url: str) -> dict[str, Any]:
        """A webhook for whoever `headers`' token names (a council or a provider)."""
        response = await self.client.post("/v1/subscriptions", json={"url": url}, headers=headers)
        assert response.status_code == 201, response.text
        answer: dict[str, Any] = response.json()
        return answer

    async def subscriptions(self, authority_code: str) -> list[dict[str, Any]]:
        response = await self.client.get(
            "/v1/subscriptions", headers=council_headers(authority_code)
        )
        assert response.status_code == 200, response.text
        answer: list[dict[str, Any]] = response.json()
        return answer

    async def alerts(self, authority_code: str, **params: str) -> list[dict[str, Any]]:
        response = await self.client.get(
            "/v1/alerts", params=params, headers=council_headers(authority_code)
        )
        assert response.status_code == 200, response.text
        answer: list[dict[str, Any]] = response.json()
        return answer

    async def stored_alerts(self) -> list[dict[str, Any]]:
        return await self.fetch("SELECT * FROM alerting.alerts ORDER BY raised_at, alert_id")

    async def knows_vacancy(self, vacancy_id: Any) -> bool:
        """Every shard has the vacancy (each keeps its own copy)."""
        rows = await self.fetch(
            "SELECT shard FROM alerting.vacancies WHERE vacancy_id = $1", UUID(str(vacancy_id))
        )
        return len(rows) == SHARDS

    async def consumed_past(self, topic: str, partition: int, offset: int) -> bool:
        """The shard of a referral.events partition, or every shard for provider.events, has
        stored a position past `offset`."""
        rows = await self.fetch(
            "SELECT next_offset FROM alerting.consumer_positions"
            " WHERE topic = $1 AND partition = $2",
            topic,
            partition,
        )
        readers = 1 if topic.endswith(REFERRAL_EVENTS.name) else SHARDS
        return len(rows) == readers and all(row["next_offset"] > offset for row in rows)

    async def metrics(self) -> Metrics:
        return await metrics_of(self.client)


def alerting_settings(database_url: str, topic_prefix: str, **settings: Any) -> Settings:
    return settings_for_test(
        Settings,
        "alerting",
        database_url,
        SECRET,
        **{
            "topic_prefix": topic_prefix,
            "freeze_gc_after_load": False,
            "relay_retry_interval": 0.2,
            # The tests' webhook receivers listen on 127.0.0.1, over http: trusted by name.
            "webhook_allowed_hosts": (LOCAL_RECEIVERS,),
            # Subscription secrets are encrypted at rest under this key (platform/secrets.py).
            "secret_keys": SECRET_KEYS,
            **FAST_RETRIES,
            **settings,
        },
    )


@contextlib.asynccontextmanager
async def running_alerting(
    database_url: str, topic_prefix: str, **settings: Any
) -> AsyncIterator[RunningAlerting]:
    """The service on `database_url`, reading `topic_prefix`'s topics, its lifespan around it.
    In production (`production_identity`) its schema is migrated first, as `nearhome migrate`
    would: the service only checks it is at head."""
    configured = alerting_settings(database_url, topic_prefix, **settings)
    if not is_development():
        await upgrade_to_head_async("alerting", database_url)
    app = create_app(configured)
    async with in_process_on(app, "alerting", database_url) as (client, engine):
        yield RunningAlerting(app, client, configured, engine)


# --- real HTTP servers on 127.0.0.1 ---------------------------------------------------------------


@contextlib.asynccontextmanager
async def serving(app: Any, **config: Any) -> AsyncIterator[str]:
    """`app` served by uvicorn on 127.0.0.1 (its lifespan is the caller's); yields its base URL."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
            access_log=False,
            **config,
        )
    )
    task = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        while not server.started:
            assert not task.done(), "the server stopped before it started"
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        listening.close()


@dataclass
class StreamClient:
    """Reads one event stream in the background: its comments and its events, as they come; the
    last id it was given (by an event or an id-only block, as EventSource keeps it), and whether
    the server ended the stream."""

    comments: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    last_id: str | None = None
    ended: bool = False

    async def read(self, response: httpx.Response) -> None:
        event: dict[str, Any] = {}
        async for line in response.aiter_lines():
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
            elif not line:
                if "id" in event:
                    self.last_id = event["id"]
                if "data" in event:  # a block with no data (`retry:` alone) is no event
                    self.events.append(event)
                event = {}
            else:
                name, _, value = line.partition(":")
                event[name] = value.strip()
        self.ended = True

    async def wait(self, what: str, condition: Any, timeout_s: float = 15) -> None:
        async with asyncio.timeout(timeout_s):
            while not condition(self):
                await asyncio.sleep(0.02)
        assert condition(self), what


@contextlib.asynccontextmanager
async def stream_as(
    base_url: str,
    headers: dict[str, str],
    last_event_id: str | None = None,
    reader: StreamClient | None = None,
) -> AsyncIterator[StreamClient]:
    """GET /v1/alerts/stream with `headers` (and `Last-Event-ID`, if given), read in the
    background by `reader` (a new `StreamClient` if none) once it says it is connected."""
    reader_ = StreamClient() if reader is None else reader
    if last_event_id is not None:
        headers = {**headers, "Last-Event-ID": last_event_id}
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30) as client,
        client.stream("GET", "/v1/alerts/stream", headers=headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        task = asyncio.create_task(reader_.read(response))
        try:
            await reader_.wait("connected", lambda r: "connected" in r.comments)
            yield reader_
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def stream_of(
    base_url: str, authority_code: str
) -> contextlib.AbstractAsyncContextManager[StreamClient]:
    return stream_as(base_url, council_headers(authority_code))


@dataclass(frozen=True)
class Webhook:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    at: float  # time.monotonic() on arrival


@dataclass
class WebhookReceiver:
    """Records every POST; answers each path's scripted statuses first, then 200."""

    base_url: str = ""
    requests: list[Webhook] = field(default_factory=list)
    scripts: dict[str, list[int]] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.base_url + path

    def refuse(self, path: str, *statuses: int) -> None:
        self.scripts[path] = list(statuses)

    def received(self, path: str, *, accepted_only: bool = True) -> list[Webhook]:
        return [
            hook
            for hook in self.requests
            if hook.path == path and (not accepted_only or hook.status == 200)
        ]

    async def wait_for(self, path: str, count: int, timeout_s: float = 20) -> list[Webhook]:
        """The first `count` accepted webhooks to `path`."""

        async def arrived() -> bool:
            return len(self.received(path)) >= count

        await until(arrived, f"{count} webhooks at {path}", timeout_s, every_s=0.01)
        return self.received(path)[:count]

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        script = self.scripts.get(request.url.path, [])
        status = script.pop(0) if script else 200
        self.requests.append(
            Webhook(request.url.path, dict(request.headers), body, status, time.monotonic())
        )
        return Response(status_code=status)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])


@contextlib.asynccontextmanager
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    async with serving(receiver.app()) as base_url:
        receiver.base_url = base_url
        yield receiver


# --- events published straight to the test's topics ----------------------------------------------


def event(
    event_type: str,
    aggregate_id: Any,
    *,
    sequence: int = 1,
    organisation_id: str = "acme-care",
    **fields: Any,
) -> Envelope[Any]:
    return envelop(
        payload_from(event_type, fields),
        producer="tests",
        organisation_id=organisation_id,
        aggregate_id=UUID(str(aggregate_id)),
        sequence=sequence,
        occurred_at=datetime.now(UTC),
    )


def setting_registered(setting_id: UUID, **changes: Any) -> Envelope[Any]:
    return event(
        "SettingRegistered",
        setting_id,
        **setting_fields(setting_id, **{**IN_LANCASHIRE, **changes}),
    )


def vacancy_posted(setting_id: UUID, vacancy_id: UUID, **changes: Any) -> Envelope[Any]:
    return event("VacancyPosted", vacancy_id, **vacancy_fields(setting_id, vacancy_id, **changes))


def referral_opened(
    referral_id: UUID, authority_code: str = SEFTON, **changes: Any
) -> Envelope[Any]:
    return event(
        "ReferralOpened",
        referral_id,
        organisation_id=authority_code,
        **referral_fields(
            referral_id,
            **{"authority_code": authority_code, "reference": f"REF-{uuid4().hex[:8]}", **changes},
        ),
    )


def placement_requested(
    referral_id: UUID,
    setting_id: UUID,
    vacancy_id: UUID,
    *,
    provider_id: str = "acme-care",
    authority_code: str = SEFTON,
    request_id: UUID | None = None,
    sequence: int = 1,
) -> Envelope[Any]:
    """A council's request for a bed of the vacancy, an event of its referral."""
    return event(
        "PlacementRequested",
        referral_id,
        sequence=sequence,
        organisation_id=authority_code,
        **request_keys(
            referral_id=referral_id,
            request_id=request_id or uuid4(),
            setting_id=setting_id,
            vacancy_id=vacancy_id,
            authority_code=authority_code,
            provider_id=provider_id,
            **CHILD,
        ),
    )


def request_followed_up(
    event_type: str, requested: Envelope[Any], *, sequence: int, **fields: Any
) -> Envelope[Any]:
    """What the council does next with a request (`RequestWithdrawn`, `OfferAccepted`): an event
    of the same referral, naming the same request."""
    request = requested.payload
    return event(
        event_type,
        request.referral_id,
        sequence=sequence,
        organisation_id=request.authority_code,
        **request_keys(
            referral_id=request.referral_id,
            request_id=request.request_id,
            setting_id=request.setting_id,
            vacancy_id=request.vacancy_id,
            authority_code=request.authority_code,
            provider_id=request.provider_id,
            **fields,
        ),
    )


def request_answered(
    event_type: str,
    setting_id: UUID,
    vacancy_id: UUID,
    *,
    authority_code: str = SEFTON,
    sequence: int,
    request_id: UUID | None = None,
    referral_id: UUID | None = None,
    answering: Envelope[Any] | None = None,
    **fields: Any,
) -> Envelope[Any]:
    """The provider's answer to a council's request (`PlacementOffered`, `PlacementDeclined`,
    `OfferExpired`, `OfferWithdrawn`), an event of the vacancy after its `VacancyPosted`.

    The request is `answering`'s (an event of it: the request, or an earlier answer) if given.
    """
    if answering is not None:
        request = answering.payload
        request_id, referral_id = request.request_id, request.referral_id
        authority_code = request.authority_code
    return event(
        event_type,
        vacancy_id,
        sequence=sequence,
        **request_keys(
            referral_id=referral_id or uuid4(),
            request_id=request_id or uuid4(),
            setting_id=setting_id,
            vacancy_id=vacancy_id,
            authority_code=authority_code,
            **fields,
        ),
    )


@dataclass(frozen=True)
class Position:
    topic: str
    partition: int
    offset: int


async def publish(events: Sequence[Envelope[Any]], topic_prefix: str) -> list[Position]:
    """Produce the events to their topics under `topic_prefix`, keyed as the catalogue says."""
    return await publish_raw(
        [(topic_prefix + topic_for_event(e.event_type).name, e.key, to_bytes(e)) for e in events]
    )


async def publish_raw(records: Sequence[tuple[str, bytes, bytes]]) -> list[Position]:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = [await producer.send(topic, value, key=key) for topic, key, value in records]
        metadata = await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return [Position(m.topic, m.partition, m.offset) for m in metadata]
