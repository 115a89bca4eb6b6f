"""The load benchmark's traffic: the simulator's plan and loop, paced at a multiple of a realistic
England day, and a tally of every HTTP request and answer by phase."""

import asyncio
import contextlib
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Self

import httpx

from bench.load.england import ENGLAND_REQUESTS_A_DAY, SECONDS_A_DAY
from tools.simulator.loop import ROUND_AT_LEAST, ROUND_EVERY, Loop
from tools.simulator.progress import Progress
from tools.simulator.requests import Api, PlannedRequest
from tools.simulator.sender import Sender, SenderOptions

# The plan's requests are paced by the rate alone: the simulated clock may run as fast as it likes.
UNPACED = 1e6
CONCURRENCY = 16
_ID = re.compile(r"/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_PHASE = "nearhome_bench_phase"


def plan_rate(multiple: float) -> float:
    """The plan's requests a second at `multiple` times a realistic England day."""
    return multiple * ENGLAND_REQUESTS_A_DAY / SECONDS_A_DAY


def round_every(multiple: float) -> float:
    """Seconds between the loop's rounds: every council reads its alerts each quarter hour of a
    day running `multiple` times faster than real time."""
    return max(ROUND_EVERY.total_seconds() / multiple, ROUND_AT_LEAST)


@dataclass
class Tally:
    """Every request the clients send and every answer, by the phase it was sent in."""

    phase: str = "setup"
    sent: Counter[str] = field(default_factory=Counter)
    statuses: defaultdict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    # phase -> (method, route, status) of the answers that were not 2xx
    refused: defaultdict[str, Counter[tuple[str, str, int]]] = field(
        default_factory=lambda: defaultdict(Counter)
    )

    async def on_request(self, request: httpx.Request) -> None:
        request.extensions[_PHASE] = self.phase
        self.sent[self.phase] += 1

    async def on_response(self, response: httpx.Response) -> None:
        phase = str(response.request.extensions.get(_PHASE, self.phase))
        self.statuses[phase][response.status_code] += 1
        if not response.is_success:
            route = _ID.sub("/{id}", response.request.url.path)
            self.refused[phase][response.request.method, route, response.status_code] += 1

    def hooks(self) -> dict[str, list[Callable[..., object]]]:
        return {"request": [self.on_request], "response": [self.on_response]}

    def answered(self, phase: str) -> int:
        return sum(self.statuses[phase].values())

    def count(self, phase: str, test: Callable[[int], bool]) -> int:
        return sum(n for status, n in self.statuses[phase].items() if test(status))

    def line(self, phase: str, *, finished: bool = True) -> str:
        """Requests sent, answers by class, and those with no answer (in flight unless
        `finished`)."""
        sent = self.sent[phase]
        ok = self.count(phase, lambda s: 200 <= s < 300)
        conflicts = self.count(phase, lambda s: s == 409)
        other = self.count(phase, lambda s: not 200 <= s < 300 and s != 409)
        waiting = sent - self.answered(phase)
        if not finished:  # still in flight
            return (
                f"sent {sent:,}, 2xx {ok:,}, errors {conflicts + other:,} (409 {conflicts:,}, "
                f"other non-2xx {other:,}), in flight {waiting:,}"
            )
        return (
            f"sent {sent:,}, 2xx {ok:,}, errors {conflicts + other + waiting:,} (409 "
            f"{conflicts:,}, other non-2xx {other:,}, no answer {waiting:,})"
        )


class Resumable(Iterator[PlannedRequest]):
    """The plan's requests, one after another over several senders: a sender that stops at its
    deadline has taken one request it did not send, and the next sender starts with it."""

    def __init__(self, requests: Iterator[PlannedRequest]) -> None:
        self._requests = requests
        self._again: PlannedRequest | None = None
        self.last: PlannedRequest | None = None

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> PlannedRequest:
        request, self._again = self._again or next(self._requests), None
        self.last = request
        return request

    def resume(self) -> None:
        """The next request is the last one taken again (its sender stopped before sending it)."""
        self._again = self.last

    def today(self, default: date) -> date:
        """The simulated day the plan has reached (placements start on it)."""
        return default if self.last is None else self.last.at.date()


async def send(  # noqa: PLR0913 - the parts of one phase of sending, named
    requests: Iterator[PlannedRequest],
    clients: Mapping[Api, httpx.AsyncClient],
    secret: str,
    ids: dict[str, str],
    progress: Progress,
    *,
    rate: float,
    seconds: float | None = None,
) -> None:
    """Send `requests` at `rate` a second for `seconds` (all of them when None), lanes in order,
    counting them in `progress`; `ids` maps the plan's handles to the services' ids across
    phases."""
    options = SenderOptions(
        speed=UNPACED, rate=rate, concurrency=CONCURRENCY, duration=seconds, retries=8
    )
    sender = Sender(dict(clients), secret, options, progress)
    sender.ids = ids
    await sender.run(requests)


def summary(progress: Progress) -> str:
    """The plan's requests: their answers and what succeeded, by kind."""
    answers = ", ".join(f"{name} {n:,}" for name, n in sorted(progress.answers.items()))
    kinds = ", ".join(f"{kind.value} {n:,}" for kind, n in progress.succeeded.most_common())
    line = f"{progress.finished:,} ({answers or 'none'})"
    if kinds:
        line += f"; succeeded: {kinds}"
    if progress.refused:
        refused = ", ".join(f"{kind.value} {n:,}" for kind, n in progress.refused.most_common())
        line += f"; refused: {refused}"
    return line


async def run_loop(
    loop: Loop, every: Callable[[], float], stop: asyncio.Event, rounds: list[tuple[float, float]]
) -> None:
    """The loop's rounds until `stop` is set (a round under way is finished), the next one
    `every()` seconds after the last began (read each second, so a faster phase takes effect at
    once); each round's start and duration go to `rounds`."""
    while not stop.is_set():
        began = time.monotonic()
        await loop.round()
        rounds.append((began, time.monotonic() - began))
        while not stop.is_set() and (left := every() - (time.monotonic() - began)) > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, 1.0)):
                    await stop.wait()
