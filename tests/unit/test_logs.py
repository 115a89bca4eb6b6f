"""Log lines: the JSON and text formatters, the filter adding ids, the access line, settings."""

import asyncio
import io
import json
import logging
from collections.abc import Iterator, MutableMapping
from datetime import datetime
from typing import Any

import asyncpg
import pytest
from pydantic import BaseModel, ValidationError

from services.platform import logs


class Child(BaseModel):
    age: int
    home_postcode_district: str


@pytest.fixture
def written() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    """A logger whose records go, through the filter, to a handler writing into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(logs.ContextFilter("authority"))
    logger = logging.getLogger(f"test.logs.{id(buffer)}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(handler)
    yield logger, buffer, handler
    logger.removeHandler(handler)


def json_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


# Built, so that the traceback's source lines (which quote the code) do not show it.
BAD_AGE = "fourteen-" + "canary"


def a_validation_error() -> ValidationError:
    try:
        Child.model_validate({"age": BAD_AGE, "home_postcode_district": 7})
    except ValidationError as error:
        return error
    raise AssertionError("the input is invalid")


def test_a_json_line_has_the_time_level_logger_message_and_service(
    written: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, buffer, handler = written
    handler.setFormatter(logs.JsonFormatter())

    logger.info("opened %s", "a referral", extra={"referral_id": "r-1"})

    [line] = buffer.getvalue().splitlines()
    record = json.loads(line)
    assert list(record) == ["timestamp", "level", "logger", "message", "service", "referral_id"]
    assert record["level"] == "INFO"
    assert record["logger"] == logger.name
    assert record["message"] == "opened a referral"
    assert record["service"] == "authority"
    assert datetime.fromisoformat(record["timestamp"]).utcoffset() is not None
    assert record["timestamp"].endswith("+00:00")


def test_the_request_and_event_ids_are_added_only_while_set(
    written: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, buffer, handler = written
    handler.setFormatter(logs.JsonFormatter())

    logger.info("before")
    request = logs.request_id.set("request-1")
    event = logs.event_id.set("event-1")
    logger.info("during")
    logs.event_id.reset(event)
    logs.request_id.reset(request)
    logger.info("after")

    before, during, after = json_lines(buffer)
    assert "request_id" not in before
    assert "event_id" not in before
    assert (during["request_id"], during["event_id"]) == ("request-1", "event-1")
    assert "request_id" not in after
    assert "event_id" not in after


def test_an_id_given_with_the_record_is_kept(
    written: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, buffer, handler = written
    handler.setFormatter(logs.JsonFormatter())
    token = logs.event_id.set("the-batch")

    logger.info("one event", extra={"event_id": "this-one"})

    logs.event_id.reset(token)
    assert json_lines(buffer)[0]["event_id"] == "this-one"


def test_an_exception_is_formatted_without_a_validation_errors_input_values(
    written: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, buffer, handler = written
    handler.setFormatter(logs.JsonFormatter())
    invalid = a_validation_error()
    assert BAD_AGE in str(invalid), "pydantic quotes the input by default"

    try:
        try:
            raise invalid
        except ValidationError as error:
            raise RuntimeError("could not apply the event") from error
    except RuntimeError:
        logger.exception("failed")

    [record] = json_lines(buffer)
    assert "RuntimeError: could not apply the event" in record["exc_info"]
    assert "2 invalid in Child: age: Input should be a valid integer" in record["exc_info"]
    assert "Traceback (most recent call last)" in record["exc_info"]
    assert BAD_AGE not in buffer.getvalue()
    assert list(record)[-1] == "exc_info"


def test_describe_names_the_error_and_never_a_validation_errors_input() -> None:
    assert logs.describe(KeyError("r-1")) == "KeyError: 'r-1'"
    described = logs.describe(a_validation_error())
    assert described.startswith("ValidationError: 2 invalid in Child: age: ")
    assert "home_postcode_district: Input should be a valid string [string_type]" in described
    assert BAD_AGE not in described


def test_a_text_line_has_the_ids_after_the_message(
    written: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, buffer, handler = written
    handler.setFormatter(logs.TextFormatter())
    token = logs.request_id.set("request-1")

    logger.warning("slow")

    logs.request_id.reset(token)
    line = buffer.getvalue().rstrip("\n")
    assert line.endswith(f"WARNING {logger.name} [authority] slow request_id=request-1")


def test_the_settings_read_the_format_and_level_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert (logs.LogSettings().format, logs.LogSettings().level) == ("json", "INFO")
    monkeypatch.setenv("NEARHOME_LOG_FORMAT", "Text")
    monkeypatch.setenv("NEARHOME_LOG_LEVEL", "debug")
    assert (logs.LogSettings().format, logs.LogSettings().level) == ("text", "DEBUG")
    monkeypatch.setenv("NEARHOME_LOG_LEVEL", "chatty")
    with pytest.raises(ValidationError):
        logs.LogSettings()


def test_the_configuration_sends_every_logger_through_one_handler() -> None:
    config = logs.logging_config("ledger", "json", "DEBUG")

    assert config["disable_existing_loggers"] is False
    assert config["root"] == {"handlers": ["stderr"], "level": "DEBUG"}
    for name in ("uvicorn", "uvicorn.error", "faststream", "faststream.access"):
        assert config["loggers"][name] == {"handlers": [], "propagate": True, "level": "DEBUG"}
    # Libraries that would write rows read or messages sent, whole, at their lowest levels.
    assert config["loggers"]["sqlalchemy.engine"]["level"] == "WARNING"
    assert config["loggers"]["aiokafka"]["level"] == "INFO"
    assert logs.logging_config("ledger", "json", "ERROR")["loggers"]["aiokafka"]["level"] == "ERROR"


async def test_the_access_line_has_method_path_status_duration_and_request_id_not_the_query(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sent: list[MutableMapping[str, Any]] = []

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(0.01)
        await send(
            {
                "type": "http.response.start",
                "status": 404,
                "headers": [(b"x-request-id", b"request-7")],
            }
        )
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v1/alerts",
        "query_string": b"referral_id=r-1&postcode=CA17",
    }
    with caplog.at_level(logging.INFO, logger=logs.ACCESS_LOGGER):
        await logs.with_access_log(app)(scope, receive, send)

    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
    [record] = access_records(caplog)
    assert record.getMessage() == "GET /v1/alerts 404"
    fields = {name: getattr(record, name) for name in ("method", "path", "status", "request_id")}
    assert fields == {
        "method": "GET",
        "path": "/v1/alerts",
        "status": 404,
        "request_id": "request-7",
    }
    assert getattr(record, "duration_ms") >= 10  # noqa: B009 - an `extra` field
    assert "CA17" not in logs.JsonFormatter().format(record)


async def test_an_app_that_raises_is_logged_as_a_500(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("broken")

    async def nothing(*_: Any) -> Any:
        return {}

    scope = {"type": "http", "method": "POST", "path": "/v1/referrals", "query_string": b""}
    with caplog.at_level(logging.INFO, logger=logs.ACCESS_LOGGER), pytest.raises(RuntimeError):
        await logs.with_access_log(app)(scope, nothing, nothing)

    [record] = access_records(caplog)
    assert record.getMessage() == "POST /v1/referrals 500"


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The access log's records: caplog also holds whatever else logged meanwhile (another test's
    client still closing, in the same process)."""
    return [record for record in caplog.records if record.name == logs.ACCESS_LOGGER]


def encode(value: str) -> int:
    raise ValueError(f"{value!r} is not a number")


def a_refused_query_argument() -> BaseException:
    """asyncpg's refusal of a query argument, as it words it, raised from the encoding error."""
    value = "CA17 " + "9ZZ"
    try:
        try:
            encode(value)
        except ValueError as error:
            message = f"invalid input for query argument $2: {value!r} (not a number)"
            raise asyncpg.DataError(message) from error
    except asyncpg.DataError as refused:
        return refused
    raise AssertionError("the value cannot be encoded")


def test_a_refused_query_argument_is_described_and_formatted_without_the_argument() -> None:
    refused = a_refused_query_argument()
    assert "CA17 9ZZ" in str(refused)

    described = logs.describe(refused)
    formatted = logs.format_exception((type(refused), refused, refused.__traceback__))

    assert described == "DataError: invalid input for query argument $2: its value is not shown"
    assert "invalid input for query argument $2: its value is not shown" in formatted
    assert "ValueError: its message is not shown" in formatted
    assert "CA17 9ZZ" not in formatted
