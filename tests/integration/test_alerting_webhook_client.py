"""The webhook client against a real HTTP server on 127.0.0.1: answers, reuse, failures."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from alerting_fixtures import serving
from common import free_port
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from services.alerting.webhook_client import (
    WebhookSender,
    WebhookSendError,
    shared_tls_context,
)

BODY = b'{"alert_id":"a","type":"raised"}'
HEADERS = [("Content-Type", "application/json"), ("X-Signature", "t=1,v1=00")]


@dataclass
class Seen:
    bodies: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    peers: list[tuple[str, int]] = field(default_factory=list)


def receiver(seen: Seen) -> Starlette:
    async def ok(request: Request) -> Response:
        seen.bodies.append(await request.body())
        seen.headers.append(dict(request.headers))
        assert request.client is not None
        seen.peers.append((request.client.host, request.client.port))
        return Response(status_code=204)

    async def refuse(request: Request) -> Response:
        await request.body()
        return Response("no", status_code=500)

    async def slow(request: Request) -> Response:
        await asyncio.sleep(2)
        return Response(status_code=200)

    async def chunked(request: Request) -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            for _ in range(40):
                yield b"x" * 50_000

        return StreamingResponse(parts(), status_code=202)

    return Starlette(
        routes=[
            Route("/ok", ok, methods=["POST"]),
            Route("/refuse", refuse, methods=["POST"]),
            Route("/slow", slow, methods=["POST"]),
            Route("/chunked", chunked, methods=["POST"]),
        ]
    )


def sender(url: str, timeout_s: float = 2.0) -> WebhookSender:
    # The shared TLS context, as the worker passes it: used only for https URLs.
    return WebhookSender(url, max_idle=2, timeout_s=timeout_s, tls=shared_tls_context())


async def test_a_webhook_is_posted_with_its_body_and_headers_on_a_kept_alive_connection() -> None:
    seen = Seen()
    async with serving(receiver(seen)) as base:
        webhook = sender(f"{base}/ok")
        try:
            assert [await webhook.post(BODY, HEADERS) for _ in range(3)] == [204, 204, 204]
        finally:
            await webhook.aclose()
    assert seen.bodies == [BODY] * 3
    assert seen.headers[0]["x-signature"] == "t=1,v1=00"
    assert seen.headers[0]["content-length"] == str(len(BODY))
    assert seen.headers[0]["host"] == base.removeprefix("http://")
    assert len(set(seen.peers)) == 1  # one connection, used three times


async def test_a_connection_the_receiver_closed_while_idle_is_replaced_without_failing() -> None:
    seen = Seen()
    async with serving(receiver(seen), timeout_keep_alive=0.1) as base:
        webhook = sender(f"{base}/ok")
        try:
            assert await webhook.post(BODY, HEADERS) == 204
            await asyncio.sleep(0.5)  # the receiver closes the idle connection meanwhile
            assert await webhook.post(BODY, HEADERS) == 204
        finally:
            await webhook.aclose()
    assert len(set(seen.peers)) == 2


async def test_an_error_answer_is_its_status_and_a_long_chunked_answer_is_read_or_dropped() -> None:
    async with serving(receiver(Seen())) as base:
        refused, chunked = sender(f"{base}/refuse"), sender(f"{base}/chunked")
        try:
            assert await refused.post(BODY, HEADERS) == 500
            assert await refused.post(BODY, HEADERS) == 500
            assert await chunked.post(BODY, HEADERS) == 202
        finally:
            await refused.aclose()
            await chunked.aclose()


async def test_a_receiver_that_is_down_or_too_slow_is_a_send_error_naming_the_cause() -> None:
    down = sender(f"http://127.0.0.1:{free_port()}/hook")
    with pytest.raises(WebhookSendError, match="ConnectError"):
        await down.post(BODY, HEADERS)
    async with serving(receiver(Seen())) as base:
        slow = sender(f"{base}/slow", timeout_s=0.3)
        try:
            with pytest.raises(WebhookSendError, match=r"timed out after 0.3s"):
                await slow.post(BODY, HEADERS)
        finally:
            await slow.aclose()


def test_only_http_and_https_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="not an http"):
        sender("ftp://hooks.example/x")
