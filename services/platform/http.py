"""The HTTP edge every service shares: probes, metrics, request ids and error answers."""

import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Annotated, Any
from uuid import uuid4

from fastapi import APIRouter, FastAPI, Header, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from services.platform import logs
from services.platform.background import BackgroundHealth, current_health
from services.platform.errors import (
    ConflictError,
    ForbiddenError,
    IdempotencyKeyReusedError,
    NotFoundError,
    ServiceError,
    UnauthenticatedError,
)
from services.platform.idempotency import request_fingerprint
from services.platform.readiness import broker_answers, database_answers

REQUEST_ID_HEADER = "X-Request-ID"
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Send the same key again to get the first answer back; nothing is repeated",
    ),
]


# How each named error is answered; a `ServiceError` of no kind listed here is a 500.
STATUS_OF_ERROR: dict[type[ServiceError], int] = {
    ConflictError: 409,
    NotFoundError: 404,
    ForbiddenError: 403,
    UnauthenticatedError: 401,
    IdempotencyKeyReusedError: 422,
}


def status_of(error: ServiceError) -> int:
    """The HTTP status answering `error`, from the most specific kind it is an instance of."""
    for kind in type(error).__mro__:
        if kind in STATUS_OF_ERROR:
            return STATUS_OF_ERROR[kind]
    return 500


class Problem(BaseModel):
    """A 4xx answer: what is wrong, in words."""

    detail: str


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` saying that each of `codes` answers with a `Problem`."""
    return {code: {"model": Problem} for code in codes}


def allow_browser_origins(app: FastAPI, origins: Sequence[str]) -> None:
    """Let pages from `origins` read the GET resources with a bearer token (CORS); only that."""
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(origins),
            allow_methods=["GET"],
            allow_headers=["Authorization", "Accept", "Last-Event-ID"],
            max_age=600,
        )


async def fingerprint_of(request: Request) -> str:
    """The request's method, path and body, hashed: a key sent again with another is refused."""
    raw = await request.body()
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = raw.hex()  # not JSON: the request is refused anyway, so any stable value will do
    return request_fingerprint(request.method, request.url.path, body)


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "nearhome_http_requests",
            "HTTP requests answered, by route template and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "nearhome_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            registry=registry,
        )


def _error_answer(_: Request, error: Exception) -> Response:
    assert isinstance(error, ServiceError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, UnauthenticatedError) else None
    return JSONResponse({"detail": str(error)}, status_code=status_of(error), headers=headers)


def watch_background(app: FastAPI) -> BackgroundHealth:
    """The `BackgroundHealth` of `app`, made current around its lifespan so that the work its
    lifespan runs (`running`) reports to it."""
    health = BackgroundHealth()
    app.state.background = health
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        token = current_health.set(health)
        try:
            async with inner(app) as state:
                yield state
        finally:
            with contextlib.suppress(ValueError):
                current_health.reset(token)

    app.router.lifespan_context = lifespan
    return health


def add_operational_routes(
    app: FastAPI, registry: CollectorRegistry, engine: AsyncEngine, bootstrap_servers: str
) -> None:
    """`/health`, `/ready` and `/metrics`, plus request ids, request metrics and error answers."""
    metrics = HttpMetrics(registry)
    app.add_exception_handler(ServiceError, _error_answer)

    @app.middleware("http")
    async def measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request.state.request_id = request.headers.get(REQUEST_ID_HEADER) or str(uuid4())
        logs.request_id.set(request.state.request_id)
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        metrics.requests.labels(request.method, template, response.status_code).inc()
        metrics.duration.labels(request.method, template).observe(time.perf_counter() - started)
        response.headers[REQUEST_ID_HEADER] = request.state.request_id
        return response

    background = watch_background(app)
    probes = APIRouter(tags=["operations"])

    @probes.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @probes.get(
        "/ready",
        responses={503: {"description": "broker or database unreachable, or background work died"}},
    )
    async def ready() -> Response:
        """Readiness: the broker answers a metadata request, the database a query, and none of
        the service's background work (consumers, outbox relay, schedulers, delivery) has died."""
        checks: dict[str, Any] = {
            "database": await database_answers(engine),
            "broker": await broker_answers(bootstrap_servers),
        }
        if background.failure is not None:
            checks["background_failure"] = background.failure  # what died, and why
        status = 200 if all(value is True for value in checks.values()) else 503
        body = {"ready": status == 200, **checks}
        return JSONResponse(body, status_code=status)

    @probes.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(probes)
