"""When to restart a child that exited, and when to give up on it."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """Exponential backoff between restarts; the `max_quick_failures`-th quick failure in a row
    gives up.

    A run shorter than `quick_run` seconds is a quick failure; a longer one proves the child can
    run, so the count and the delay start again from the beginning.
    """

    first_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 15.0
    quick_run: float = 30.0
    max_quick_failures: int = 5

    def __post_init__(self) -> None:
        if self.first_delay < 0 or self.factor < 1 or self.max_delay < self.first_delay:
            raise ValueError("need 0 <= first_delay <= max_delay and factor >= 1")
        if self.max_quick_failures < 1:
            raise ValueError("max_quick_failures must be at least 1")


class Backoff:
    """One child's restart history under a policy: pure, the run times are given to it."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self.quick_failures = 0

    def after_exit(self, ran_for: float) -> float | None:
        """Seconds to wait before restarting a child that ran for `ran_for` s; None to give up."""
        if ran_for >= self.policy.quick_run:
            self.quick_failures = 0
            return self.policy.first_delay
        self.quick_failures += 1
        if self.quick_failures >= self.policy.max_quick_failures:
            return None
        delay = self.policy.first_delay * self.policy.factor ** (self.quick_failures - 1)
        return min(delay, self.policy.max_delay)
