"""`/ready`: a service whose background work died is not ready, and its server is asked to stop."""

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

import httpx
import pytest
from common import free_port, in_process, until
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


@contextlib.asynccontextmanager
async def silent_port() -> AsyncIterator[str]:
    """`host:port` of a server that accepts TCP connections and never answers (a broker still
    starting, or hung, looks like this to a port check)."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_ready_asks_the_broker_for_metadata_not_just_for_a_connection(
    fresh_database_url: str,
) -> None:
    engine = create_engine(fresh_database_url)
    try:
        async with silent_port() as silent:
            app = FastAPI()
            add_operational_routes(app, CollectorRegistry(), engine, silent)
            async with in_process(app, "svc") as client:
                answer = await client.get("/ready")
    finally:
        await engine.dispose()

    assert answer.status_code == 503
    assert answer.json() == {"ready": False, "database": True, "broker": False}


# A bootstrap address where nothing listens: readiness goes on to the next one.
NOTHING_LISTENS = "127.0.0.1:1"


async def test_ready_answers_for_a_broker_that_answers_metadata(fresh_database_url: str) -> None:
    engine = create_engine(fresh_database_url)
    try:
        app = FastAPI()
        broker = ServiceSettings(port=0).kafka_bootstrap_servers
        add_operational_routes(app, CollectorRegistry(), engine, f"{NOTHING_LISTENS},{broker}")
        async with in_process(app, "svc") as client:
            answer = await client.get("/ready")
    finally:
        await engine.dispose()

    assert (answer.status_code, answer.json()["broker"]) == (200, True)


# A service whose only background task dies half a second after it starts, served as
# `nearhome serve` serves the services.
DYING_SERVICE = """
import asyncio, contextlib, sys
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from services.platform.background import running, serve
from services.platform.database import create_engine
from services.platform.http import add_operational_routes

async def relay():
    await asyncio.sleep(0.5)
    raise RuntimeError("the outbox table is gone")

@contextlib.asynccontextmanager
async def lifespan(_):
    async with running(relay()):
        yield

app = FastAPI(lifespan=lifespan)
add_operational_routes(app, CollectorRegistry(), create_engine(sys.argv[1]), "127.0.0.1:9092")
sys.exit(serve(app, "127.0.0.1", int(sys.argv[2])))
"""


async def test_a_served_process_whose_background_work_dies_exits_with_status_1(
    fresh_database_url: str,
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        DYING_SERVICE,
        fresh_database_url,
        str(free_port()),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(30):
            output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert process.returncode == 1, output.decode()
    assert "stopped because background work died: relay: RuntimeError" in output.decode()
