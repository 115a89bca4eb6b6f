"""Running commands, and starting, recognising and stopping the processes `up` leaves running."""

import asyncio
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from infra.local.errors import CommandFailedError, InfraError, ToolMissingError

_OUTPUT_TAIL_LINES = 15
_POLL_INTERVAL_S = 0.2
_KILL_GRACE_S = 10.0
_EXIT_STATUS_WAIT_S = 5.0

# Processes started by this Python process. Keeping their Popen objects lets `stop_process` reap
# them (so a test session that starts and stops the broker leaves no zombie behind) and avoids
# the "subprocess is still running" warning when a Popen object is collected.
_started_here: dict[int, subprocess.Popen[bytes]] = {}


def require_program(name: str, hint: str) -> str:
    """The absolute path of `name` on PATH; `ToolMissingError` with `hint` when it is missing."""
    found = shutil.which(name)
    if found is None:
        raise ToolMissingError(f"{name} not found on PATH: {hint}")
    return found


def tail(text: str, lines: int = _OUTPUT_TAIL_LINES) -> str:
    """The last lines of a command's output, indented to follow an error message."""
    kept = text.strip().splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in kept)


def tail_of_file(path: Path, lines: int = _OUTPUT_TAIL_LINES) -> str:
    try:
        return tail(path.read_text(errors="replace"), lines)
    except FileNotFoundError:
        return f"    ({path} does not exist)"


