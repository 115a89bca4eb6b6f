"""How fast the ledger answers `GET /v1/capacity/{footprint}` while the demo's simulator runs.

Run: .venv/bin/python bench/reads/bench_reads.py [--seconds 20] [--readers 8] [--keep]

It starts the exchange as `make demo` does (`nearhome run --demo --no-infra`: the four services
under the supervisor, and `nearhome simulate --region north-west --speed 60 --seed 1` seeding the
North West), on a fresh scratch database and topic prefix (`infra.local.scratch`) and consumer
groups of its own, on free ports. Once the ledger counts capacity in the North West, while the
simulator is still seeding, it reads capacity with one reader and then with `--readers`
concurrent readers, each for `--seconds`, every reader going round a council (Sefton), the
region (North West) and the collaborative (Placements North West) with authority tokens (of
1,000 subjects in turn: each subject may send 600 requests a minute, one dashboard's worth). Each
reader keeps one HTTP/1.1 connection open and sends its next request when the answer is in (a
dashboard polling as fast as it can), through a bare asyncio client so that the client's own
work takes as little of the two cores as it can. It prints p50/p95/p99 and answers a second per
footprint and in all, and PASS/FAIL against the target: p95 < 50 ms with eight readers. Needs
`nearhome infra up`; the database and topics are dropped afterwards unless --keep.
"""

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from uuid import uuid4

from infra.local.scratch import scratch_database, scratch_topics
from services.platform.auth import Role, issue_token, principal_for
from services.platform.settings import CommonSettings
from tools.benchmarks import free_port, percentile

