"""`nearhome run`: services under one supervisor, restarted when they die, all stopped on Ctrl-C."""

import os
import signal
from collections.abc import AsyncIterator

import httpx
import pytest
from supervised import Supervised, services_run

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


@pytest.fixture
async def supervised(fresh_database_url: str, topic_prefix: str) -> AsyncIterator[Supervised]:
    async with services_run(
        "--only",
        "provider,authority",
        services=("provider", "authority"),
        database_url=fresh_database_url,
        topic_prefix=topic_prefix,
        secret="supervisor-integration-secret-32-bytes",
    ) as supervised:
        yield supervised


async def ready_status(port: int) -> int:
    async with httpx.AsyncClient(trust_env=False, timeout=5.0) as client:
        return (await client.get(f"http://127.0.0.1:{port}/ready")).status_code


def group_is_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_run_supervises_services_restarts_a_killed_one_and_stops_all_on_ctrl_c(
    supervised: Supervised,
) -> None:
    provider_port, authority_port = supervised.ports["provider"], supervised.ports["authority"]
    await supervised.wait_for_line(r"^NearHome is running", within=45.0)
    assert await ready_status(provider_port) == 200
    assert await ready_status(authority_port) == 200
    await supervised.wait_for_line(rf"^  provider\s+http://127\.0\.0\.1:{provider_port}\s")
    await supervised.wait_for_line(rf"^  authority\s+http://127\.0\.0\.1:{authority_port}\s")
    # Each service's own output (JSON log lines), prefixed with its name.
    await supervised.wait_for_line(
        rf"^\[provider\]\s+\{{.*\"message\": \"Uvicorn running on "
        rf"http://127\.0\.0\.1:{provider_port}\b"
    )
    await supervised.wait_for_line(
        rf"^\[authority\]\s+\{{.*\"message\": \"Uvicorn running on "
        rf"http://127\.0\.0\.1:{authority_port}\b"
    )
    [first_provider] = supervised.pids()["provider"]

    os.kill(first_provider, signal.SIGKILL)

    await supervised.wait_for_line(
        r"^\[supervisor\]\s+provider exited unexpectedly \(killed by SIGKILL\) after [\d.]+ s; "
        r"its last lines:$"
    )
    await supervised.wait_for_line(r"^\[supervisor\]\s+  \| \{.*\"message\": \"Uvicorn running on")
    await supervised.wait_for_line(r"^\[supervisor\]\s+restarting provider in [\d.]+ s$")
    await supervised.wait_for_line(r"^\[supervisor\]\s+provider is ready again at ")
    [_, second_provider] = supervised.pids()["provider"]
    assert second_provider != first_provider
    assert await ready_status(provider_port) == 200
    assert supervised.pids()["authority"] == supervised.pids()["authority"][:1]

    returncode = await supervised.stop()

    assert returncode == 0, supervised.transcript()
    await supervised.wait_for_line(r"^\[supervisor\]\s+stopped everything$", within=5.0)
    every_pid = [pid for pids in supervised.pids().values() for pid in pids]
    assert len(every_pid) == 3
    assert all(group_is_gone(pid) for pid in every_pid)
