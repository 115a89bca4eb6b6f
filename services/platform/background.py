"""Background work inside a service's lifespan: relays, consumers and schedulers."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

logger = logging.getLogger(__name__)


async def every(seconds: float, job: Callable[[], Awaitable[object]], name: str) -> None:
    """Run `job` now and every `seconds` until cancelled; a failed run is logged, not fatal."""
    while True:
        try:
            await job()
        except Exception:
            logger.exception("scheduled job %s failed; it runs again in %ss", name, seconds)
        await asyncio.sleep(seconds)


@contextlib.asynccontextmanager
async def running(*work: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run each coroutine as a task for the life of the block; cancel and await them at its end."""
    tasks = [asyncio.create_task(coroutine) for coroutine in work]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
