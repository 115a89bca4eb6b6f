"""Load: the four services as processes, driven at 10 and then 100 times an England day.

Runs `nearhome serve` for the provider, authority, ledger and alerting services (development env,
free ports, a scratch database and topic prefix, consumer groups of their own), seeds a synthetic
England through their HTTP APIs with the simulator's plan, then drives them with the plan's
day-to-day changes (vacancies posted, confirmed and withdrawn, placements started and ended,
referrals opened, updated and closed, homes opening and closing) and the simulator's loop (every
council reading its alerts, placement requests, offers, declines, acceptances, placements):

  (a) `--multiple` (10) times a realistic England day for `--minutes` (10);
  (b) then `--burst-multiple` (100) times for `--burst-seconds` (60);

then stops and measures how long the consumers' lag takes to drain (aim: 60 s), lets the services
settle, and compares each service's resident memory with what it was before the load (aim: within
10%). It prints its figures and a verdict per aim; it asserts nothing. Needs `nearhome infra up`.

    .venv/bin/python -m bench.load.bench_load                       # the full run, about 20 min
    .venv/bin/python -m bench.load.bench_load --minutes 1 --burst-seconds 10 --scale 0.02  # smoke
"""

import argparse
import asyncio
import contextlib
import logging
import math
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from uuid import uuid4

import httpx

from bench.load.england import ENGLAND_DAY, ENGLAND_REQUESTS_A_DAY, england
from bench.load.traffic import (
    Resumable,
    Tally,
    plan_rate,
    round_every,
    run_loop,
    send,
    summary,
)
from bench.load.watch import Group, Kafka, cpu_seconds, memory_kib, outbox_backlogs
from services.platform.settings import CommonSettings
from tools.simulator.loop import Loop
from tools.simulator.plan import SimulationConfig, plan
from tools.simulator.progress import Progress
from tools.simulator.requests import Api, PlannedRequest
from tools.simulator.sender import Tokens

# bench_e2e imports its sibling bench_matching as a top-level module.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "alerting"))
from bench.alerting.bench_e2e import (
    SECRET,
    Service,
    fresh_world,
    start_service,
    wait_healthy,
)

SERVICES = ("provider", "authority", "ledger", "alerting")
REPORT_EVERY = 10.0
DRAIN_EVERY = 0.5
DRAIN_AIM_S = 60.0
MEMORY_AIM = 0.10
COUNCILS_READ_A_DAY = 24 * 4  # the loop: each council reads its alerts every quarter hour


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10, help="phase (a): how long")
    parser.add_argument("--burst-seconds", type=float, default=60, help="phase (b): how long")
    parser.add_argument("--multiple", type=float, default=10, help="phase (a): x England's day")
    parser.add_argument(
        "--burst-multiple", type=float, default=100, help="phase (b): x England's day"
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=0.1,
        help="size of the synthetic England seeded first (1 is real size: about 108,000 seed "
        "requests); the rates are England's at real size whatever the scale",
    )
    parser.add_argument("--seed", type=int, default=1, help="the simulator's seed")
    parser.add_argument("--seed-rate", type=float, default=120, help="seed requests a second")
    parser.add_argument("--settle-seconds", type=float, default=30, help="idle before memory")
    parser.add_argument("--drain-timeout", type=float, default=600, help="give up draining after")
    parser.add_argument("--keep", action="store_true", help="keep the database and topics")
    return parser.parse_args(argv)


# --- the services ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def four_services(environment: dict[str, str]) -> AsyncIterator[dict[str, Service]]:
    """The four services as `nearhome serve` processes, each on a free port, once all are ready."""
    logs = Path(tempfile.mkdtemp(prefix="nearhome-load-"))
    print(f"service logs in {logs}")
    services: dict[str, Service] = {}
    try:
        for name in SERVICES:
            services[name] = start_service(name, environment, logs / f"{name}.log")
        await asyncio.gather(*(wait_healthy(service, 180) for service in services.values()))
        print(
            "ready: "
            + ", ".join(f"{name} {s.url} (pid {s.process.pid})" for name, s in services.items())
        )
        yield services
    finally:
        for service in services.values():
            service.stop()
        _log_summary(logs)


