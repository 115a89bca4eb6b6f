"""What the sender has done so far, and the status line that shows it."""

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from tools.simulator.requests import Kind, Phase, PlannedRequest

# The status line groups the kinds by the record they act on.
_RECORD = {
    Kind.REGISTER_SETTING: "settings",
    Kind.UPDATE_SETTING: "settings",
    Kind.CLOSE_SETTING: "settings",
    Kind.POST_VACANCY: "vacancies",
    Kind.CONFIRM_VACANCY: "vacancies",
    Kind.WITHDRAW_VACANCY: "vacancies",
    Kind.START_PLACEMENT: "placements",
    Kind.END_PLACEMENT: "placements",
    Kind.OPEN_REFERRAL: "referrals",
    Kind.UPDATE_REFERRAL: "referrals",
    Kind.CLOSE_REFERRAL: "referrals",
}


class Step(StrEnum):
    """What the loop (loop.py) counts, in the order it goes: the status line shows them so."""

    REQUESTED = "requests"
    OFFERED = "offers"
    DECLINED = "declines"
    ACCEPTED = "accepted"
    PLACED = "placed"


# The sender falls behind the simulated clock when --rate is lower than the plan needs.
_LAG_SHOWN = timedelta(hours=1)


def _hours(lag: timedelta) -> str:
    return f"{lag.total_seconds() / 3600:,.0f}h"


@dataclass
class Progress:
    """Counts of requests by kind and by answer; `seed_total` is the seed phase's size."""

    seed_total: int = 0
    succeeded: Counter[Kind] = field(default_factory=Counter)
    refused: Counter[Kind] = field(default_factory=Counter)  # answered with a 4xx or 5xx
    answers: Counter[str] = field(default_factory=Counter)
    seed_done: int = 0
    lag: timedelta = timedelta(0)  # how far the latest request went out after it was due
    _clock: tuple[float, datetime, float] | None = None  # real start, simulated start, speed
    started: float = field(default_factory=time.monotonic)
    # The loop from alert to placement (loop.py): what it did, by step, and its HTTP calls.
    loop: Counter[Step] = field(default_factory=Counter)
    loop_calls: int = 0
    _last_count: int = 0
    _last_at: float = field(default_factory=time.monotonic)

    @property
    def finished(self) -> int:
        """Requests answered, given up on or skipped."""
        return sum(self.answers.values())

    @property
    def errors(self) -> int:
        return self.finished - self.answers["ok"]

    def clock_started(self, origin: datetime, speed: float) -> None:
        """The simulated clock runs from `origin`, `speed` times real time, from now."""
        self._clock = (time.monotonic(), origin, speed)

    def simulated_now(self) -> datetime | None:
        if self._clock is None:
            return None
        began, origin, speed = self._clock
        return origin + timedelta(seconds=(time.monotonic() - began) * speed)

    def dispatched(self, request: PlannedRequest, lag: timedelta = timedelta(0)) -> None:
        """`lag` is simulated time: how late a steady-state request is (the rate holds it back)."""
        if request.phase is Phase.STEADY:
            self.lag = lag

    def answered(self, request: PlannedRequest, status: int) -> None:
        if request.phase is Phase.SEED:
            self.seed_done += 1
        if 200 <= status < 300:
            self.succeeded[request.kind] += 1
            self.answers["ok"] += 1
            return
        self.refused[request.kind] += 1
        if status == 409:
            self.answers["409"] += 1
        elif status < 500:
            self.answers["4xx"] += 1
        else:
            self.answers["5xx"] += 1

    def gave_up(self, request: PlannedRequest, outcome: str) -> None:
        """`outcome`: "unreachable" (no answer after retries) or "skipped" (needs a failed one)."""
        if request.phase is Phase.SEED:
            self.seed_done += 1
        self.answers[outcome] += 1

    def looped(self, step: Step) -> None:
        """One step of the loop done: a request sent, an offer, a decline, an acceptance …"""
        self.loop[step] += 1

    def loop_line(self) -> str:
        """The loop's counts, in the order the loop goes (empty before its first step)."""
        if not self.loop:
            return ""
        return "loop " + " ".join(f"{step} {self.loop[step]:,}" for step in Step)

    def rate(self) -> float:
        """Requests finished a second since the last call."""
        now = time.monotonic()
        elapsed = max(now - self._last_at, 1e-9)
        count = self.finished
        rate = (count - self._last_count) / elapsed
        self._last_count, self._last_at = count, now
        return rate

    def by_record(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for kind, count in self.succeeded.items():
            counts[_RECORD[kind]] += count
        return counts

    def line(self) -> str:
        """One status line: simulated time, seed progress, answers, rate, requests by record."""
        now = self.simulated_now()
        sim = "seeding" if now is None else now.strftime("%Y-%m-%d %H:%M")
        if now is not None and self.lag > _LAG_SHOWN:
            sim += f" (requests {_hours(self.lag)} behind)"
        answers = " ".join(
            f"{name} {self.answers[name]:,}"
            for name in ("ok", "409", "4xx", "5xx", "unreachable", "skipped")
            if self.answers[name] or name == "ok"
        )
        records = " ".join(f"{name} {count:,}" for name, count in sorted(self.by_record().items()))
        line = (
            f"sim {sim} | seed {self.seed_done:,}/{self.seed_total:,} | {answers} | "
            f"{self.rate():.1f}/s | {records}"
        )
        loop = self.loop_line()
        return f"{line} | {loop}" if loop else line

    def summary(self) -> str:
        kinds = ", ".join(f"{kind.value} {n:,}" for kind, n in sorted(self.succeeded.items()))
        answers = ", ".join(f"{name} {n:,}" for name, n in sorted(self.answers.items()))
        elapsed = time.monotonic() - self.started
        summary = f"{self.finished:,} requests in {elapsed:.1f} s ({answers}); succeeded: {kinds}"
        if self.refused:
            refused = ", ".join(f"{kind.value} {n:,}" for kind, n in sorted(self.refused.items()))
            summary += f"; refused: {refused}"
        if self.loop:
            summary += f"; {self.loop_line()} ({self.loop_calls:,} calls)"
        return summary
