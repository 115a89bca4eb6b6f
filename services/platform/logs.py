"""Log lines: one JSON object a line, saying which service, request and event each is about.

The HTTP edge sets `request_id` for the life of each request; consumers set `event_id` while they
apply an event. `ContextFilter` adds both (when set) and the service's name to every record, and
`JsonFormatter` writes each record as one line:

    {"timestamp": "2026-11-27T20:41:07.120731+00:00", "level": "INFO", "logger": "nearhome.access",
     "message": "POST /v1/referrals 201", "service": "authority", "request_id": "…", "method":
     "POST", "path": "/v1/referrals", "status": 201, "duration_ms": 41.3}

`NEARHOME_LOG_FORMAT=text` writes the same records as plain lines for a person at a terminal;
`NEARHOME_LOG_LEVEL` (default INFO) sets the level. No line carries a child's details: messages
name referrals by id only, the access line has the path without its query string, exception text
from pydantic's validation errors and asyncpg's refused query arguments (which quote the values)
is written without the values (`describe`, and the formatters' tracebacks), and libraries that
would write rows or messages whole (SQLAlchemy, aiokafka) are kept above those levels.
`tests/integration/test_log_privacy.py` holds the services to this.
"""

import contextvars
import logging
import logging.config
import re
import time
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from types import TracebackType
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
event_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("event_id", default=None)

ACCESS_LOGGER = "nearhome.access"
_REQUEST_ID_HEADER = b"x-request-id"

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


