"""Input limits (services/platform/limits.py): 413 before a large body is read whole, 429 per
token over its rate; checked against a real uvicorn server over a socket."""

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request

from services.platform.auth import LocalTokens, Role, issue_token, principal_for
from services.platform.limits import InputLimits, TokenBuckets

SECRET = "test-secret-of-the-input-limits-32-bytes-or-more"
LIMIT = 1024 * 1024


def _app(calls: list[int], *, per_minute: int = 0) -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        calls.append(len(await request.body()))
        return {"received": calls[-1]}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(
        InputLimits,
        max_body_bytes=LIMIT,
        rate_limit_per_minute=per_minute,
        verifier=LocalTokens(SECRET),
    )
    return app


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, list[int]]]:
    calls: list[int] = []
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    config = uvicorn.Config(_app(calls), host="127.0.0.1", port=port, log_level="warning")
    running = uvicorn.Server(config)
    task = asyncio.create_task(running.serve())
    while not running.started:
        await asyncio.sleep(0.01)
    yield port, calls
    running.should_exit = True
    await task


async def _status_line(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    length = int(
        next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[
            1
        ]
    )
    body = await reader.readexactly(length)
    return int(head.split(b" ")[1]), body


async def test_a_declared_10_mb_body_is_refused_before_a_byte_of_it_is_sent(
    server: tuple[int, list[int]],
) -> None:
    port, calls = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 10485760\r\n\r\n"
    )
    await writer.drain()

    status, body = await _status_line(reader)

    assert status == 413
    assert b'"detail"' in body
    assert calls == [], "the handler never ran"
    writer.close()


async def test_a_chunked_10_mb_body_is_refused_once_the_limit_is_passed(
    server: tuple[int, list[int]],
) -> None:
    port, calls = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * 65536
    # Only 1 MiB + 64 KiB of the 10 MB are sent: the answer must come without the rest.
    for _ in range(17):
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()

    status, body = await _status_line(reader)

    assert status == 413
    assert b"larger than 1048576 bytes" in body
    assert calls == [], "the handler never ran"
    writer.close()


async def test_a_body_within_the_limit_reaches_the_handler_whole(
    server: tuple[int, list[int]],
) -> None:
    port, calls = server

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"y" * 100_000

    async with httpx.AsyncClient() as client:
        answer = await client.post(f"http://127.0.0.1:{port}/echo", content=chunks())

    assert answer.status_code == 200
    assert answer.json() == {"received": 800_000}
    assert calls == [800_000]


async def test_a_token_over_its_rate_gets_429_with_retry_after() -> None:
    calls: list[int] = []
    app = _app(calls, per_minute=3)
    token = issue_token(principal_for(Role.PROVIDER, provider_id="acme"), SECRET)
    other = issue_token(principal_for(Role.PROVIDER, provider_id="other"), SECRET)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

        async def post(bearer: str) -> Any:
            return await client.post("/echo", content=b"{}", headers={"Authorization": bearer})

        answers = [await post(f"Bearer {token}") for _ in range(4)]
        others = await post(f"Bearer {other}")
        health = [await client.get("/health") for _ in range(5)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert int(answers[-1].headers["Retry-After"]) >= 1
    assert "detail" in answers[-1].json()
    assert others.status_code == 200, "each subject has its own bucket"
    assert {h.status_code for h in health} == {200}, "the probes are exempt"
    assert len(calls) == 4


def test_a_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(60, clock=lambda: now[0])

    assert all(buckets.take("a") == 0 for _ in range(60))
    assert buckets.take("a") == pytest.approx(1.0)
    now[0] += 1.0
    assert buckets.take("a") == 0
