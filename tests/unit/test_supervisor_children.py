"""The supervisor with small stand-in children (no broker or database): restarts, give-up, stop."""

import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import Sequence

from tools.supervisor.backoff import RestartPolicy
from tools.supervisor.logs import Prefixer
from tools.supervisor.plan import ChildSpec
from tools.supervisor.supervisor import Console, Supervisor, SupervisorOptions

STEADY = "import time\nprint('steady up', flush=True)\nwhile True: time.sleep(1)"
FLAKY = "import sys\nprint('connecting'); print('boom: no database', file=sys.stderr)\nsys.exit(3)"
# Answers 200 to every GET, as a service's /health and /ready would once it is up.
WEB = """
import http.server, sys
class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *args): pass
print("web up", flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Ok).serve_forever()
"""
QUICK = RestartPolicy(first_delay=0.01, max_delay=0.05, max_quick_failures=3)


def python(name: str, script: str, *args: str, **spec: object) -> ChildSpec:
    return ChildSpec(name, (sys.executable, "-c", script, *args), **spec)  # type: ignore[arg-type]


class Transcript:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, line: str) -> None:
        self.lines.append(line)

    async def wait_for(self, pattern: str, within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while not any(re.search(pattern, line) for line in self.lines):
                await asyncio.sleep(0.02)

    def index(self, pattern: str) -> int:
        return next(n for n, line in enumerate(self.lines) if re.search(pattern, line))

    def pids(self, name: str) -> list[int]:
        found = (
            re.search(rf"started {name}(?: again)? \(pid (\d+)\)", line) for line in self.lines
        )
        return [int(match[1]) for match in found if match]


def supervisor(
    transcript: Transcript,
    children: Sequence[ChildSpec],
    *,
    simulator: ChildSpec | None = None,
    announce: Sequence[str] = ("all ready",),
) -> Supervisor:
    names = [child.name for child in children] + ([simulator.name] if simulator else [])
    console = Console(Prefixer([*names, "supervisor"], colour=False), transcript.write)
    return Supervisor(
        children,
        console,
        options=SupervisorOptions(policy=QUICK, stop_timeout=2.0),
        announce=lambda: list(announce),
        simulator=simulator,
    )


def is_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_child_that_keeps_failing_is_reported_then_given_up_and_the_others_stopped() -> (
    None
):
    transcript = Transcript()
    run = supervisor(transcript, [python("steady", STEADY), python("flaky", FLAKY)])

    code = await asyncio.wait_for(run.run(), 20)

    assert code == 1
    lines = transcript.lines
    assert "[steady]     steady up" in lines
    assert "[flaky]      connecting" in lines
    assert "[flaky]      boom: no database" in lines
    first = transcript.index(r"flaky exited unexpectedly \(exit code 3\) after [\d.]+ s; its last")
    assert lines[first + 1 : first + 3] == [
        "[supervisor]   | connecting",
        "[supervisor]   | boom: no database",
    ]
    assert lines[first + 3] == "[supervisor] restarting flaky in 0.01 s"
    exits = [line for line in lines if "flaky exited unexpectedly" in line]
    assert len(exits) == 3
    assert all(
        line.endswith("its last lines were the same as the time before") for line in exits[1:]
    )
    assert len(transcript.pids("flaky")) == 3
    assert (
        "[supervisor] giving up on flaky: it failed 3 times in a row, each within 30 s of starting"
        in lines
    )
    assert "[supervisor] steady stopped" in lines
    assert lines[-1] == "[supervisor] stopped everything because flaky kept failing"
    assert all(is_gone(pid) for pid in transcript.pids("steady") + transcript.pids("flaky"))


async def test_announces_when_ready_then_runs_the_simulator_once_and_stops_on_sigterm() -> None:
    transcript = Transcript()
    port = free_port()
    web = python("web", WEB, str(port), url=f"http://127.0.0.1:{port}")
    simulation = python("simulator", "print('simulated 3 requests')", restart=False)
    run = asyncio.create_task(supervisor(transcript, [web], simulator=simulation).run())

    await transcript.wait_for(r"simulator finished")
    os.kill(os.getpid(), signal.SIGTERM)
    code = await asyncio.wait_for(run, 10)

    assert code == 0
    lines = transcript.lines
    ready = transcript.index(rf"^\[supervisor\] web is ready at http://127.0.0.1:{port} \(")
    assert lines[ready + 1 : ready + 4] == ["", "all ready", ""]
    assert transcript.index(r"started simulator") > ready
    assert "[simulator]  simulated 3 requests" in lines
    assert len(transcript.pids("simulator")) == 1
    assert lines[-3:] == [
        "[supervisor] SIGTERM: stopping everything (once more to kill at once)",
        "[supervisor] web stopped",
        "[supervisor] stopped everything",
    ]
    assert is_gone(transcript.pids("web")[0])


async def test_a_child_that_ignores_sigterm_is_killed_after_the_stop_timeout() -> None:
    transcript = Transcript()
    stubborn = python(
        "stubborn",
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('up', flush=True)\nwhile True: time.sleep(1)",
    )
    run = asyncio.create_task(supervisor(transcript, [stubborn]).run())

    await transcript.wait_for(r"\[stubborn\]\s+up")
    os.kill(os.getpid(), signal.SIGINT)
    code = await asyncio.wait_for(run, 10)

    assert code == 0
    assert "[supervisor] stubborn did not stop within 2 s: killing it" in transcript.lines
    assert "[supervisor] stubborn stopped (killed by SIGKILL)" in transcript.lines
    assert is_gone(transcript.pids("stubborn")[0])


async def test_a_command_that_cannot_start_gives_up_at_once() -> None:
    transcript = Transcript()
    missing = ChildSpec("ghost", ("/nonexistent/nearhome", "serve", "ghost"))

    code = await asyncio.wait_for(supervisor(transcript, [missing]).run(), 10)

    assert code == 1
    assert any(line.startswith("[supervisor] could not start ghost: ") for line in transcript.lines)


async def test_a_closed_output_neither_raises_nor_keeps_the_children_running_after_a_signal() -> (
    None
):
    written: list[str] = []
    lost: list[bool] = []

    def write(line: str) -> None:
        if any("steady up" in earlier for earlier in written):
            raise BrokenPipeError(32, "Broken pipe")
        written.append(line)

    console = Console(
        Prefixer(["steady", "supervisor"], colour=False), write, on_lost=lambda: lost.append(True)
    )
    run = asyncio.create_task(
        Supervisor(
            [python("steady", STEADY)],
            console,
            options=SupervisorOptions(policy=QUICK, stop_timeout=2.0),
            announce=lambda: ["all ready"],
        ).run()
    )
    async with asyncio.timeout(10):
        while not any("steady up" in line for line in written):
            await asyncio.sleep(0.02)
    pids = [
        int(m[1]) for line in written if (m := re.search(r"started steady \(pid (\d+)\)", line))
    ]
    assert len(pids) == 1

    os.kill(os.getpid(), signal.SIGTERM)
    code = await asyncio.wait_for(run, 10)

    assert code == 0
    assert console.lost
    assert lost == [True]
    assert all(is_gone(pid) for pid in pids)
