"""Sends a plan's requests to the services, as the providers and councils they come from.

Seed requests go out as fast as `rate` allows; steady-state requests when the simulated clock,
running `speed` times real time, reaches them (and no faster than `rate`). Requests of one lane
(one setting with its vacancies and placements, or one referral) go one after another; lanes run
concurrently up to `concurrency`. A connection error or 5xx is retried with the same
Idempotency-Key, so a retried write happens once. Ids the services assign are mapped to the plan's
handles; a request that needs a record whose creation failed is skipped.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from services.platform.auth import Role, issue_token, principal_for
from tools.simulator.progress import Progress
from tools.simulator.requests import Api, Phase, PlannedRequest, UnresolvedHandleError

log = logging.getLogger("nearhome.simulator")

TOKEN_LIFETIME = timedelta(hours=12)
# Tokens are renewed well before they expire, so a long run never sends an expired one.
TOKEN_RENEW_AFTER = 6 * 3600.0
# A window of dispatched requests per sending slot: lanes waiting on their predecessors hold a
# place in the window, not a connection.
WINDOW_PER_SLOT = 8


@dataclass(frozen=True, slots=True)
class SenderOptions:
    speed: float = 60.0
    rate: float = 120.0
    concurrency: int = 16
    retries: int = 8
    duration: float | None = None  # real seconds; None runs until the plan ends or is cancelled
    max_requests: int | None = None


class Tokens:
    """A bearer token per organisation, issued as that provider or council would hold one."""

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._issued: dict[tuple[Api, str], tuple[float, str]] = {}

    def headers(self, api: Api, org: str) -> dict[str, str]:
        now = time.monotonic()
        issued = self._issued.get((api, org))
        if issued is None or now - issued[0] > TOKEN_RENEW_AFTER:
            principal = (
                principal_for(Role.PROVIDER, provider_id=org)
                if api is Api.PROVIDER
                else principal_for(Role.AUTHORITY, authority_code=org)
            )
            issued = (now, issue_token(principal, self._secret, ttl=TOKEN_LIFETIME))
            self._issued[api, org] = issued
        return {"Authorization": f"Bearer {issued[1]}"}


class RateLimiter:
    """At most `rate` starts a second, evenly spaced."""

    def __init__(self, rate: float, sleep: Callable[[float], Awaitable[None]]) -> None:
        self._interval = 1 / rate
        self._next = 0.0
        self._sleep = sleep

    async def wait(self, now: float) -> None:
        self._next = max(self._next, now)
        delay = self._next - now
        self._next += self._interval
        if delay > 0:
            await self._sleep(delay)


class Sender:
    """Sends planned requests over two HTTP clients (provider and authority service)."""

    def __init__(
        self,
        clients: dict[Api, httpx.AsyncClient],
        secret: str,
        options: SenderOptions,
        progress: Progress | None = None,
    ) -> None:
        self._clients = clients
        self.secret = secret
        self._tokens = Tokens(secret)
        self.options = options
        self.progress = progress or Progress()
        self.ids: dict[str, str] = {}
        self._lanes: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(options.concurrency)
        self._window = asyncio.Semaphore(options.concurrency * WINDOW_PER_SLOT)
        self._tasks: set[asyncio.Task[None]] = set()
        # Shared with the loop (loop.py), so that its requests count against the same rate.
        self.limiter = RateLimiter(options.rate, asyncio.sleep)
        # Set once the seed is sent and the simulated clock starts.
        self.seeded = asyncio.Event()

    async def run(self, requests: Iterable[PlannedRequest]) -> Progress:
        """Send until the plan ends, `duration` passes or `max_requests` are sent."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        deadline = None if self.options.duration is None else began + self.options.duration
        limiter = self.limiter
        origin: datetime | None = None  # the simulated time of the seed
        anchor: tuple[float, datetime] | None = None
        try:
            for count, request in enumerate(requests):
                if self.options.max_requests is not None and count >= self.options.max_requests:
                    break
                origin = origin or request.at
                lag = 0.0
                if request.phase is Phase.STEADY:
                    if anchor is None:  # the simulated clock starts once the seed is sent
                        await self._drain()
                        anchor = (loop.time(), origin)
                        self.progress.clock_started(origin, self.options.speed)
                        self.seeded.set()
                    release = anchor[0] + (request.at - anchor[1]).total_seconds() / (
                        self.options.speed
                    )
                    if deadline is not None and release >= deadline:
                        break
                    await asyncio.sleep(max(release - loop.time(), 0))
                    lag = loop.time() - release
                if deadline is not None and loop.time() >= deadline:
                    break
                await limiter.wait(loop.time())
                await self._window.acquire()
                self._dispatch(request, timedelta(seconds=lag * self.options.speed))
            await self._drain()
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        return self.progress

    async def _drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _dispatch(self, request: PlannedRequest, lag: timedelta) -> None:
        self.progress.dispatched(request, lag)
        previous = self._lanes.get(request.lane)
        task = asyncio.create_task(self._after(previous, request))
        self._lanes[request.lane] = task
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._finished(request.lane, done))

    def _finished(self, lane: str, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._window.release()
        if self._lanes.get(lane) is task:
            del self._lanes[lane]

    async def _after(self, previous: asyncio.Task[None] | None, request: PlannedRequest) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        async with self._slots:
            await self._send(request)

    async def _send(self, request: PlannedRequest) -> None:
        try:
            path, body = request.resolved(self.ids)
        except UnresolvedHandleError as error:
            log.debug("step %d skipped: %s was not created", request.step, error)
            self.progress.gave_up(request, "skipped")
            return
        response = await self._send_with_retries(request, path, body)
        if response is None:
            self.progress.gave_up(request, "unreachable")
            return
        self.progress.answered(request, response.status_code)
        if response.is_success and request.creates and request.id_field:
            self.ids[request.creates] = str(response.json()[request.id_field])
        elif not response.is_success:
            log.warning(
                "step %d %s %s answered %d: %s",
                request.step,
                request.method,
                path,
                response.status_code,
                _detail(response),
            )

    async def _send_with_retries(
        self, request: PlannedRequest, path: str, body: dict[str, Any]
    ) -> httpx.Response | None:
        """The answer, retried on connection errors and 5xx with the same Idempotency-Key."""
        headers = {
            **self._tokens.headers(request.api, request.org),
            "Idempotency-Key": request.idempotency_key,
        }
        client = self._clients[request.api]
        response: httpx.Response | None = None
        for attempt in range(self.options.retries + 1):
            if attempt:
                await asyncio.sleep(min(0.2 * 2**attempt, 10.0))
            try:
                response = await client.request(request.method, path, json=body, headers=headers)
            except httpx.TransportError as error:
                log.info("step %d: %s (attempt %d)", request.step, error, attempt + 1)
                continue
            if response.status_code < 500:
                return response
            log.info("step %d: %d (attempt %d)", request.step, response.status_code, attempt + 1)
        return response


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail"))
    except ValueError:
        return response.text[:200]