def _log_summary(logs: Path) -> None:
    """How many lines of each service's output speak of an error, and the first of them."""
    for log in sorted(logs.glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()
        bad = [line for line in lines if "ERROR" in line or "Traceback" in line]
        print(f"{log.stem} log: {len(lines):,} lines, {len(bad):,} with ERROR or Traceback")
        for line in bad[:3]:
            print(f"    {line[:200]}")


# --- watching -------------------------------------------------------------------------------------


@dataclass
class Sample:
    at: float
    lag: dict[str, int]
    backlog: dict[str, float]

    @property
    def drained(self) -> bool:
        # An unreadable /metrics (no backlog figures) is not taken for an empty outbox.
        return bool(self.backlog) and not any(self.lag.values()) and not any(self.backlog.values())


SETUP = "setup"  # the seed's phase: what the load starts from, not part of it


@dataclass
class Phase:
    """One phase's traffic and what was seen during it."""

    name: str
    multiple: float
    seconds: float
    began: float = 0.0
    ended: float = 0.0
    plan: Progress = field(default_factory=Progress)
    loop_steps: Counter[str] = field(default_factory=Counter)
    events: dict[str, int] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds each service used

    @property
    def label(self) -> str:
        return f"{self.name} ({self.multiple:g}x)" if self.multiple else self.name


@dataclass
class Watch:
    kafka: Kafka
    monitors: dict[str, httpx.AsyncClient]
    services: dict[str, Service]
    tally: Tally
    current: Phase | None = None
    _last: tuple[str, int, float] = ("", 0, 0.0)  # phase, requests sent, when

    async def sample(self) -> Sample:
        lag = await self.kafka.lag()
        try:
            backlog = await outbox_backlogs(self.monitors)
        except httpx.HTTPError as error:
            print(f"    /metrics unreadable: {error!r}")
            backlog = {}
        found = Sample(time.monotonic(), lag, backlog)
        if self.current is not None:
            self.current.samples.append(found)
        return found

    def cpu(self) -> dict[str, float]:
        return {
            name: cpu_seconds(service.process.pid)
            for name, service in self.services.items()
            if service.process.poll() is None
        }

    def memory(self, kind: str = "VmRSS") -> dict[str, int]:
        found = {}
        for name, service in self.services.items():
            if service.process.poll() is not None:
                print(f"    {name} has exited with {service.process.returncode}")
                found[name] = 0
                continue
            found[name] = memory_kib(service.process.pid, kind)
        return found

    async def report(self, phase: Phase, of: float) -> None:
        """A status line every REPORT_EVERY seconds while `phase` runs (`of` seconds long)."""
        while True:
            await asyncio.sleep(REPORT_EVERY)
            print(await self.line(phase, of), flush=True)

    async def line(self, phase: Phase, of: float) -> str:
        found = await self.sample()
        now = time.monotonic()
        sent = self.tally.sent[phase.name]
        name, then, at = self._last if self._last[0] == phase.name else (phase.name, 0, phase.began)
        rate = (sent - then) / max(now - at, 1e-9)
        self._last = (name, sent, now)
        memory = self.memory()
        total = f"/{of:.0f}" if math.isfinite(of) else ""
        return (
            f"[{phase.label} {now - phase.began:4.0f}{total} s] "
            f"{self.tally.line(phase.name, finished=False)} "
            f"({rate:.1f}/s); plan {phase.plan.finished:,} done | lag "
            + " ".join(f"{name} {n:,}" for name, n in found.lag.items())
            + " | outbox "
            + " ".join(f"{name} {n:,.0f}" for name, n in found.backlog.items())
            + " | RSS MiB "
            + " ".join(f"{name} {kib / 1024:.0f}" for name, kib in memory.items())
        )

    async def until_drained(self, within: float, every: float) -> float | None:
        """Seconds until no group lags and no outbox holds anything (None: not `within`)."""
        began = time.monotonic()
        shown = began
        while time.monotonic() - began < within:
            found = await self.sample()
            if found.drained:
                return found.at - began
            if time.monotonic() - shown >= REPORT_EVERY:
                shown = time.monotonic()
                print(
                    f"    draining {shown - began:.0f} s: lag {found.lag}, outbox {found.backlog}",
                    flush=True,
                )
            await asyncio.sleep(every)
        return None


@contextlib.asynccontextmanager
async def reporting(watch: Watch, phase: Phase, of: float) -> AsyncIterator[Phase]:
    """`phase` as the one being counted, with its status lines, events and loop steps."""
    watch.current = phase
    watch.tally.phase = phase.name
    phase.began = time.monotonic()
    before = await watch.kafka.events()
    cpu = watch.cpu()
    reporter = asyncio.create_task(watch.report(phase, of))
    try:
        yield phase
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
        phase.ended = time.monotonic()
        after = await watch.kafka.events()
        phase.events = {topic: after[topic] - before[topic] for topic in after}
        phase.cpu = {name: used - cpu.get(name, used) for name, used in watch.cpu().items()}
        await watch.sample()


# --- the run --------------------------------------------------------------------------------------


def england_day_lines(args: argparse.Namespace) -> list[str]:
    kinds = ", ".join(f"{kind.value} {n:,.0f}" for kind, n in ENGLAND_DAY.items())
    councils = len(england().councils)
    lines = [
        (
            f"a realistic England day (the simulator's plan for all {councils} councils at real "
            f"size, bench/load/england.py): {ENGLAND_REQUESTS_A_DAY:,.0f} writes ({kinds}), each "
            f"one event; plus the loop: each council reads its alerts every quarter hour "
            f"({councils * COUNCILS_READ_A_DAY:,} reads a day) and asks for, offers, accepts and "
            "starts placements from what it finds"
        ),
    ]
    for name, multiple, seconds in (
        ("(a) steady", args.multiple, args.minutes * 60),
        ("(b) burst", args.burst_multiple, args.burst_seconds),
    ):
        lines.append(
            f"phase {name}: {multiple:g}x for {seconds:.0f} s = {plan_rate(multiple):.3f} plan "
            f"writes/s (about {plan_rate(multiple) * seconds:,.0f}) and a loop round every "
            f"{round_every(multiple):.0f} s"
        )
    return lines


@dataclass
class LoadRun:
    """The run's world: its arguments, plan, clients and watch, and the phases so far."""

    args: argparse.Namespace
    config: SimulationConfig
    clients: dict[Api, httpx.AsyncClient]
    watch: Watch
    ids: dict[str, str] = field(default_factory=dict)
    phases: list[Phase] = field(default_factory=list)
    multiple: float = 0.0  # the phase under way, which paces the loop's rounds
    rounds: list[tuple[float, float]] = field(default_factory=list)  # the loop's: start, seconds

    async def seed(self, requests: list[PlannedRequest]) -> None:
        """The seed's requests as fast as `--seed-rate` allows, then until the consumers have
        read all it made."""
        setup = Phase(SETUP, 0, math.inf)
        async with reporting(self.watch, setup, math.inf):
            print(f"seeding: {len(requests):,} requests at up to {self.args.seed_rate:g}/s")
            await send(
                iter(requests), self.clients, SECRET, self.ids, setup.plan, rate=self.args.seed_rate
            )
            print(f"seeded: {summary(setup.plan)}")
            drained = await self.watch.until_drained(self.args.drain_timeout, DRAIN_EVERY)
            print(f"consumers caught up with the seed {_seconds(drained)} after it was sent")
        self.phases.append(setup)

    def loop(self, steady: Resumable) -> Loop:
        start = self.config.start.date()
        return Loop(
            self.clients,
            Tokens(SECRET),
            councils=(council.code for council in self.config.area.councils),
            seed=self.config.seed,
            run_id=self.config.run_id,
            today=lambda: steady.today(start),
            progress=Progress(),
        )

    async def warm_up(self, loop: Loop) -> dict[str, int]:
        """The loop's first round (on the alerts the seed raised), a drain and a settle: then
        the memory before the load."""
        self.watch.tally.phase = SETUP
        print("the loop's first round, on the alerts the seed raised")
        await loop.round()
        drained = await self.watch.until_drained(self.args.drain_timeout, DRAIN_EVERY)
        print(f"drained {_seconds(drained)} after it; settling {self.args.settle_seconds:g} s")
        cpu = self.watch.cpu()
        await asyncio.sleep(self.args.settle_seconds)
        idle = {name: used - cpu.get(name, used) for name, used in self.watch.cpu().items()}
        print(
            "CPU used idle, while settling: "
            + ", ".join(f"{n} {used / self.args.settle_seconds:.0%}" for n, used in idle.items())
        )
        before = self.watch.memory()
        print("memory before (MiB): " + ", ".join(f"{n} {k / 1024:.1f}" for n, k in before.items()))
        return before

    async def load(self, steady: Resumable, loop: Loop) -> float:
        """Phases (a) and (b), the loop running through both; the seconds from the burst's end
        until the loop's last round ended."""
        stop = asyncio.Event()
        self.multiple = self.args.multiple
        looping = asyncio.create_task(
            run_loop(loop, lambda: round_every(self.multiple), stop, self.rounds)
        )
        try:
            for name, multiple, seconds in (
                ("steady", self.args.multiple, self.args.minutes * 60),
                ("burst", self.args.burst_multiple, self.args.burst_seconds),
            ):
                await self.phase(name, multiple, seconds, steady=steady, loop=loop)
        finally:
            stop.set()
            await looping
        return time.monotonic() - self.phases[-1].ended

    async def phase(
        self, name: str, multiple: float, seconds: float, *, steady: Resumable, loop: Loop
    ) -> Phase:
        phase = Phase(name, multiple, seconds)
        self.multiple = multiple
        steps_before = Counter(loop.progress.loop)
        async with reporting(self.watch, phase, seconds):
            await send(
                steady,
                self.clients,
                SECRET,
                self.ids,
                phase.plan,
                rate=plan_rate(multiple),
                seconds=seconds,
            )
            steady.resume()
        phase.loop_steps = Counter(
            {str(step): n for step, n in (loop.progress.loop - steps_before).items()}
        )
        self.phases.append(phase)
        return phase

    async def drain(self, overrun: float) -> tuple[Phase, float | None]:
        """The drain after the burst: its samples, and the seconds from the traffic's end (the
        burst's, and the loop's last round) until no group lags and no outbox holds anything
        (None: not within `--drain-timeout`)."""
        print(f"traffic stopped, {overrun:.1f} s after the burst's end (the loop's last round)")
        drain = Phase("drain", 0, math.inf, began=time.monotonic())
        self.watch.current, self.watch.tally.phase = drain, drain.name
        drained = await self.watch.until_drained(self.args.drain_timeout, DRAIN_EVERY)
        drain.ended = time.monotonic()
        print(f"lag drained {_seconds(drained)} after the traffic stopped")
        return drain, drained


def _seconds(value: float | None) -> str:
    return "never (timed out)" if value is None else f"{value:.1f} s"


def print_phase(phase: Phase, tally: Tally, rounds: list[tuple[float, float]]) -> None:
    took = phase.ended - phase.began
    lags = [sample.lag for sample in phase.samples]
    most = {name: max(lag.get(name, 0) for lag in lags) for name in SERVICES} if lags else {}
    last = lags[-1] if lags else {}
    print(f"{phase.label}: {took:.0f} s")
    print(f"    HTTP: {tally.line(phase.name)}; {tally.sent[phase.name] / took:.2f} requests/s")
    print(f"    plan writes: {summary(phase.plan)}")
    took_each = [took for began, took in rounds if phase.began <= began < phase.ended]
    if took_each and phase.multiple:
        print(
            f"    loop rounds: {len(took_each)}, each {min(took_each):.1f}-{max(took_each):.1f} s "
            f"(one every {round_every(phase.multiple):.0f} s wanted); "
            + (", ".join(f"{k} {n:,}" for k, n in phase.loop_steps.items()) or "no steps")
        )
    print("    events published: " + ", ".join(f"{t} {n:,}" for t, n in phase.events.items()))
    print(
        "    CPU used: "
        + ", ".join(f"{name} {used:.1f} s ({used / took:.0%})" for name, used in phase.cpu.items())
    )
    print(f"    consumer lag, most seen ({len(lags)} samples): {most}; at its end: {last}")
    for (method, route, status), n in tally.refused[phase.name].most_common(8):
        print(f"    non-2xx: {n:,} x {status} {method} {route}")


def print_drain(drain: Phase, drained: float | None) -> None:
    lags = [sample.lag for sample in drain.samples]
    most = {name: max(lag.get(name, 0) for lag in lags) for name in SERVICES} if lags else {}
    backlog = [sample.backlog for sample in drain.samples]
    outbox = {name: max(b.get(name, 0) for b in backlog) for name in backlog[0]} if backlog else {}
    figure = "not within the timeout" if drained is None else f"{drained:.1f} s"
    print(
        f"after the burst: lag and outboxes drained in {figure} ({len(lags)} samples every "
        f"{DRAIN_EVERY:g} s; most lag seen {most}, most outbox backlog {outbox})"
    )


def print_memory(before: dict[str, int], after: dict[str, int], peak: dict[str, int]) -> None:
    print("resident memory (VmRSS, MiB): before the load -> after drain and settle (peak VmHWM)")
    for name in SERVICES:
        change = (after[name] - before[name]) / before[name] if before[name] else math.nan
        print(
            f"    {name:<9} {before[name] / 1024:7.1f} -> {after[name] / 1024:7.1f} "
            f"({change:+.1%}; peak {peak[name] / 1024:.1f})"
        )


def answers_verdict(tally: Tally, phases: Sequence[Phase]) -> str:
    """Whether the load phases (not the seed) had an answer other than 2xx or 409, or none.

    A 409 is counted apart: the plan and the loop drive the exchange independently, so one may
    act on a bed or referral the other has just changed, and Conflict is the right answer then.
    """
    load = [phase.name for phase in phases if phase.name != SETUP]
    conflicts = sum(tally.count(name, lambda s: s == 409) for name in load)
    failed = sum(tally.count(name, lambda s: not 200 <= s < 300 and s != 409) for name in load)
    unanswered = sum(tally.sent[name] - tally.answered(name) for name in load)
    return (
        f"{'MET' if failed + unanswered == 0 else 'MISSED'}: {failed:,} error answers other than "
        f"409 and {unanswered:,} requests unanswered in the load phases (aim: none); "
        f"{conflicts:,} answers were 409 Conflict, the plan and the loop acting on the same bed "
        "or referral"
    )


def verdicts(drained: float | None, before: dict[str, int], after: dict[str, int]) -> list[str]:
    met = drained is not None and drained <= DRAIN_AIM_S
    figure = "did not drain" if drained is None else f"drained in {drained:.1f} s"
    lines = [
        (
            f"{'MET' if met else 'MISSED'}: consumer lag {figure} once the burst's traffic stopped "
            f"(aim <= {DRAIN_AIM_S:.0f} s)"
        )
    ]
    for name in SERVICES:
        if not after[name] or not before[name]:
            lines.append(f"MISSED: {name} exited during the run (see its log)")
            continue
        change = (after[name] - before[name]) / before[name]
        verdict = "MET" if change <= MEMORY_AIM else "MISSED"
        lines.append(
            f"{verdict}: {name} memory after {after[name] / 1024:.1f} MiB vs before "
            f"{before[name] / 1024:.1f} MiB ({change:+.1%}; aim at most +{MEMORY_AIM:.0%})"
        )
    return lines


@contextlib.asynccontextmanager
async def api_clients(
    services: dict[str, Service], tally: Tally
) -> AsyncIterator[tuple[dict[Api, httpx.AsyncClient], dict[str, httpx.AsyncClient]]]:
    """Clients of the APIs (every request tallied) and of the services' /metrics (not tallied)."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with contextlib.AsyncExitStack() as stack:
        apis = {
            api: await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=services[api.value].url,
                    timeout=30,
                    limits=limits,
                    event_hooks=tally.hooks(),
                )
            )
            for api in Api
        }
        monitors = {
            name: await stack.enter_async_context(
                httpx.AsyncClient(base_url=service.url, timeout=30)
            )
            for name, service in services.items()
        }
        yield apis, monitors


async def run(args: argparse.Namespace) -> int:
    for line in england_day_lines(args):
        print(line)
    config = SimulationConfig(area=england(), seed=args.seed, scale=args.scale)
    started = time.perf_counter()
    the_plan = plan(config)
    print(
        f"planned England at scale {args.scale:g} in {time.perf_counter() - started:.0f} s: "
        f"a seed of {len(the_plan.seed_requests):,} requests"
    )
    bootstrap = CommonSettings().kafka_bootstrap_servers
    run_id = uuid4().hex[:8]
    groups = {name: f"bench-load-{run_id}-{name}" for name in SERVICES}
    async with fresh_world(bootstrap, keep=args.keep) as (prefix, database_url):
        environment = {
            "DATABASE_URL": database_url,
            "NEARHOME_TOPIC_PREFIX": prefix,
            "NEARHOME_JWT_SECRET": SECRET,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "NEARHOME_ENV": "development",
            **{f"{name.upper()}_CONSUMER_GROUP": group for name, group in groups.items()},
        }
        tally = Tally()
        async with (
            four_services(environment) as services,
            api_clients(services, tally) as (apis, monitors),
            Kafka(bootstrap, prefix, [Group.of(n, g) for n, g in groups.items()]) as kafka,
        ):
            watch = Watch(kafka, monitors, services, tally)
            run = LoadRun(args, config, apis, watch)
            await run.seed(the_plan.seed_requests)
            steady = Resumable(the_plan.planner.steady())
            loop = run.loop(steady)
            before = await run.warm_up(loop)
            drain, drained = await run.drain(await run.load(steady, loop))
            print(f"settling {args.settle_seconds:g} s")
            await asyncio.sleep(args.settle_seconds)
            after, peak = watch.memory(), watch.memory("VmHWM")
            print("\n== figures")
            for line in england_day_lines(args):
                print(line)
            for phase in run.phases:
                print_phase(phase, tally, run.rounds)
            print_drain(drain, drained)
            print_memory(before, after, peak)
            print("== verdicts")
            print(answers_verdict(tally, run.phases))
            for line in verdicts(drained, before, after):
                print(line)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    # The simulator logs each refused request; the tally counts them by route instead.
    logging.getLogger("nearhome.simulator").setLevel(logging.ERROR)
    try:
        return asyncio.run(run(_arguments(argv)))
    except KeyboardInterrupt:
        print("interrupted: the services are stopped and the scratch database and topics dropped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
