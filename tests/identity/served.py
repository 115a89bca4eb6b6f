"""NearHome services as a deployment runs them: `nearhome serve <name>` processes in production (no
`NEARHOME_ENV`, which the suite's conftest sets for everything else), configured only through
their environment, on a database and topics of their own."""

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import httpx

from services.platform.settings import CommonSettings

NEARHOME = str(Path(sys.executable).parent / "nearhome")
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class ServedService:
    """One `nearhome serve <name>` in production, its output in `log`."""

    name: str
    port: int
    env: dict[str, str]
    log: Path
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        environment = {**os.environ, **self.env}
        environment.pop("NEARHOME_ENV", None)  # production: the suite's development is not theirs
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                NEARHOME,
                "serve",
                self.name,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=environment,
                start_new_session=True,
            )

    async def until_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=self.url, timeout=2, trust_env=False) as client:
            while True:
                assert self.process is not None
                if self.process.returncode is not None:
                    raise AssertionError(f"{self.name} exited:\n{self.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/ready")).status_code == 200:
                        return
                assert time.monotonic() < deadline, f"{self.name} not ready:\n{self.tail()}"
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def served(
    name: str, database_url: str, topic_prefix: str, logs: Path, **variables: str
) -> ServedService:
    """`nearhome serve <name>` (not started) on a free port, reading in a group of its own."""
    port = free_port()
    env = {
        "DATABASE_URL": database_url,
        "NEARHOME_TOPIC_PREFIX": topic_prefix,
        "KAFKA_BOOTSTRAP_SERVERS": CommonSettings().kafka_bootstrap_servers,
        f"{name.upper()}_PORT": str(port),
        f"{name.upper()}_CONSUMER_GROUP": f"{name}-identity-{uuid4().hex[:10]}",
        **variables,
    }
    return ServedService(name, port, env, logs / f"{name}-{uuid4().hex[:6]}.log")