class LogSettings(BaseSettings):
    """How a served process writes its log lines (`NEARHOME_LOG_FORMAT`, `NEARHOME_LOG_LEVEL`)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    format: Literal["json", "text"] = Field(default="json", validation_alias="NEARHOME_LOG_FORMAT")
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", validation_alias="NEARHOME_LOG_LEVEL"
    )

    @field_validator("format", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("level", mode="before")
    @classmethod
    def _upper_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value


def describe(error: BaseException) -> str:
    """`Type: message` for a log line or a dead letter's reason, without the values a pydantic
    validation error would otherwise quote (they may be a child's details)."""
    return f"{type(error).__name__}: {_safe_str(error)}"


# asyncpg refuses a query argument quoting it (`invalid input for query argument $2: 'L20 3AB'
# (…)`), and the error it raises that from may quote it too.
_QUERY_ARGUMENT = re.compile(r"(invalid input for query argument \$\d+[^:]*):")
_NOT_SHOWN = "its message is not shown: it may quote a query argument's value"


def _safe_str(error: BaseException) -> str:
    if isinstance(error, ValidationError):
        problems = [
            f"{'.'.join(str(part) for part in e['loc']) or '(value)'}: {e['msg']} [{e['type']}]"
            for e in error.errors(include_url=False, include_context=False, include_input=False)
        ]
        return f"{error.error_count()} invalid in {error.title}: " + "; ".join(problems)
    try:
        text = str(error)
    except Exception:  # noqa: BLE001 - an exception whose str() fails is still described
        return "<its str() failed>"
    if match := _QUERY_ARGUMENT.match(text):
        return f"{match[1]}: its value is not shown"
    return text


def format_exception(ei: ExcInfo) -> str:
    """A traceback as `logging` writes it, with every pydantic validation error in the chain
    written without its input values, and asyncpg's refusal of a query argument (and the error it
    was raised from) without the argument."""
    if ei[1] is None:
        return "NoneType: None"
    described = traceback.TracebackException(type(ei[1]), ei[1], ei[2])
    seen: set[int] = set()
    pending = [(described, ei[1], False)]
    while pending:
        part, error, hidden = pending.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        safe = _NOT_SHOWN if hidden else _safe_str(error)
        # What `format` writes as the exception's message (CPython's TracebackException).
        part._str = safe  # type: ignore[attr-defined]  # noqa: SLF001
        quotes = not hidden and safe.endswith(": its value is not shown")
        if part.__cause__ is not None and error.__cause__ is not None:
            pending.append((part.__cause__, error.__cause__, quotes))
        if part.__context__ is not None and error.__context__ is not None:
            pending.append((part.__context__, error.__context__, quotes))
    return "".join(described.format()).rstrip("\n")


class ContextFilter(logging.Filter):
    """Adds the service's name, and the request and event being handled if any, to each record."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        for name, variable in (("request_id", request_id), ("event_id", event_id)):
            value = variable.get()
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
        return True


# Fields of a record that say nothing a reader needs (uvicorn's coloured copy of its message).
_DROPPED = ("color_message",)
# The order of a line's fields: these first, then any `extra` fields, then the traceback.
_FIRST = ("timestamp", "level", "logger", "message", "service", "request_id", "event_id")
_LAST = ("exc_info", "stack_info")


class JsonFormatter(_JsonFormatter):
    """One JSON object a line: timestamp (ISO 8601, UTC), level, logger, message, then the
    service, request_id, event_id, any `extra` fields, and exc_info when there is one."""

    def __init__(self) -> None:
        super().__init__(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="timestamp",
            json_ensure_ascii=False,
        )

    def formatException(self, ei: Any) -> str:  # noqa: N802, ANN401 - logging's name and type
        return format_exception(ei)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        for name in _DROPPED:
            log_data.pop(name, None)
        first = {name: log_data.pop(name) for name in _FIRST if name in log_data}
        last = {name: log_data.pop(name) for name in _LAST if name in log_data}
        return {**first, **log_data, **last}


class TextFormatter(logging.Formatter):
    """`2026-11-27 20:41:07,120 INFO  uvicorn.error [authority] message request_id=… event_id=…`"""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-5s %(name)s [%(service)s] %(message)s")

    def formatException(self, ei: Any) -> str:  # noqa: N802, ANN401 - logging's name and type
        return format_exception(ei)

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "service"):
            record.service = "-"
        line = super().format(record)
        ids = [
            f"{name}={getattr(record, name)}"
            for name in ("request_id", "event_id")
            if getattr(record, name, None) is not None
        ]
        if not ids:
            return line
        head, _, rest = line.partition("\n")
        return f"{head} {' '.join(ids)}" + (f"\n{rest}" if rest else "")


def logging_config(
    service: str, line_format: Literal["json", "text"] = "json", level: str = "INFO"
) -> dict[str, Any]:
    """A `logging.config.dictConfig` dict (what uvicorn's `log_config` takes): every record, the
    root's, uvicorn's and FastStream's, through one handler on standard error."""
    formatter = JsonFormatter if line_format == "json" else TextFormatter
    # Loggers that bring a handler of their own write through the root's one instead.
    own_handlers = ("uvicorn", "uvicorn.error", "uvicorn.access", "faststream", "faststream.access")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter, "service": service}},
        "formatters": {"line": {"()": formatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "line",
                "filters": ["context"],
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            **{name: {"handlers": [], "propagate": True, "level": level} for name in own_handlers},
            # At INFO SQLAlchemy writes every statement, at DEBUG every row read: a referral's
            # fields among them. Its warnings and errors still come through.
            "sqlalchemy.engine": {"level": "WARNING"},
            # At DEBUG aiokafka writes every message it sends, whole: never below INFO.
            "aiokafka": {"level": level if logging.getLevelName(level) > logging.DEBUG else "INFO"},
        },
    }


def configure(service: str, settings: LogSettings | None = None) -> dict[str, Any]:
    """Configure this process's logging for `service` from `settings` (default: the
    environment's); returns the dict it applied, for uvicorn's `log_config`."""
    settings = settings if settings is not None else LogSettings()
    config = logging_config(service, settings.format, settings.level)
    logging.config.dictConfig(config)
    logging.captureWarnings(capture=True)
    return config


ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]


def with_access_log(app: ASGIApp) -> ASGIApp:
    """`app`, writing one line per HTTP request answered to the `nearhome.access` logger: method,
    path (never the query string, which may carry anything a caller put there), status,
    duration_ms and the request's id."""
    access = logging.getLogger(ACCESS_LOGGER)

    async def logged(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        answer: dict[str, Any] = {}

        async def sending(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                for name, value in message.get("headers", ()):
                    if name.lower() == _REQUEST_ID_HEADER:
                        answer["request_id"] = value.decode("latin-1")
            await send(message)

        try:
            await app(scope, receive, sending)
        finally:
            status = answer.get("status", 500)
            fields: dict[str, Any] = {
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            }
            if "request_id" in answer:
                fields["request_id"] = answer["request_id"]
            access.info("%s %s %s", scope["method"], scope["path"], status, extra=fields)

    return logged
