"""The HTTP edge every service shares: probes, metrics, request ids and error answers."""

import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Annotated, Any
from uuid import uuid4

from fastapi import APIRouter, FastAPI, Header, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.platform import logs
from services.platform.background import BackgroundHealth, current_health
from services.platform.connections import PLAINTEXT, KafkaSecurity
from services.platform.errors import (
    ConflictError,
    ForbiddenError,
    IdempotencyKeyReusedError,
    NotFoundError,
    ServiceError,
    UnauthenticatedError,
)
from services.platform.idempotency import MAX_KEY_LENGTH, request_fingerprint
from services.platform.readiness import broker_answers, database_answers

REQUEST_ID_HEADER = "X-Request-ID"
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Send the same key again to get the first answer back; nothing is repeated",
        min_length=1,
        max_length=MAX_KEY_LENGTH,
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


class InvalidField(BaseModel):
    """One bad part of a request: where (`loc`, such as `["body", "beds"]`) and what is wrong.

    What was sent is not echoed back: it may be a child's details, and answers get logged."""

    loc: list[str | int]
    msg: str
    type: str


class InvalidRequest(BaseModel):
    """A 422: each bad field named; a reused or malformed `Idempotency-Key`: a message."""

    detail: list[InvalidField] | str = Field(
        description="Each bad field (a list), or, for an `Idempotency-Key` reused with another "
        "request or of a bad length, a message"
    )


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` saying that each of `codes` answers with a `Problem` (a 422 with an
    `InvalidRequest`)."""
    return {code: {"model": InvalidRequest if code == 422 else Problem} for code in codes}


REF = "#/components/schemas/{model}"
# FastAPI's own 422 models, which `answer_invalid_request` does not answer with.
_FASTAPI_422 = ("HTTPValidationError", "ValidationError")


def component(document: dict[str, Any], model: type[BaseModel]) -> dict[str, str]:
    """A `$ref` to `model` in `document`'s components, adding it (and the models it uses)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schema = model.model_json_schema(ref_template=REF)
    for name, definition in schema.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    schemas.setdefault(model.__name__, schema)
    return {"$ref": REF.format(model=model.__name__)}


def json_answer(
    document: dict[str, Any], model: type[BaseModel], description: str
) -> dict[str, Any]:
    """An OpenAPI response: `model` as JSON, described."""
    content = {"application/json": {"schema": component(document, model)}}
    return {"description": description, "content": content}


def operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every operation of `document`, with its path."""
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method in {"get", "put", "post", "delete", "patch", "options", "head", "trace"}:
                yield path, operation


def refine_openapi(app: FastAPI, refine: Callable[[dict[str, Any]], None]) -> None:
    """Let `refine` change `app`'s OpenAPI document once it is built (with every route)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            refine(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document_platform_answers(document: dict[str, Any]) -> None:
    for _, operation in operations(document):
        answers = operation.setdefault("responses", {})
        if "422" in answers:
            answers["422"] = json_answer(
                document, InvalidRequest, answers["422"].get("description") or "Bad input"
            )
        if "requestBody" in operation:
            answers.setdefault(
                "400",
                json_answer(document, Problem, "The body cannot be read at all (not UTF-8, say)"),
            )
    # FastAPI's own 422 models are left unused (only its 422s referred to them).
    if REF.format(model=_FASTAPI_422[0]) not in json.dumps(document.get("paths", {})):
        for name in _FASTAPI_422:
            document.get("components", {}).get("schemas", {}).pop(name, None)


def document_platform_answers(app: FastAPI) -> None:
    """Say in `app`'s OpenAPI document what the platform answers on every route: a 422 is an
    `InvalidRequest` (never FastAPI's own model), and a body that cannot be read is a 400."""
    refine_openapi(app, _document_platform_answers)


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


class MeasuredRequests:
    """ASGI middleware: each request's id (its `X-Request-ID`, else a new one) in
    `request.state.request_id`, the logs and the answer's headers; and the request metrics.

    Plain ASGI rather than Starlette's `BaseHTTPMiddleware`, which runs the rest of the app in a
    task of its own and passes the answer through a stream: on a busy ledger that cost more than
    answering a capacity read from its stored count."""

    def __init__(self, app: ASGIApp, *, metrics: HttpMetrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        request_id = Headers(scope=scope).get(REQUEST_ID_HEADER) or str(uuid4())
        scope.setdefault("state", {})["request_id"] = request_id
        logs.request_id.set(request_id)
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        await self._app(scope, receive, sending)
        route = scope.get("route")
        template = getattr(route, "path", "unmatched")
        self._metrics.requests.labels(scope["method"], template, status).inc()
        self._metrics.duration.labels(scope["method"], template).observe(
            time.perf_counter() - started
        )


def _error_answer(_: Request, error: Exception) -> Response:
    assert isinstance(error, ServiceError)
    headers = (
        {"WWW-Authenticate": error.challenge} if isinstance(error, UnauthenticatedError) else None
    )
    return JSONResponse({"detail": str(error)}, status_code=status_of(error), headers=headers)


async def answer_invalid_request(_: Request, error: Exception) -> JSONResponse:
    """A 422 naming each bad field (an `InvalidRequest`), without its `input` or `ctx`: what was
    sent may be a child's details."""
    assert isinstance(error, RequestValidationError)
    problems = [
        {"loc": problem["loc"], "msg": problem["msg"], "type": problem["type"]}
        for problem in error.errors()
    ]
    return JSONResponse({"detail": jsonable_encoder(problems)}, status_code=422)


def methods_of(app: FastAPI, path: str) -> list[str]:
    """The methods some route of `app` answers at `path`, sorted."""
    methods: set[str] = set()
    for route in app.router.routes:
        if isinstance(route, Route) and route.methods and route.path_regex.match(path):
            methods |= route.methods
    return sorted(methods)


async def _http_error_answer(request: Request, error: Exception) -> Response:
    """Starlette's and FastAPI's own HTTP errors, as FastAPI answers them; but a 405's `Allow`
    lists every method the path has, not only those of the first route at it."""
    assert isinstance(error, HTTPException)
    if error.status_code == 405:
        allow = ", ".join(methods_of(request.app, request.url.path))
        error = HTTPException(405, error.detail, headers={**(error.headers or {}), "Allow": allow})
    return await http_exception_handler(request, error)


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
    app: FastAPI,
    registry: CollectorRegistry,
    engine: AsyncEngine,
    bootstrap_servers: str,
    *,
    kafka_security: KafkaSecurity = PLAINTEXT,
) -> None:
    """`/health`, `/ready` and `/metrics`, plus request ids, request metrics and error answers.
    `/ready` asks the broker as the service's own clients connect (`kafka_security`)."""
    app.add_exception_handler(ServiceError, _error_answer)
    app.add_exception_handler(RequestValidationError, answer_invalid_request)
    app.add_exception_handler(HTTPException, _http_error_answer)
    document_platform_answers(app)

    app.add_middleware(MeasuredRequests, metrics=HttpMetrics(registry))

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
            "broker": await broker_answers(bootstrap_servers, security=kafka_security),
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
