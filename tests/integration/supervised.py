"""`nearhome run` as a child process of a test: its output line by line and every pid it started."""

import asyncio
import base64
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from common import free_port

NEARHOME = str(Path(sys.executable).parent / "nearhome")
STARTED = re.compile(r"^\[supervisor\]\s+started (\w+)(?: again)? \(pid (\d+)\)$")


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

    async def stop(self, within: float = 30.0) -> int:
        """Ctrl-C, as a person at the terminal would; the exit status."""
        self.process.send_signal(signal.SIGINT)
        async with asyncio.timeout(within):
            return await self.process.wait()

    def transcript(self) -> str:
        return "\n".join(self.lines[-80:])


@contextlib.asynccontextmanager
async def nearhome_run(
    *args: str, env: Mapping[str, str], ports: dict[str, int]
) -> AsyncIterator[Supervised]:
    """`nearhome run <args>` with `env` added to the environment (in development, unless `env`
    says otherwise: the tests' tokens are development tokens); killed, with all it started."""
    process = await asyncio.create_subprocess_exec(
        NEARHOME,
        "run",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NEARHOME_ENV": "development", **env},
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


SERVICES = ("provider", "authority", "ledger", "alerting")


@contextlib.asynccontextmanager
async def services_run(
    *args: str,
    database_url: str,
    topic_prefix: str,
    secret: str,
    services: Sequence[str] = SERVICES,
) -> AsyncIterator[Supervised]:
    """`nearhome run <args>`: `services` (all four unless `--only` says fewer) on free ports, on
    `database_url` and the topics under `topic_prefix`, their tokens signed with `secret`."""
    ports = {name: free_port() for name in services}
    env = {
        "DATABASE_URL": database_url,
        "NEARHOME_TOPIC_PREFIX": topic_prefix,
        "NEARHOME_JWT_SECRET": secret,
        # The tests' webhook receivers listen on 127.0.0.1, over http.
        "ALERTING_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        # Alerting encrypts subscription secrets at rest with this key (base64 of 32 bytes).
        "NEARHOME_SECRET_KEYS": "test-1:"
        + base64.b64encode(b"supervised-test-key-of-32-bytes!").decode(),
        **{f"{name.upper()}_PORT": str(port) for name, port in ports.items()},
    }
    async with nearhome_run(*args, env=env, ports=ports) as supervised:
        yield supervised


@contextlib.asynccontextmanager
async def running_exchange(
    database_url: str, topic_prefix: str, secret: str
) -> AsyncIterator[Supervised]:
    """All four services under `nearhome run --no-infra`, once it says it is up."""
    async with services_run(
        "--no-infra", database_url=database_url, topic_prefix=topic_prefix, secret=secret
    ) as supervised:
        await supervised.wait_for_line(r"^NearHome is running", within=60.0)
        yield supervised
