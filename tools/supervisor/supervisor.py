"""The supervisor: starts its children in their own process groups, relays their output with
their names, restarts the ones that fail (with backoff, within bounds), and stops them all on
SIGINT, SIGTERM or SIGHUP."""

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import httpx
import typer

from tools.supervisor.backoff import Backoff, RestartPolicy
from tools.supervisor.logs import LineSplitter, Prefixer, Tail, is_routine
from tools.supervisor.plan import ChildSpec

SUPERVISOR = "supervisor"
_POLL_INTERVAL = 0.2
_NOT_READY_REPORT_EVERY = 15.0
_OUTPUT_DRAIN_TIMEOUT = 2.0
_SIMULATOR_STOP_WAIT = 5.0
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_STDOUT_FD = 1


def describe_exit(returncode: int) -> str:
    """`exit code 1`, or `killed by SIGKILL` for a child ended by a signal."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


class Console:
    """One writer for everything: the children's lines and the supervisor's own, prefixed.

    Output that can no longer be written (a closed pipe: `nearhome run | tee log` after the `tee`
    is gone, or a closed stdout) never stops the supervisor: the first failed write calls
    `on_lost` (by default, stdout is pointed at /dev/null so that nothing fails at exit either)
    and every later line is dropped, while the supervisor goes on running and stopping children.
    """

    def __init__(
        self,
        prefixer: Prefixer,
        write: Callable[[str], None] = typer.echo,
        *,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self._prefixer = prefixer
        self._write = write
        self._on_lost = on_lost if on_lost is not None else _stdout_to_devnull
        self.lost = False

    def child(self, name: str, text: str) -> None:
        self._out(self._prefixer.line(name, text))

    def say(self, text: str) -> None:
        self._out(self._prefixer.line(SUPERVISOR, text))

    def block(self, lines: Sequence[str]) -> None:
        for line in ["", *lines, ""]:
            self._out(line)

    def _out(self, line: str) -> None:
        if self.lost:
            return
        try:
            self._write(line)
        except (OSError, ValueError):  # EPIPE, EIO; ValueError: "I/O operation on closed file"
            self.lost = True
            with contextlib.suppress(OSError, ValueError):
                self._on_lost()


def _stdout_to_devnull() -> None:
    """Point the process's stdout at /dev/null, so that nothing written (or flushed at exit)
    later fails on the closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, _STDOUT_FD)
    finally:
        os.close(devnull)


@dataclass(eq=False)
class _Child:
    spec: ChildSpec
    backoff: Backoff
    tail: Tail = field(default_factory=Tail)
    started_at: float = 0.0
    ready: bool = False
    runs: int = 0
    reported_tail: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SupervisorOptions:
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    stop_timeout: float = 10.0
    hide_routine: bool = False


