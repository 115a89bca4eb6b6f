"""Helpers every service's integration fixtures share: free ports, polling, in-process apps."""

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx


def free_port() -> int:
    """A port nothing listens on now (for a service to bind, or a receiver that is down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def until(
    condition: Callable[[], Awaitable[bool]],
    what: str,
    timeout_s: float = 30,
    every_s: float = 0.05,
) -> None:
    """Poll `condition` until it holds; fail after `timeout_s`, saying what never happened."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s}s waiting for {what}"
        await asyncio.sleep(every_s)


@contextlib.asynccontextmanager
async def in_process(app: Any, name: str) -> AsyncIterator[httpx.AsyncClient]:
    """`app` with its lifespan running, and a client calling it in-process at http://<name>.test."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=f"http://{name}.test"
        ) as client,
    ):
        yield client
