"""A realistic England day: what the simulator's plan does in a simulated day, England-wide.

The figures come from the simulator itself (tools/simulator/plan.py, drawing on
tools/synthetic/figures.py and its BY_TYPE table): its plan for every English council at real size
(scale 1, seed 1), with the first week left out (the plan settles from its seed in that week:
two thousand requests a day at first), counted over the three weeks after it. Recompute them with

    .venv/bin/python -m bench.load.england [--scale 1] [--seed 1]

which takes a few minutes at scale 1, and update ENGLAND_DAY if they move.
"""

import argparse
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta

from contracts import geography
from tools.simulator.plan import SimulationConfig, plan
from tools.simulator.requests import Kind, Phase
from tools.synthetic.area import Area, council_codes

SECONDS_A_DAY = 86_400
SKIPPED_DAYS = 7
COUNTED_DAYS = 21

# The plan's requests a simulated day, England-wide at real size, seed 1, days 7-28 (measured with
# the command above). Each is one write through the provider or authority API, so one event on
# provider.events or referral.events.
# Measured: a seed of 108,465 requests, then 1,122 requests a simulated day (0.0130/s).
ENGLAND_DAY: dict[Kind, float] = {
    Kind.START_PLACEMENT: 243.8,
    Kind.END_PLACEMENT: 202.2,
    Kind.WITHDRAW_VACANCY: 136.5,
    Kind.CONFIRM_VACANCY: 124.6,
    Kind.OPEN_REFERRAL: 118.7,
    Kind.POST_VACANCY: 116.0,
    Kind.CLOSE_REFERRAL: 100.6,
    Kind.UPDATE_REFERRAL: 63.8,
    Kind.CLOSE_SETTING: 6.1,
    Kind.REGISTER_SETTING: 5.5,
    Kind.UPDATE_SETTING: 4.7,
}
ENGLAND_REQUESTS_A_DAY = sum(ENGLAND_DAY.values())


def england() -> Area:
    """Every English council the synthetic world knows, as one area."""
    councils = tuple(geography.council(code) for code in council_codes())
    return Area("england", "England", councils)


def requests_a_day(
    scale: float, seed: int, *, skipped: int = SKIPPED_DAYS, counted: int = COUNTED_DAYS
) -> tuple[int, Counter[Kind]]:
    """The seed's size, and the plan's day-to-day requests a simulated day by kind, averaged over
    `counted` days after the first `skipped`."""
    the_plan = plan(SimulationConfig(area=england(), seed=seed, scale=scale))
    start = the_plan.config.start
    counts: Counter[Kind] = Counter()
    for request in the_plan:
        if request.phase is Phase.SEED:
            continue
        day = (request.at - start) / timedelta(days=1)
        if day >= skipped + counted:
            break
        if day >= skipped:
            counts[request.kind] += 1
    return len(the_plan.seed_requests), Counter(
        {kind: count / counted for kind, count in counts.items()}
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="size of England: 1 is real")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    seed_size, per_day = requests_a_day(args.scale, args.seed)
    total = sum(per_day.values())
    print(
        f"England at scale {args.scale:g}, seed {args.seed}: a seed of {seed_size:,} requests, "
        f"then {total:,.0f} requests a simulated day (days {SKIPPED_DAYS}-"
        f"{SKIPPED_DAYS + COUNTED_DAYS}), {total / SECONDS_A_DAY:.4f}/s "
        f"(planned in {time.perf_counter() - started:.0f} s)"
    )
    for kind, count in per_day.most_common():
        print(f"    Kind.{kind.name}: {count:.1f},")
    return 0


if __name__ == "__main__":
    sys.exit(main())
