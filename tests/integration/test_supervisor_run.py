"""`nearhome run`: services under one supervisor, restarted when they die, all stopped on Ctrl-C."""

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

NEARHOME = str(Path(sys.executable).parent / "nearhome")
STARTED = re.compile(r"^\[supervisor\]\s+started (\w+)(?: again)? \(pid (\d+)\)$")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Supervised:
    """The running `nearhome run`: its output so far and the ports of its services."""

    process: asyncio.subprocess.Process
    ports: dict[str, int]
    lines: list[str] = field(default_factory=list)

    async def read_output(self) -> None:
        assert self.process.stdout is not None
        while raw := await self.process.stdout.readline():
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    async def wait_for_line(self, pattern: str, within: float = 30.0) -> re.Match[str]:
        compiled = re.compile(pattern)
        async with asyncio.timeout(within):
            while True:
                for line in self.lines:
                    if match := compiled.search(line):
                        return match
                if self.process.returncode is not None:
                    pytest.fail(f"nearhome run exited; it wrote:\n{self.transcript()}")
                await asyncio.sleep(0.05)

    def pids(self) -> dict[str, list[int]]:
        """Every pid the supervisor started, by child name."""
        started: dict[str, list[int]] = {}
        for line in self.lines:
            if match := STARTED.match(line):
                started.setdefault(match[1], []).append(int(match[2]))
        return started

    def transcript(self) -> str:
        return "\n".join(self.lines[-80:])


@pytest.fixture
async def supervised(fresh_database_url: str, topic_prefix: str) -> AsyncIterator[Supervised]:
    ports = {"provider": free_port(), "authority": free_port()}
    env = {
        **os.environ,
        "DATABASE_URL": fresh_database_url,
        "NEARHOME_TOPIC_PREFIX": topic_prefix,
        "NEARHOME_JWT_SECRET": "supervisor-integration-secret-32-bytes",
        "PROVIDER_PORT": str(ports["provider"]),
        "AUTHORITY_PORT": str(ports["authority"]),
    }
    process = await asyncio.create_subprocess_exec(
        NEARHOME,
        "run",
        "--only",
        "provider,authority",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    supervised = Supervised(process, ports)
    reader = asyncio.create_task(supervised.read_output())
    try:
        yield supervised
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        # Children of a supervisor that failed the test must not outlive it.
        for pids in supervised.pids().values():
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


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
    # Each service's own output, prefixed with its name.
    await supervised.wait_for_line(
        rf"^\[provider\]\s+INFO:\s+Uvicorn running on http://127\.0\.0\.1:{provider_port}\b"
    )
    await supervised.wait_for_line(
        rf"^\[authority\]\s+INFO:\s+Uvicorn running on http://127\.0\.0\.1:{authority_port}\b"
    )
    [first_provider] = supervised.pids()["provider"]

    os.kill(first_provider, signal.SIGKILL)

    await supervised.wait_for_line(
        r"^\[supervisor\]\s+provider exited unexpectedly \(killed by SIGKILL\) after [\d.]+ s; "
        r"its last lines:$"
    )
    await supervised.wait_for_line(r"^\[supervisor\]\s+  \| INFO:\s+Uvicorn running on")
    await supervised.wait_for_line(r"^\[supervisor\]\s+restarting provider in [\d.]+ s$")
    await supervised.wait_for_line(r"^\[supervisor\]\s+provider is ready again at ")
    [_, second_provider] = supervised.pids()["provider"]
    assert second_provider != first_provider
    assert await ready_status(provider_port) == 200
    assert supervised.pids()["authority"] == supervised.pids()["authority"][:1]

    supervised.process.send_signal(signal.SIGINT)
    async with asyncio.timeout(30.0):
        returncode = await supervised.process.wait()

    assert returncode == 0, supervised.transcript()
    await supervised.wait_for_line(r"^\[supervisor\]\s+stopped everything$", within=5.0)
    every_pid = [pid for pids in supervised.pids().values() for pid in pids]
    assert len(every_pid) == 3
    assert all(group_is_gone(pid) for pid in every_pid)
