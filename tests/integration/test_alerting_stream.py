"""GET /v1/alerts/stream: server-sent events of a council's alerts, and of no other council's."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import httpx
import pytest
from alerting_fixtures import (
    LANCASHIRE,
    SEFTON,
    council_headers,
    publish,
    referral_opened,
    running_alerting,
    serving,
    setting_registered,
    vacancy_posted,
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


@dataclass
class StreamClient:
    """Reads one event stream in the background: its comments and its events, as they come."""

    comments: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    async def read(self, response: httpx.Response) -> None:
        event: dict[str, Any] = {}
        async for line in response.aiter_lines():
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
            elif not line:
                if "data" in event:  # a block with no data (`retry:` alone) is no event
                    self.events.append(event)
                event = {}
            else:
                name, _, value = line.partition(":")
                event[name] = value.strip()

    async def wait(self, what: str, condition: Any, timeout_s: float = 15) -> None:
        async with asyncio.timeout(timeout_s):
            while not condition(self):
                await asyncio.sleep(0.02)
        assert condition(self), what


@contextlib.asynccontextmanager
async def stream_of(base_url: str, authority_code: str) -> AsyncIterator[StreamClient]:
    reader = StreamClient()
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30) as client,
        client.stream(
            "GET", "/v1/alerts/stream", headers=council_headers(authority_code)
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        task = asyncio.create_task(reader.read(response))
        try:
            await reader.wait("connected", lambda r: "connected" in r.comments)
            yield reader
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_a_connected_client_receives_its_councils_alert_and_no_other_councils(
    fresh_database_url: str, topic_prefix: str
) -> None:
    async with (
        running_alerting(fresh_database_url, topic_prefix, sse_heartbeat_interval=0.2) as alerting,
        serving(alerting.app) as base_url,
        stream_of(base_url, SEFTON) as sefton,
        stream_of(base_url, LANCASHIRE) as lancashire,
    ):
        setting_id, vacancy_id, referral_id = uuid4(), uuid4(), uuid4()
        await publish(
            [
                referral_opened(referral_id, SEFTON),
                setting_registered(setting_id),
                vacancy_posted(setting_id, vacancy_id),
            ],
            topic_prefix,
        )

        await sefton.wait("an alert", lambda r: r.events)
        [event] = sefton.events
        assert event["event"] == "alert.raised"
        alert = json.loads(event["data"])
        assert event["id"] == f"{alert['alert_id']}.raised"
        assert (alert["referral_id"], alert["vacancy_id"], alert["type"]) == (
            str(referral_id),
            str(vacancy_id),
            "raised",
        )
        assert alert["authority_code"] == SEFTON
        [stored] = await alerting.alerts(SEFTON)
        assert stored["alert_id"] == alert["alert_id"]

        # Lancashire's client stays connected (heartbeats) and hears nothing of Sefton's child.
        heartbeats = len(lancashire.comments)
        await lancashire.wait("more heartbeats", lambda r: len(r.comments) >= heartbeats + 3)
        assert lancashire.events == []


async def test_the_stream_is_for_authority_tokens_only(
    fresh_database_url: str, topic_prefix: str
) -> None:
    async with running_alerting(fresh_database_url, topic_prefix) as alerting:
        answer = await alerting.client.get("/v1/alerts/stream")
        assert answer.status_code == 401
