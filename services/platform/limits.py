"""Input limits every service applies before a request reaches its routes (ASGI middleware).

* A body over `max_body_bytes` is refused with 413 before it is read whole: a `Content-Length`
  over the limit at once, a chunked body as soon as the bytes received pass it (the body is
  buffered up to the limit, then handed to the app).
* A bearer token whose subject sends more than `rate_limit_per_minute` requests gets 429 with
  `Retry-After`. The token bucket is in memory, per process: with several processes behind a
  load balancer each allows the rate. Only tokens that verify count (a forged one cannot spend
  another organisation's allowance); `/health`, `/ready` and `/metrics` are exempt.
"""

import json
import math
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.platform.auth import (
    IdentityProviderUnavailableError,
    TokenVerifier,
    remember_checked,
    verify_token,
)
from services.platform.errors import UnauthenticatedError
from services.platform.http import Problem, json_answer, operations, refine_openapi
from services.platform.settings import ServiceSettings

EXEMPT_PATHS = frozenset({"/health", "/ready", "/metrics"})
MEBIBYTE = 1024 * 1024
MAX_BUCKETS = 10_000


class InputLimitSettings(BaseSettings):
    """The input limits (every service's settings extend this)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    max_body_bytes: int = Field(
        default=MEBIBYTE,
        ge=1,
        validation_alias=AliasChoices("NEARHOME_MAX_BODY_BYTES", "max_body_bytes"),
    )
    # Requests a token's subject may send per minute (a burst of as many); 0 turns it off.
    rate_limit_per_minute: int = Field(
        default=600,
        ge=0,
        validation_alias=AliasChoices("NEARHOME_RATE_LIMIT_PER_MINUTE", "rate_limit_per_minute"),
    )


class TokenBuckets:
    """A token bucket per subject: `per_minute` capacity, refilled at `per_minute` / 60 a second."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._capacity = float(per_minute)
        self._per_second = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # subject -> (tokens, at)

    def take(self, subject: str) -> float:
        """0 if `subject` may send a request now (one is taken), else the seconds to wait."""
        now = self._clock()
        tokens, at = self._buckets.get(subject, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - at) * self._per_second)
        if tokens >= 1.0:
            self._buckets[subject] = (tokens - 1.0, now)
            return 0.0
        self._buckets[subject] = (tokens, now)
        if len(self._buckets) > MAX_BUCKETS:  # forget the buckets that are full again
            self._forget_full(now)
        return (1.0 - tokens) / self._per_second

    def _forget_full(self, now: float) -> None:
        self._buckets = {
            subject: (tokens, at)
            for subject, (tokens, at) in self._buckets.items()
            if tokens + (now - at) * self._per_second < self._capacity
        }


class _BodyTooLargeError(Exception):
    pass


async def _problem(send: Send, status: int, detail: str, headers: dict[str, str]) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    # The rest of a refused body is not read: the connection is closed after the answer.
    raw.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class InputLimits:
    """The ASGI middleware (see the module's docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        rate_limit_per_minute: int,
        verifier: TokenVerifier,
    ) -> None:
        self._app = app
        self._max_body_bytes = max_body_bytes
        self._buckets = TokenBuckets(rate_limit_per_minute) if rate_limit_per_minute else None
        self._verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self._app(scope, receive, send)
            return
        headers = {name.decode("latin-1"): value for name, value in scope["headers"]}
        wait = await self._wait_for(scope, headers.get("authorization"))
        if wait:
            retry_after = str(max(1, math.ceil(wait)))
            detail = "too many requests for this token: try again later"
            await _problem(send, 429, detail, {"Retry-After": retry_after})
            return
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self._max_body_bytes:
            await self._refuse_body(send)
            return
        try:
            body = await self._read_body(receive)
        except _BodyTooLargeError:
            await self._refuse_body(send)
            return
        await self._app(scope, _replay(body, receive), send)

    async def _wait_for(self, scope: Scope, authorization: bytes | None) -> float:
        if self._buckets is None or authorization is None:
            return 0.0
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer":
            return 0.0
        token = token.strip()
        try:
            principal = await verify_token(self._verifier, token)
        except (UnauthenticatedError, IdentityProviderUnavailableError):
            return 0.0  # the app answers 401 (or 503); it has no subject to count
        remember_checked(scope, token, principal)
        return self._buckets.take(principal.organisation_id)

    async def _read_body(self, receive: Receive) -> Message:
        """The request's body as one message, refused as soon as it passes the limit."""
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return message  # the client went away: the app sees it as it would have
            chunk: bytes = message.get("body", b"")
            received += len(chunk)
            if received > self._max_body_bytes:
                raise _BodyTooLargeError
            chunks.append(chunk)
            if not message.get("more_body", False):
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

    async def _refuse_body(self, send: Send) -> None:
        detail = f"the request body is larger than {self._max_body_bytes} bytes"
        await _problem(send, 413, detail, {})


def _replay(first: Message, receive: Receive) -> Receive:
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return first

    return replay


def _document_limits(document: dict[str, Any], max_body_bytes: int, rate_limited: bool) -> None:
    """Every operation but the probes may answer 413; those that take a token, 429 too (unless
    the rate limit is off)."""
    for path, operation in operations(document):
        if path in EXEMPT_PATHS:
            continue
        answers = operation.setdefault("responses", {})
        answers["413"] = json_answer(
            document, Problem, f"The request body is larger than {max_body_bytes} bytes"
        )
        if rate_limited and operation.get("security"):
            answers["429"] = {
                **json_answer(
                    document, Problem, "Too many requests for this token: try again later"
                ),
                "headers": {
                    "Retry-After": {
                        "description": "Seconds to wait before the token is let in again",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1},
                    }
                },
            }


def add_input_limits(app: FastAPI, settings: ServiceSettings) -> None:
    """Refuse large bodies (413) and tokens over their rate (429) before any other middleware,
    and say so in the app's OpenAPI document.

    `settings` is the service's settings, which extend `InputLimitSettings` too; the app's
    `token_verifier` (the composition's `add_token_check`) must be set already.
    """
    assert isinstance(settings, InputLimitSettings)
    max_body_bytes, rate_limited = settings.max_body_bytes, settings.rate_limit_per_minute > 0
    refine_openapi(app, lambda document: _document_limits(document, max_body_bytes, rate_limited))
    app.add_middleware(
        InputLimits,
        max_body_bytes=settings.max_body_bytes,
        rate_limit_per_minute=settings.rate_limit_per_minute,
        verifier=app.state.token_verifier,
    )
