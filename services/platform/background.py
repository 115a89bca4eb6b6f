"""Background work inside a service's lifespan: relays, consumers and schedulers.

Each piece of work is meant to run for the life of the service. One that dies (raises) is
recorded in the app's `BackgroundHealth`, so that `/ready` answers 503, and the server is asked to
stop: under `nearhome serve` (`serve` below) the process then ends with status 1, and whatever
runs it (the supervisor, Kubernetes) restarts it.
"""

import asyncio
import contextlib
import contextvars
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import uvicorn

from services.platform import logs

logger = logging.getLogger(__name__)

_CANCEL_AGAIN_AFTER_S = 1.0


class BackgroundHealth:
    """The background work of one app: which piece died, if any."""

    def __init__(self) -> None:
        self.failure: str | None = None

    def record(self, name: str, error: BaseException) -> None:
        if self.failure is None:
            self.failure = f"{name}: {logs.describe(error)}"  # never a validation input


# The health of the app whose lifespan is running (set around it by the platform's HTTP edge).
current_health: contextvars.ContextVar[BackgroundHealth | None] = contextvars.ContextVar(
    "current_health", default=None
)


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
    """Run each coroutine as a task for the life of the block; cancel and await them at its end.

    A task that raises is logged, recorded in the running app's `BackgroundHealth` (so `/ready`
    answers 503) and the server serving it is asked to stop."""
    health = current_health.get()
    tasks = [asyncio.create_task(coroutine) for coroutine in work]
    for task in tasks:
        task.add_done_callback(lambda done: _on_done(done, health))
    try:
        yield
    finally:
        await _cancel_all(tasks)


async def _cancel_all(tasks: "list[asyncio.Task[None]]") -> None:
    """Cancel `tasks` and wait until each has ended, cancelling again any that carries on (a
    cancellation can be lost in a race, as Python 3.11's `asyncio.wait_for` may do; a task that
    swallowed it would otherwise outlive the service and hold its database connections)."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=_CANCEL_AGAIN_AFTER_S)
        for task in pending:
            logger.warning("background task %s carried on after cancel; cancelling again", task)
    for task in tasks:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            task.result()


async def wait_for_event(event: asyncio.Event, timeout_s: float) -> None:
    """Wait until `event` is set or `timeout_s` has passed, whichever is first. Unlike Python
    3.11's `asyncio.wait_for`, never swallows a cancellation that races the timeout."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await event.wait()


def _on_done(task: "asyncio.Task[None]", health: BackgroundHealth | None) -> None:
    if task.cancelled() or (error := task.exception()) is None:
        return  # cancelled at the end of the lifespan, or work that was done (a start, say)
    name = getattr(task.get_coro(), "__qualname__", task.get_name())
    logger.critical("background task %s died; the service stops", name, exc_info=error)
    if health is not None:
        health.record(name, error)
    _stop_serving()


def _stop_serving() -> None:
    """Ask the uvicorn server that handles this process's SIGTERM (as under `serve`) to shut
    down: it runs the lifespan's end and returns. A lifespan run otherwise (in a test) is left to
    its caller."""
    server = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    if isinstance(server, uvicorn.Server):
        server.should_exit = True


def serve(app: Any, host: str, port: int) -> int:  # noqa: ANN401 - any ASGI app
    """Serve `app` with uvicorn until it is stopped (a signal, or its background work dying).

    Returns the process's exit status: 1 if background work died (so that whatever runs the
    process restarts it), else 0. Logs as `NEARHOME_LOG_FORMAT` and `NEARHOME_LOG_LEVEL` say
    (`services.platform.logs`), with one access line per request answered."""
    log_config = logs.configure(_service_name(app))
    uvicorn.run(
        logs.with_access_log(app),
        host=host,
        port=port,
        loop="uvloop",  # named, not "auto": a missing uvloop fails here rather than runs slower
        http="httptools",
        log_config=log_config,
        access_log=False,
    )
    health = getattr(app.state, "background", None)
    if isinstance(health, BackgroundHealth) and health.failure is not None:
        logger.critical("stopped because background work died: %s", health.failure)
        return 1
    return 0


def _service_name(app: Any) -> str:  # noqa: ANN401 - any ASGI app
    """`authority` for "NearHome authority service": the name its log lines carry."""
    title = str(getattr(app, "title", "") or "service")
    return title.removeprefix("NearHome ").removesuffix(" service")
