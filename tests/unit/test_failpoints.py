"""Failpoints: what `NEARHOME_FAILPOINTS` may say, on which hit a point fires, and that only a
development environment is ever armed."""

import pytest

from services.platform.failpoints import (
    FAILPOINTS_ENV,
    FailpointError,
    Trigger,
    from_environment,
    parse_failpoints,
)


def test_a_spec_arms_each_named_point_for_its_hit() -> None:
    assert parse_failpoints(" relay.after_publish=kill:3 , consumer.after_commit = kill : 1,") == {
        "relay.after_publish": Trigger("kill", 3),
        "consumer.after_commit": Trigger("kill", 1),
    }


def test_an_empty_spec_arms_nothing() -> None:
    assert parse_failpoints("") == {}
    assert parse_failpoints(" , ") == {}


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("relay.before_publish=kill:1", "the point must be one of"),
        ("relay.after_publish", "the point must be one of"),
        ("relay.after_publish=explode:1", "the action must be one of"),
        ("relay.after_publish=kill", "say on which hit"),
        ("relay.after_publish=kill:0", "say on which hit"),
        ("relay.after_publish=kill:-1", "say on which hit"),
        ("relay.after_publish=kill:two", "say on which hit"),
        ("consumer.before_commit=kill:1,consumer.before_commit=kill:2", "armed twice"),
    ],
)
def test_a_spec_that_cannot_be_meant_is_refused_saying_why(spec: str, complaint: str) -> None:
    with pytest.raises(FailpointError, match=complaint):
        parse_failpoints(spec)


def test_a_point_fires_on_its_hit_only_and_other_points_never(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEARHOME_ENV", "development")
    armed = from_environment({FAILPOINTS_ENV: "consumer.before_commit=kill:3"})

    fired = [armed.fires("consumer.before_commit") for _ in range(5)]

    assert fired == [None, None, Trigger("kill", 3), None, None]
    assert armed.fires("consumer.after_commit") is None
    assert armed.hits["consumer.after_commit"] == 0, "an unarmed point is not even counted"


@pytest.mark.parametrize("environment", [None, "production"])
def test_outside_development_an_armed_variable_is_ignored(
    monkeypatch: pytest.MonkeyPatch, environment: str | None
) -> None:
    if environment is None:
        monkeypatch.delenv("NEARHOME_ENV", raising=False)
    else:
        monkeypatch.setenv("NEARHOME_ENV", environment)
    armed = from_environment({FAILPOINTS_ENV: "relay.after_publish=kill:1"})
    # Not even read: a spec that development would refuse cannot stop a production process.
    garbled = from_environment({FAILPOINTS_ENV: "relay.after_publish=explode"})

    assert armed.triggers == {}
    assert armed.fires("relay.after_publish") is None
    assert garbled.triggers == {}