SECRET = "bench-reads-secret-of-at-least-thirty-two-bytes"
SERVICES = ("provider", "authority", "ledger", "alerting")
# A council, its region and the collaborative: the three kinds of footprint.
FOOTPRINTS = ("E08000014", "E12000002", "placements-north-west")
TOKEN_COUNCIL = "E08000014"  # an authority token reads any footprint
# The services allow each token's subject 600 requests a minute (NEARHOME_RATE_LIMIT_PER_MINUTE):
# the readers stand for many dashboards, each request sent with the next of this many tokens,
# each of its own subject, so that none is refused for its rate.
SUBJECTS = 1000
TARGET_P95_MS = 50.0
SEED_PROGRESS = re.compile(r"^\[simulator\]\s+sim (\S+) \| seed ([\d,]+)/([\d,]+)")
STARTED = re.compile(r"^\[supervisor\]\s+started (\w+)(?: again)? \(pid (\d+)\)$")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds per phase")
    parser.add_argument("--readers", type=int, default=8, help="concurrent readers, phase two")
    parser.add_argument(
        "--start-within", type=float, default=180.0, help="seconds for the demo to count capacity"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database and the topics")
    return parser.parse_args()


# --- the demo, as `make demo` runs it ---------------------------------------------------------


@dataclass
class Demo:
    """`nearhome run --demo`: its output so far, the ledger's port and the simulator's progress."""

    process: asyncio.subprocess.Process
    ledger_port: int
    lines: list[str] = field(default_factory=list)

    async def read_output(self) -> None:
        assert self.process.stdout is not None
        while raw := await self.process.stdout.readline():
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def seed_progress(self) -> tuple[int, int] | None:
        """The simulator's last (seeded, to seed), if it has said one."""
        for line in reversed(self.lines):
            if match := SEED_PROGRESS.match(line):
                return int(match[2].replace(",", "")), int(match[3].replace(",", ""))
        return None

    def seeding(self) -> str:
        progress = self.seed_progress()
        if progress is None:
            return "simulator: no progress line yet"
        done, total = progress
        state = "seeding" if done < total else "seeded, running the day-to-day"
        return f"simulator: {state} ({done:,}/{total:,} seed requests)"

    def pids(self) -> list[int]:
        return [int(match[2]) for line in self.lines if (match := STARTED.match(line))]

    async def wait_for(self, pattern: str, within: float) -> None:
        compiled = re.compile(pattern)
        async with asyncio.timeout(within):
            while not any(compiled.search(line) for line in self.lines):
                if self.process.returncode is not None:
                    raise RuntimeError("nearhome run exited:\n" + "\n".join(self.lines[-40:]))
                await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def demo(database_url: str, prefix: str) -> AsyncIterator[Demo]:
    """The demo on `database_url` and the topics under `prefix`, stopped with Ctrl-C after."""
    ports = {name: free_port() for name in SERVICES}
    run_id = uuid4().hex[:8]
    environment = {
        **os.environ,
        "NEARHOME_ENV": "development",
        "DATABASE_URL": database_url,
        "NEARHOME_TOPIC_PREFIX": prefix,
        "NEARHOME_JWT_SECRET": SECRET,
        **{f"{name.upper()}_PORT": str(port) for name, port in ports.items()},
        **{f"{name.upper()}_CONSUMER_GROUP": f"bench-reads-{run_id}-{name}" for name in SERVICES},
    }
    nearhome = str(Path(sys.executable).with_name("nearhome"))
    process = await asyncio.create_subprocess_exec(
        nearhome,
        "run",
        "--demo",
        "--no-infra",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=environment,
    )
    running = Demo(process, ports["ledger"])
    reader = asyncio.create_task(running.read_output())
    try:
        yield running
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                async with asyncio.timeout(30):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        for pid in running.pids():  # nothing the supervisor started outlives the benchmark
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


# --- a bare HTTP/1.1 reader -------------------------------------------------------------------


class Tokens:
    """Authority tokens of `SUBJECTS` subjects, handed out in turn."""

    def __init__(self) -> None:
        self._tokens = [
            issue_token(
                principal_for(
                    Role.AUTHORITY, authority_code=TOKEN_COUNCIL, organisation_id=f"reader-{n}"
                ),
                SECRET,
            )
            for n in range(SUBJECTS)
        ]
        self._turn = 0

    def next(self) -> str:
        self._turn = (self._turn + 1) % len(self._tokens)
        return self._tokens[self._turn]


class Reader:
    """One keep-alive connection to the ledger, one request at a time."""

    def __init__(self, port: int, tokens: Tokens) -> None:
        self._port = port
        self._tokens = tokens
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self._streams is None:
            self._streams = await asyncio.open_connection("127.0.0.1", self._port)
        reader, writer = self._streams
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{self._port}\r\n"
                f"Authorization: Bearer {self._tokens.next()}\r\nAccept: application/json\r\n\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in header_lines if line)
        }
        body = await reader.readexactly(int(headers["content-length"]))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return int(status_line.split()[1]), body

    async def close(self) -> None:
        if self._streams is not None:
            _, writer = self._streams
            self._streams = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def capacity_counted(port: int, tokens: Tokens) -> int:
    """Registered places the ledger counts in the collaborative now (0 if it answers no 200)."""
    reader = Reader(port, tokens)
    try:
        status, body = await reader.get(f"/v1/capacity/{FOOTPRINTS[-1]}")
    except OSError:
        return 0
    finally:
        await reader.close()
    if status != 200:
        return 0
    totals: dict[str, int] = json.loads(body)["totals"]
    return totals["registered_places"]


async def counting(port: int, tokens: Tokens, within: float) -> None:
    """Return once the ledger counts capacity in the collaborative (polled twice a second)."""
    async with asyncio.timeout(within):
        while True:
            if await capacity_counted(port, tokens):
                return
            await asyncio.sleep(0.5)


# The ledger's own account of its reads (services/ledger/use_cases.py), where it keeps one.
WATCHED = (
    'nearhome_ledger_capacity_reads_total{answered="counted"}',
    'nearhome_ledger_capacity_reads_total{answered="reused"}',
    "nearhome_ledger_capacity_count_seconds_sum",
    'nearhome_consumer_events_total{outcome="applied"}',
)


async def ledger_counters(port: int, tokens: Tokens) -> dict[str, float]:
    """The WATCHED samples of the ledger's /metrics (those it has)."""
    reader = Reader(port, tokens)
    try:
        _, body = await reader.get("/metrics")
    finally:
        await reader.close()
    found = {}
    for sample in body.decode().splitlines():
        name, _, value = sample.rpartition(" ")
        if name in WATCHED:
            found[name] = float(value)
    return found


def counters_line(before: dict[str, float], after: dict[str, float], seconds: float) -> str:
    if not after:
        return "  (the ledger keeps no account of its reads)"
    change = {name: after.get(name, 0.0) - before.get(name, 0.0) for name in WATCHED}
    counted, reused, counting, applied = change.values()
    mean = f"{counting / counted * 1000:.1f} ms each" if counted else "none"
    return (
        f"  ledger: {counted:,.0f} reads counted the councils again ({mean}),"
        f" {reused:,.0f} reused the last count; {applied / seconds:,.0f} events applied a second"
    )


