"""When the supervisor restarts a child that exited, and when it gives up."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tools.supervisor.backoff import Backoff, RestartPolicy
from tools.supervisor.supervisor import describe_exit


def test_quick_failures_back_off_exponentially_then_give_up() -> None:
    backoff = Backoff(RestartPolicy(first_delay=0.5, factor=2, max_quick_failures=5))

    delays = [backoff.after_exit(ran_for=1.0) for _ in range(5)]

    assert delays == [0.5, 1.0, 2.0, 4.0, None]


def test_the_delay_never_exceeds_the_maximum() -> None:
    policy = RestartPolicy(first_delay=1, factor=10, max_delay=15, max_quick_failures=10)
    backoff = Backoff(policy)

    assert [backoff.after_exit(0.1) for _ in range(4)] == [1, 10, 15, 15]


def test_a_long_run_proves_the_child_can_run_and_starts_the_count_again() -> None:
    backoff = Backoff(RestartPolicy(quick_run=30, max_quick_failures=3))
    backoff.after_exit(1.0)
    backoff.after_exit(1.0)

    assert backoff.after_exit(ran_for=3600) == 0.5
    assert backoff.after_exit(1.0) == 0.5
    assert backoff.after_exit(1.0) == 1.0
    assert backoff.after_exit(1.0) is None


@pytest.mark.parametrize(
    "policy",
    [
        {"first_delay": -1},
        {"factor": 0.5},
        {"first_delay": 10, "max_delay": 5},
        {"max_quick_failures": 0},
    ],
)
def test_a_nonsensical_policy_is_refused(policy: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"must|need"):
        RestartPolicy(**policy)  # type: ignore[arg-type]


@given(
    runs=st.lists(st.floats(min_value=0, max_value=100), min_size=1, max_size=30),
    limit=st.integers(min_value=1, max_value=6),
)
def test_gives_up_exactly_at_the_limit_of_quick_failures_in_a_row(
    runs: list[float], limit: int
) -> None:
    policy = RestartPolicy(quick_run=30, max_quick_failures=limit)
    backoff = Backoff(policy)
    in_a_row = 0
    for ran_for in runs:
        in_a_row = 0 if ran_for >= policy.quick_run else in_a_row + 1
        delay = backoff.after_exit(ran_for)
        if in_a_row >= limit:
            assert delay is None
            return
        assert delay is not None
        assert policy.first_delay <= delay <= policy.max_delay


def test_an_exit_is_described_by_its_code_or_its_signal() -> None:
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(0) == "exit code 0"
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(-15) == "killed by SIGTERM"