async def run_command(
    argv: Sequence[str],
    *,
    action: str,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> str:
    """Run a command to completion and return its output; `CommandFailedError` if it fails."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=None if env is None else {**os.environ, **env},
        cwd=cwd,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise CommandFailedError(f"{action} did not finish within {timeout_s:.0f} s") from None
    text = output.decode(errors="replace")
    if process.returncode != 0:
        raise CommandFailedError(f"{action} failed (exit code {process.returncode}):\n{tail(text)}")
    return text


def is_running(pid: int, *markers: str) -> bool:
    """Whether `pid` is a live (not zombie) process whose command line contains every marker.

    The markers guard against a recorded pid that has since been reused by another program.
    """
    proc = Path("/proc") / str(pid)
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    # The state follows the parenthesised command name, which may itself contain spaces.
    state = stat.rpartition(")")[2].split()[0]
    if state in {"Z", "X"}:
        return False
    command_line = cmdline.decode(errors="replace").replace("\0", " ")
    return all(marker in command_line for marker in markers)


def _task_state(stat_file: Path) -> str | None:
    try:
        stat = stat_file.read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return stat.rpartition(")")[2].split()[0]


def has_exited(pid: int, *markers: str) -> bool:
    """Whether `pid` has ended: none of its threads is alive, or the pid is another program's now.

    Not `not is_running(...)`: a JVM's first thread can end (a zombie, with an empty command line)
    while its other threads still shut the broker down and write to its data folder; a second
    broker started then on the same folder corrupts its metadata log.
    """
    proc = Path("/proc") / str(pid)
    try:
        cmdline = (proc / "cmdline").read_bytes()
        tasks = list((proc / "task").iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return True
    if not any(_task_state(task / "stat") not in {None, "Z", "X"} for task in tasks):
        return True
    command_line = cmdline.decode(errors="replace").replace("\0", " ")
    return bool(command_line) and not all(marker in command_line for marker in markers)


def read_pid_file(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def write_pid_file(path: Path, pid: int) -> None:
    path.write_text(f"{pid}\n")


def start_detached(argv: Sequence[str], *, log_path: Path, cwd: Path) -> int:
    """Start a long-running process in its own session, output to `log_path`; return its pid.

    `log_path` starts empty, so what it holds after a failed start is about that start.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        child = subprocess.Popen(  # noqa: S603 - argv is built from our own paths, no shell
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )
    _started_here[child.pid] = child
    return child.pid


async def exit_status(pid: int, timeout_s: float = _EXIT_STATUS_WAIT_S) -> str | None:
    """How a process this Python process started ended ("exit code 1", "killed by SIGKILL").

    Waits up to `timeout_s` for it: a process on its way out already looks gone in /proc (its
    command line is empty) a moment before the kernel has its exit status. None if it is still
    running after that, or was not started here (only a parent learns how a child ended).
    """
    child = _started_here.get(pid)
    if child is None:
        return None
    deadline = asyncio.get_running_loop().time() + timeout_s
    while (code := child.poll()) is None:
        if asyncio.get_running_loop().time() >= deadline:
            return None
        await asyncio.sleep(_POLL_INTERVAL_S / 4)
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def memory_available_mib() -> int | None:
    """The kernel's estimate of memory available to new work, in MiB (None off Linux)."""
    try:
        lines = Path("/proc/meminfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        name, _, value = line.partition(":")
        if name == "MemAvailable":
            return int(value.split()[0]) // 1024
    return None


def cgroup_memory_report() -> str | None:
    """This process's memory cgroup: its limit and how many processes the kernel killed in it.

    A JVM that vanishes without a word has usually met that killer; this says so for certain.
    Reads cgroup v2 (`memory.max`, `memory.events`) or v1 (`memory.limit_in_bytes`,
    `memory.oom_control`); None where neither is readable.
    """
    try:
        memberships = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for membership in memberships:
        _, controllers, path = membership.split(":", 2)
        if controllers == "":
            folder = Path("/sys/fs/cgroup") / path.lstrip("/")
            names = ("memory.max", "memory.events")
        elif "memory" in controllers.split(","):
            folder = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            names = ("memory.limit_in_bytes", "memory.oom_control")
        else:
            continue
        try:
            limit = (folder / names[0]).read_text().strip()
            counters = dict(line.split() for line in (folder / names[1]).read_text().splitlines())
        except (OSError, ValueError):
            continue
        limit_text = (
            f"{int(limit) // (1024 * 1024)} MiB"
            if limit.isdigit() and int(limit) < 2**60
            else "none"
        )
        return f"cgroup memory limit: {limit_text}, OOM kills in the cgroup: " + (
            counters.get("oom_kill", "unknown")
        )
    return None


async def stop_process(pid: int, *markers: str, timeout_s: float) -> None:
    """SIGTERM `pid` if it is still the process the markers describe; SIGKILL after `timeout_s`."""
    if not is_running(pid, *markers):
        return
    os.kill(pid, signal.SIGTERM)
    if await _wait_until_gone(pid, markers, timeout_s):
        return
    os.kill(pid, signal.SIGKILL)
    if not await _wait_until_gone(pid, markers, _KILL_GRACE_S):
        raise InfraError(f"process {pid} survived SIGKILL")


async def kill_process(pid: int, *markers: str, timeout_s: float = _KILL_GRACE_S) -> bool:
    """SIGKILL `pid` if it is still the process the markers describe (as the kernel's OOM killer
    would) and wait until it is gone; whether it was running."""
    if not is_running(pid, *markers):
        return False
    os.kill(pid, signal.SIGKILL)
    if not await _wait_until_gone(pid, markers, timeout_s):
        raise InfraError(f"process {pid} survived SIGKILL")
    return True


async def _wait_until_gone(pid: int, markers: tuple[str, ...], timeout_s: float) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        child = _started_here.get(pid)
        if child is not None and child.poll() is not None:
            del _started_here[pid]
        if has_exited(pid, *markers):
            return True
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(_POLL_INTERVAL_S)


def running_as_root() -> bool:
    return os.geteuid() == 0


def as_postgres_user(argv: Sequence[str]) -> list[str]:
    """`argv` run as the `postgres` OS user when we are root: PostgreSQL refuses to run as root."""
    if not running_as_root():
        return list(argv)
    runuser = require_program("runuser", "it is part of util-linux")
    return [runuser, "-u", "postgres", "--", *argv]
