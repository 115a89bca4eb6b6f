"""The input limits of a running service (`nearhome serve provider`), over real sockets: a large
body is refused with 413 long before it has all been sent, and a token over its rate gets 429."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from ledger_fixtures import ServedProcess, served_process
from provider_fixtures import SECRET, provider_headers

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

LIMIT = 4096  # bytes a body may have
RATE = 5  # requests a token may send a minute
TEN_MEGABYTES = 10 * 1024 * 1024
CHUNK = 64 * 1024


@pytest.fixture
async def service(
    fresh_database_url: str, topic_prefix: str, tmp_path: Path
) -> AsyncIterator[ServedProcess]:
    served = served_process(
        "provider",
        fresh_database_url,
        topic_prefix,
        tmp_path / "provider.log",
        secret=SECRET,
        NEARHOME_MAX_BODY_BYTES=str(LIMIT),
        NEARHOME_RATE_LIMIT_PER_MINUTE=str(RATE),
    )
    served.start()
    try:
        await served.until_answering("/ready")
        yield served
    finally:
        served.stop()


def request_head(path: str, headers: dict[str, str], framing: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: provider.test", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join([*lines, framing, "", ""])).encode()


async def send_until_answered(port: int, head: bytes, chunked: bool) -> tuple[bytes, int]:
    """Send `head`, then up to ten megabytes of body in chunks until the server answers (or
    closes); the answer's first line, and how many body bytes had been sent by then."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sent = 0
    try:
        writer.write(head)
        await writer.drain()
        answer = asyncio.create_task(reader.readline())
        while sent < TEN_MEGABYTES and not answer.done():
            chunk = b"x" * CHUNK
            framed = f"{CHUNK:x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk
            try:
                writer.write(framed)
                await writer.drain()
            except ConnectionError:
                break  # the server has answered and closed
            sent += CHUNK
            await asyncio.sleep(0.01)  # the pace of a slow client, so the answer can arrive
        async with asyncio.timeout(10):
            status_line = await answer
        return status_line.strip(), sent
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


@pytest.mark.parametrize(
    ("framing", "chunked"),
    [("Transfer-Encoding: chunked", True), (f"Content-Length: {TEN_MEGABYTES}", False)],
    ids=["chunked", "declared-length"],
)
async def test_a_body_over_the_limit_is_refused_before_it_is_all_sent(
    service: ServedProcess, framing: str, chunked: bool
) -> None:
    head = request_head("/v1/settings", provider_headers(str(uuid4())), framing)

    status_line, sent = await send_until_answered(service.port, head, chunked=chunked)

    assert status_line.startswith(b"HTTP/1.1 413"), status_line
    assert sent < TEN_MEGABYTES // 10, f"{sent} bytes were sent before the answer"


async def test_a_token_over_its_rate_gets_429_and_another_token_does_not(
    service: ServedProcess,
) -> None:
    busy, other = provider_headers(str(uuid4())), provider_headers(str(uuid4()))
    async with httpx.AsyncClient(base_url=service.url) as client:
        answers = [await client.get("/v1/settings", headers=busy) for _ in range(RATE + 1)]
        others = await client.get("/v1/settings", headers=other)
        probe = await client.get("/ready")

    assert [a.status_code for a in answers] == [200] * RATE + [429]
    refused = answers[-1]
    assert int(refused.headers["Retry-After"]) >= 1
    assert "detail" in refused.json()
    assert others.status_code == 200
    assert probe.status_code == 200
