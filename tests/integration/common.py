"""Helpers every service's integration fixtures share: free ports, polling, in-process apps, their
settings for a test and their metrics."""

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar
from uuid import uuid4

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from services.platform.database import create_engine

SettingsT = TypeVar("SettingsT")


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


@contextlib.asynccontextmanager
async def in_process_on(
    app: Any, name: str, database_url: str
) -> AsyncIterator[tuple[httpx.AsyncClient, AsyncEngine]]:
    """`in_process(app, name)`, and an engine on the service's database `database_url` for the
    test's own queries (disposed of after)."""
    engine = create_engine(database_url)
    try:
        async with in_process(app, name) as client:
            yield client, engine
    finally:
        await engine.dispose()


Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def metrics_of(client: httpx.AsyncClient) -> Metrics:
    """The service's /metrics, each sample's value by its name and sorted labels."""
    text = (await client.get("/metrics")).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def settings_for_test(
    kind: Callable[..., SettingsT], name: str, database_url: str, secret: str, **settings: Any
) -> SettingsT:
    """A service's settings for a test: on `database_url`, its tokens signed with `secret`, in a
    consumer group of its own (so services under test never rebalance each other); then
    `settings`."""
    return kind(
        database_url=database_url,
        jwt_secret=secret,
        **{"consumer_group": f"{name}-test-{uuid4().hex[:10]}", **settings},
    )
