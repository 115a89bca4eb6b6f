"""`/ready`: a service whose background work died is not ready, and its server is asked to stop."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
from common import in_process, until
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from services.platform.background import running
from services.platform.database import create_engine
from services.platform.http import add_operational_routes
from services.platform.settings import ServiceSettings

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


class RelayLostError(RuntimeError):
    pass


def service_with_background(database_url: str, dies: asyncio.Event) -> FastAPI:
    """An app on the platform's HTTP edge whose lifespan runs a steady task and one that raises
    once `dies` is set."""

    async def steady() -> None:
        await asyncio.Event().wait()

    async def relay() -> None:
        await dies.wait()
        raise RelayLostError("the outbox table is gone")

    engine = create_engine(database_url)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            async with running(steady(), relay()):
                yield
        finally:
            await engine.dispose()

    app = FastAPI(lifespan=lifespan)
    settings = ServiceSettings(port=0)
    add_operational_routes(app, CollectorRegistry(), engine, settings.kafka_bootstrap_servers)
    return app


async def test_ready_answers_503_once_a_background_task_has_died(fresh_database_url: str) -> None:
    dies = asyncio.Event()
    app = service_with_background(fresh_database_url, dies)
    async with in_process(app, "svc") as client:
        ready = await client.get("/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"ready": True, "database": True, "broker": True}

        dies.set()

        async def not_ready() -> bool:
            answer: httpx.Response = await client.get("/ready")
            return answer.status_code == 503

        await until(not_ready, "/ready to answer 503", timeout_s=10)
        answer = (await client.get("/ready")).json()
        assert answer == {
            "ready": False,
            "database": True,
            "broker": True,
            "background_failure": "service_with_background.<locals>.relay: "
            "RelayLostError: the outbox table is gone",
        }
        assert (await client.get("/health")).status_code == 200
