"""`nearhome run` stops everything on a signal even when its output can no longer be written:
`nearhome run | tee run.log`, then Ctrl-C, ends the `tee` first and the supervisor's stop message
meets a closed pipe."""

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator

import pytest
from common import free_port
from supervised import NEARHOME, STARTED

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def group_is_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@contextlib.contextmanager
def provider_run(database_url: str, topic_prefix: str) -> Iterator[subprocess.Popen[bytes]]:
    """`nearhome run --only provider --no-infra`, its stdout a pipe the test can close."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "NEARHOME_TOPIC_PREFIX": topic_prefix,
        "NEARHOME_JWT_SECRET": "supervisor-output-secret-32-bytes-long",
        "PROVIDER_PORT": str(free_port()),
    }
    process = subprocess.Popen(
        [NEARHOME, "run", "--only", "provider", "--no-infra"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def read_until_running(process: subprocess.Popen[bytes]) -> list[int]:
    """The pids the supervisor started, once it says the services are up."""
    assert process.stdout is not None
    pids: list[int] = []
    lines: list[str] = []
    async with asyncio.timeout(60):
        while True:
            raw = await asyncio.to_thread(process.stdout.readline)
            assert raw, "nearhome run ended early:\n" + "\n".join(lines)
            line = raw.decode(errors="replace").rstrip("\n")
            lines.append(line)
            if match := STARTED.match(line):
                pids.append(int(match[2]))
            if line.startswith("NearHome is running"):
                return pids


@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda signum: signum.name
)
async def test_a_signal_stops_every_child_after_the_output_pipe_was_closed(
    fresh_database_url: str, topic_prefix: str, signum: signal.Signals
) -> None:
    with provider_run(fresh_database_url, topic_prefix) as process:
        pids = await read_until_running(process)
        assert len(pids) == 1
        assert process.stdout is not None
        process.stdout.close()  # the reader (`tee`, `head`) is gone

        process.send_signal(signum)
        returncode = await asyncio.wait_for(asyncio.to_thread(process.wait), 30)

        assert returncode == 0
        assert all(group_is_gone(pid) for pid in pids)
