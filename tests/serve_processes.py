"""`nearhome serve <name>` as a child process of an asyncio test, as a deployment runs a service:
configured through its environment, in a session of its own (so that its whole process group can
be signalled), its output appended to a log file, ready once GET /ready answers 200.

The fault suite (tests/faults/fault_exchange.py) starts, kills and restarts the exchange's services
this way; the identity suite (tests/identity/served.py) runs its services in production this way.
"""

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

import httpx
from scratch_servers import free_port

NEARHOME = str(Path(sys.executable).parent / "nearhome")
STOP_TIMEOUT_S = 20.0


class ExitedWhileStartingError(AssertionError):
    """The process ended before it was ready (a failpoint can fire while it catches up)."""


@dataclass
class ServeProcess:
    """One `nearhome serve <name>` on `port`, started with `env` added to this process's
    environment, its output in `log`."""

    name: str
    port: int
    env: dict[str, str]
    log: Path
    process: asyncio.subprocess.Process | None = None

    # How long `until_ready` waits by default.
    ready_timeout_s: ClassVar[float] = 60.0

    @classmethod
    def on_free_port(cls, name: str, env: Mapping[str, str], log: Path) -> Self:
        """`name` on a free port (its `<NAME>_PORT` added to `env`), not started."""
        port = free_port()
        return cls(name, port, {**env, f"{name.upper()}_PORT": str(port)}, log)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def spawn(self, environment: Mapping[str, str], note: str | None = None) -> None:
        """Start the process with exactly `environment` (not waiting for it), `note` first written
        to its log if given."""
        with self.log.open("ab") as log:
            if note is not None:
                log.write(f"--- {note}\n".encode())
            self.process = await asyncio.create_subprocess_exec(
                NEARHOME,
                "serve",
                self.name,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=dict(environment),
                start_new_session=True,
            )

    async def until_ready(self, timeout_s: float | None = None) -> None:
        """Wait until GET /ready answers 200 (`ready_timeout_s` at most, unless told); fail with
        the log's tail if the process exits first (`ExitedWhileStartingError`) or the time runs
        out."""
        timeout_s = self.ready_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=self.url, timeout=2, trust_env=False) as client:
            while True:
                assert self.process is not None
                if self.process.returncode is not None:
                    raise ExitedWhileStartingError(f"{self.name} exited:\n{self.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/ready")).status_code == 200:
                        return
                assert time.monotonic() < deadline, f"{self.name} not ready:\n{self.tail()}"
                await asyncio.sleep(0.05)

    def _signal(self, signal_number: int) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal_number)

    async def kill(self) -> None:
        """SIGKILL the process group (if it is running), and reap it."""
        if self.process is None or self.process.returncode is not None:
            return
        self._signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM the process group (if it is running) and reap it; SIGKILL it if it has not
        ended within `timeout_s`."""
        if self.process is None or self.process.returncode is not None:
            return
        self._signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout_s)
        except TimeoutError:
            await self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])
