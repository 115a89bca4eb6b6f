"""The children's output: split into lines, prefixed with the child's name, the last few kept."""

import json
import re
from collections import deque
from collections.abc import Iterable

# ANSI colours for the children's prefixes, in the order the children are named.
_COLOURS = ("36", "32", "35", "33", "34", "31")
_RESET = "\x1b[0m"
# A line per unit of routine work: one request answered (the `nearhome.access` logger of
# `services.platform.logs`) or one message consumed (FastStream's `Received` and `Processed`), as
# `nearhome serve` writes them, in JSON (`"logger": "nearhome.access"`) or as text
# (`2026-11-27 20:41:07,120 INFO  nearhome.access [authority] GET /v1/referrals 200 request_id=…`);
# and as uvicorn and FastStream write them with their own handlers
# (`INFO:     127.0.0.1:51234 - "GET /v1/x HTTP/1.1" 200 OK`,
# `2026-11-23 14:12:23,762 INFO     - provider.events | nearhome-ledger | 1075-1049- - Received`).
_ROUTINE = (
    re.compile(r'^INFO:\s+\S+:\d+ - "[A-Z]+ \S+ HTTP/[\d.]+" \d{3}\b'),
    re.compile(r"^\d{4}-\d\d-\d\d [\d:,.]+ INFO\s+- .* - (Received|Processed)$"),
    re.compile(r"^\d{4}-\d\d-\d\d [\d:,.]+ INFO\s+nearhome\.access \["),
    re.compile(
        r"^\d{4}-\d\d-\d\d [\d:,.]+ INFO\s+faststream\.access\.\w+ \[[^]]*\] "
        r"(Received|Processed)( |$)"
    ),
)
_ROUTINE_MESSAGES = {"Received", "Processed"}
# Loggers that colour their level names (FastStream does, even into a pipe, when the environment
# asks for colour) must not hide their routine lines from the patterns above.
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


class LineSplitter:
    """Turns chunks of a child's output into complete, decoded lines.

    A carriage return ends a line too (progress lines rewritten in place); an over-long line is
    cut rather than held forever.
    """

    def __init__(self, max_line: int = 16_384) -> None:
        self._pending = b""
        self._max_line = max_line

    def feed(self, chunk: bytes) -> list[str]:
        data = self._pending + chunk
        parts = re.split(rb"\r\n|\r|\n", data)
        self._pending = parts.pop()
        lines = [_decode(part) for part in parts]
        while len(self._pending) > self._max_line:
            lines.append(_decode(self._pending[: self._max_line]))
            self._pending = self._pending[self._max_line :]
        return [line for line in lines if line.strip()]

    def flush(self) -> list[str]:
        """What is left when the output ends without a final newline."""
        rest, self._pending = self._pending, b""
        return [_decode(rest)] if rest.strip() else []


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").rstrip()


class Prefixer:
    """`[provider]  line`: names padded to one width, each in its own colour on a terminal."""

    def __init__(self, names: Iterable[str], *, colour: bool) -> None:
        self._names = list(dict.fromkeys(names))
        self._width = max((len(name) for name in self._names), default=0) + 2
        self._colour = colour

    def prefix(self, name: str) -> str:
        label = f"[{name}]".ljust(self._width)
        if not self._colour:
            return label
        code = _COLOURS[self._names.index(name) % len(_COLOURS)] if name in self._names else "1"
        return f"\x1b[{code}m{label}{_RESET}"

    def line(self, name: str, text: str) -> str:
        return f"{self.prefix(name)} {text}"


class Tail:
    """The last `size` lines a child wrote, for the report when it exits unexpectedly."""

    def __init__(self, size: int = 20) -> None:
        self._lines: deque[str] = deque(maxlen=size)

    def add(self, line: str) -> None:
        self._lines.append(line)

    def lines(self) -> list[str]:
        return list(self._lines)

    def clear(self) -> None:
        self._lines.clear()


def is_routine(line: str) -> bool:
    """Whether `line` logs one request answered or one message consumed (a demo hides those)."""
    plain = _ANSI_ESCAPE.sub("", line)
    if plain.startswith("{"):
        return _is_routine_record(plain)
    return any(pattern.match(plain) for pattern in _ROUTINE)


def _is_routine_record(line: str) -> bool:
    """Whether a JSON log line is an INFO line of the access log or of one message consumed."""
    try:
        record = json.loads(line)
    except ValueError:
        return False
    if not isinstance(record, dict) or record.get("level") != "INFO":
        return False
    logger = str(record.get("logger", ""))
    return logger == "nearhome.access" or (
        logger.startswith("faststream.access.") and record.get("message") in _ROUTINE_MESSAGES
    )