class Supervisor:
    """Runs `services` until a stop signal (exit status 0) or one of them keeps failing (1).

    Once every service answers /ready, `announce()` is printed and `simulator` (if any) starts: it
    is not restarted when it ends, and it is stopped first.
    """

    def __init__(
        self,
        services: Sequence[ChildSpec],
        console: Console,
        *,
        options: SupervisorOptions,
        announce: Callable[[], Sequence[str]],
        simulator: ChildSpec | None = None,
    ) -> None:
        self._services = [_Child(spec, Backoff(options.policy)) for spec in services]
        self._simulator = _Child(simulator, Backoff(options.policy)) if simulator else None
        self._console = console
        self._options = options
        self._announce = announce
        self._announced = False
        self._stopping = asyncio.Event()
        self._hurry = asyncio.Event()
        self._simulator_done = asyncio.Event()
        self._simulator_done.set()
        self._gave_up: str | None = None
        self._tasks: asyncio.TaskGroup | None = None

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in _STOP_SIGNALS:
            loop.add_signal_handler(signum, self._on_signal, signum)
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                for child in self._services:
                    tasks.create_task(self._supervise(child), name=child.spec.name)
        finally:
            for signum in _STOP_SIGNALS:
                loop.remove_signal_handler(signum)
        if self._gave_up is not None:
            self._console.say(f"stopped everything because {self._gave_up} kept failing")
            return 1
        self._console.say("stopped everything")
        return 0

    def _on_signal(self, signum: int) -> None:
        # Stop first, say so second: nothing the console does may keep the children running.
        name = signal.Signals(signum).name
        if not self._stopping.is_set():
            self._stopping.set()
            self._console.say(f"{name}: stopping everything (once more to kill at once)")
        else:
            self._hurry.set()
            self._console.say(f"{name} again: killing everything now")

    async def _supervise(self, child: _Child) -> None:
        """Keep `child` running until the supervisor stops (or the child is not to be restarted)."""
        name = child.spec.name
        while not self._stopping.is_set():
            try:
                process = await self._spawn(child)
            except OSError as error:
                self._console.say(f"could not start {name}: {error}")
                self._give_up(name)
                return
            code = await self._watch(child, process)
            ran_for = time.monotonic() - child.started_at
            if self._stopping.is_set():
                stopped = code in {0, -child.spec.stop_signal}
                self._console.say(
                    f"{name} stopped" + ("" if stopped else f" ({describe_exit(code)})")
                )
                return
            if not child.spec.restart:
                self._report_end(child, code, ran_for)
                return
            self._report_exit(child, code, ran_for)
            delay = child.backoff.after_exit(ran_for)
            if delay is None:
                self._console.say(
                    f"giving up on {name}: it failed {child.backoff.quick_failures} times in a "
                    f"row, each within {child.backoff.policy.quick_run:g} s of starting"
                )
                self._give_up(name)
                return
            self._console.say(f"restarting {name} in {delay:g} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _spawn(self, child: _Child) -> asyncio.subprocess.Process:
        # Its own session (so its own process group): a Ctrl-C at the terminal reaches only the
        # supervisor, which then stops the children in order, and a group signal reaches anything
        # the child itself started.
        process = await asyncio.create_subprocess_exec(
            *child.spec.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **child.spec.environment, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
        child.started_at = time.monotonic()
        child.runs += 1
        child.tail.clear()
        again = " again" if child.runs > 1 else ""
        self._console.say(f"started {child.spec.name}{again} (pid {process.pid})")
        return process

    async def _watch(self, child: _Child, process: asyncio.subprocess.Process) -> int:
        """Relay the child's output and probe it until it exits or the supervisor stops it."""
        output = asyncio.create_task(self._relay_output(child, process))
        readiness = asyncio.create_task(self._await_ready(child)) if child.spec.url else None
        exited = asyncio.create_task(process.wait())
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not exited.done():
                await self._stop(child, process, exited)
            code = await exited
        finally:
            for task in (stopping, readiness, exited):
                if task is not None and not task.done():
                    task.cancel()
            # Whatever the child left behind in its group goes with it.
            _signal_group(process.pid, signal.SIGKILL)
            child.ready = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(output), _OUTPUT_DRAIN_TIMEOUT)
            output.cancel()
        return code

    async def _stop(
        self, child: _Child, process: asyncio.subprocess.Process, exited: asyncio.Task[int]
    ) -> None:
        """The child's stop signal (SIGTERM) to its group; SIGKILL after the timeout (or a second
        Ctrl-C)."""
        if child is not self._simulator:
            # The simulator goes first, so that it does not report the services going away.
            await _until_first(
                _SIMULATOR_STOP_WAIT, self._simulator_done.wait(), self._hurry.wait()
            )
        _signal_group(process.pid, child.spec.stop_signal)
        await _until_first(self._options.stop_timeout, asyncio.shield(exited), self._hurry.wait())
        if not exited.done():
            if not self._hurry.is_set():
                self._console.say(
                    f"{child.spec.name} did not stop within {self._options.stop_timeout:g} s: "
                    "killing it"
                )
            _signal_group(process.pid, signal.SIGKILL)

    async def _relay_output(self, child: _Child, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        splitter = LineSplitter()
        while chunk := await process.stdout.read(65_536):
            for line in splitter.feed(chunk):
                self._emit(child, line)
        for line in splitter.flush():
            self._emit(child, line)

    def _emit(self, child: _Child, line: str) -> None:
        if self._options.hide_routine and is_routine(line):
            return
        child.tail.add(line)
        self._console.child(child.spec.name, line)

    async def _await_ready(self, child: _Child) -> None:
        """Poll /health, then /ready, until each answers 200; then say so."""
        assert child.spec.url is not None
        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
            for probe in ("/health", "/ready"):
                await self._poll(client, child, f"{child.spec.url}{probe}")
        child.ready = True
        elapsed = time.monotonic() - child.started_at
        again = " again" if child.runs > 1 else ""
        self._console.say(
            f"{child.spec.name} is ready{again} at {child.spec.url} ({elapsed:.1f} s)"
        )
        self._after_ready()

    async def _poll(self, client: httpx.AsyncClient, child: _Child, url: str) -> None:
        next_report = time.monotonic() + _NOT_READY_REPORT_EVERY
        while True:
            try:
                response = await client.get(url)
            except httpx.HTTPError as error:
                reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            else:
                if response.status_code == 200:
                    return
                reason = f"{response.status_code} {response.text[:200]}"
            if time.monotonic() >= next_report:
                waited = time.monotonic() - child.started_at
                self._console.say(
                    f"{child.spec.name} is not ready after {waited:.0f} s: {url} answers {reason}"
                )
                next_report += _NOT_READY_REPORT_EVERY
            await asyncio.sleep(_POLL_INTERVAL)

    def _after_ready(self) -> None:
        if self._announced or not all(child.ready for child in self._services):
            return
        self._announced = True
        self._console.block(self._announce())
        if self._simulator is not None and self._tasks is not None:
            self._simulator_done.clear()
            self._tasks.create_task(self._run_simulator(self._simulator), name="simulator")

    async def _run_simulator(self, simulator: _Child) -> None:
        try:
            await self._supervise(simulator)
        finally:
            self._simulator_done.set()

    def _report_exit(self, child: _Child, code: int, ran_for: float) -> None:
        lines = child.tail.lines()
        if not lines:
            last = "; it wrote nothing"
        elif lines == child.reported_tail:
            last = "; its last lines were the same as the time before"
        else:
            last = "; its last lines:"
        self._console.say(
            f"{child.spec.name} exited unexpectedly ({describe_exit(code)}) after {ran_for:.1f} s"
            + last
        )
        if lines != child.reported_tail:
            for line in lines:
                self._console.say(f"  | {line}")
        child.reported_tail = lines

    def _report_end(self, child: _Child, code: int, ran_for: float) -> None:
        if code == 0:
            self._console.say(f"{child.spec.name} finished after {ran_for:.0f} s")
        else:
            self._report_exit(child, code, ran_for)
            self._console.say(f"{child.spec.name} is not restarted; the services keep running")

    def _give_up(self, name: str) -> None:
        self._gave_up = name
        self._stopping.set()


async def _until_first(seconds: float, *waits: Awaitable[object]) -> None:
    """Wait until the first of `waits` is done, or for `seconds`; cancel the rest."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
