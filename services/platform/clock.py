"""Time, injected: every service takes a `Clock` in its composition root so tests can set it."""

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The production clock: now, timezone-aware, in UTC."""
    return datetime.now(UTC)