# --- the phases -------------------------------------------------------------------------------


@dataclass
class Phase:
    readers: int
    seconds: float
    millis: dict[str, list[float]] = field(default_factory=dict)
    failures: dict[int, int] = field(default_factory=dict)  # answers other than 200, by status
    ledger: str = ""  # what the ledger says it did meanwhile

    def all_millis(self) -> list[float]:
        return [m for values in self.millis.values() for m in values]


async def read_for(reader: Reader, phase: Phase, first: int, until: float) -> None:
    """Read the footprints in turn from `first` until `until`, timing each answer."""
    turn = first
    while time.perf_counter() < until:
        footprint = FOOTPRINTS[turn % len(FOOTPRINTS)]
        turn += 1
        started = time.perf_counter()
        status, _ = await reader.get(f"/v1/capacity/{footprint}")
        elapsed = (time.perf_counter() - started) * 1000
        if status != 200:
            phase.failures[status] = phase.failures.get(status, 0) + 1
            continue
        phase.millis.setdefault(footprint, []).append(elapsed)


async def run_phase(port: int, tokens: Tokens, readers: int, seconds: float) -> Phase:
    phase = Phase(readers, seconds)
    clients = [Reader(port, tokens) for _ in range(readers)]
    try:
        for client in clients:  # connected (and warm) before the clock starts
            await client.get(f"/v1/capacity/{FOOTPRINTS[0]}")
        before = await ledger_counters(port, tokens)
        until = time.perf_counter() + seconds
        await asyncio.gather(
            *(read_for(client, phase, index, until) for index, client in enumerate(clients))
        )
        phase.ledger = counters_line(before, await ledger_counters(port, tokens), seconds)
    finally:
        for client in clients:
            await client.close()
    return phase


def line(label: str, millis: Sequence[float], seconds: float) -> str:
    if not millis:
        return f"  {label:<24} no answers"
    return (
        f"  {label:<24} n={len(millis):>6,}  p50 {statistics.median(millis):6.1f} ms"
        f"  p95 {percentile(millis, 0.95):6.1f} ms  p99 {percentile(millis, 0.99):6.1f} ms"
        f"  {len(millis) / seconds:7.1f} answers/s"
    )


def report(phase: Phase) -> bool:
    """Print the phase's figures; whether its p95 meets the target."""
    print(f"{phase.readers} reader(s), {phase.seconds:g} s:")
    for footprint in FOOTPRINTS:
        print(line(footprint, phase.millis.get(footprint, []), phase.seconds))
    every = phase.all_millis()
    print(line("all footprints", every, phase.seconds))
    if phase.failures:
        print(f"  answers other than 200 (by status): {phase.failures}")
    print(phase.ledger)
    return bool(every) and percentile(every, 0.95) < TARGET_P95_MS and not phase.failures


async def main() -> int:
    arguments = _arguments()
    base = CommonSettings()
    tokens = Tokens()
    async with (
        scratch_topics(
            base.kafka_bootstrap_servers, f"bench-reads-{uuid4().hex[:8]}.", keep=arguments.keep
        ) as prefix,
        scratch_database(
            base.database_url, f"nearhome_bench_{uuid4().hex[:8]}", keep=arguments.keep
        ) as database_url,
        demo(database_url, prefix) as running,
    ):
        started = time.perf_counter()
        await running.wait_for(r"^NearHome is running", within=arguments.start_within)
        print(f"the demo answers after {time.perf_counter() - started:.1f} s")
        await counting(running.ledger_port, tokens, arguments.start_within)
        print(f"the ledger counts capacity after {time.perf_counter() - started:.1f} s")
        print(running.seeding())
        one = await run_phase(running.ledger_port, tokens, 1, arguments.seconds)
        print(running.seeding())
        many = await run_phase(running.ledger_port, tokens, arguments.readers, arguments.seconds)
        print(running.seeding())
        print()
        report(one)
        met = report(many)
        every = many.all_millis()
        p95 = percentile(every, 0.95) if every else float("nan")
        print(
            f"{'PASS' if met else 'FAIL'}: p95 with {arguments.readers} readers {p95:.1f} ms"
            f" (target < {TARGET_P95_MS:g} ms)"
        )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
