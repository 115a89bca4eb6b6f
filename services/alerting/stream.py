"""Server-sent events of alerts and placement-loop notices, kept in order, resumable by
`Last-Event-ID`, fed by PostgreSQL notifications sent when each batch commits.

The consumer's transaction keeps every stream event (an alert raised or retracted, for its
council; a loop notice, for its council or provider) in `stream_events`, numbered by a position,
and calls `pg_notify` for each with its position and recipient (store.py). The transaction takes
the stream's lock (`STREAM_LOCK_ID`) before its first stream event and holds it until it commits,
so positions become visible in increasing order whichever shards commit at once, and
PostgreSQL delivers the notifications only if, and when, it commits, to every process listening.
`AlertStream` listens on one connection and hands each notification to the stream clients of its
recipient (never anyone else's). Each event's `id:` is its position.

A client that comes back with `Last-Event-ID: <position>` first gets its recipient's kept events
after that position, then live ones: it is subscribed to the live events *before* the kept ones are
read, and a live event at or below the last position it was sent is skipped, so none is sent twice
and none is missed. A backlog longer than `backlog_page` events is sent a page at a time: the
stream ends after a full page and the client comes back for the next. An id that is not a position
(the old `<alert_id>.<type>` ids, anything else) or that is past the newest position kept gets no
backlog, only live events; a new stream starts with an `id:` of the newest position (no event), so
a client that reconnects later resumes from the moment it first connected. Events are kept for
`NEARHOME_RETAIN_STREAM_EVENTS` (retention.py); what is older is gone from the backlog too.

Whenever the listener loses its connection (notifications may be lost) every client's stream is
ended, and a client that falls `queue_size` events behind is disconnected rather than allowed to
hold memory: each reconnects with its last id and is sent what it missed.
"""

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerting import store
from services.alerting.metrics import AlertingMetrics
from services.alerting.notices import Audience, Recipient
from services.platform.tables import connection_of

logger = logging.getLogger(__name__)

_CLOSED: Any = object()  # put on a client's queue when the stream ends for it
# A position as `Last-Event-ID` gives it back: decimal digits, below 2**63 (PostgreSQL's bigint).
_POSITION = re.compile(r"[0-9]{1,18}")


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """A stream event as notified: its position, recipient and name, and its data (JSON text),
    or None when it was too long for a notification (then it is read from the table)."""

    position: int
    recipient: Recipient
    event: str
    data: str | None


def live_event(notification: str) -> LiveEvent:
    """A `STREAM_CHANNEL` notification (store.stream_notification) read back."""
    head, _, data = notification.partition("\n")
    fields = json.loads(head)
    return LiveEvent(
        int(fields["position"]),
        Recipient(Audience(fields["audience"]), str(fields["organisation_id"])),
        str(fields["event"]),
        data or None,
    )


def event_text(position: int, event: str, data: str) -> str:
    """One event of the text/event-stream: its name, its position as its id, its data."""
    return f"event: {event}\nid: {position}\ndata: {data}\n\n"


def resume_position(last_event_id: str | None) -> int | None:
    """The position a `Last-Event-ID` names, or None if it names none (absent, another format)."""
    if last_event_id is None or not _POSITION.fullmatch(last_event_id.strip()):
        return None
    return int(last_event_id.strip())


@dataclass(eq=False)
class AlertStream:
    dsn: str
    channel: str
    metrics: AlertingMetrics
    _: KW_ONLY
    engine: AsyncEngine  # where the kept events are read from
    queue_size: int = 1000
    heartbeat_s: float = 15.0
    max_duration_s: float = 300.0
    retry_interval: float = 2.0
    # How the listener's own connection is secured (`DatabaseTls.connect_args`), as the engine's.
    connect_args: dict[str, Any] = field(default_factory=dict)
    # Kept events sent on one connection at most: a longer backlog is sent over several.
    backlog_page: int = 500
    # How long a new client waits for the listener (at start-up, or while it reconnects).
    listening_timeout_s: float = 10.0
    _clients: dict[Recipient, set[asyncio.Queue[Any]]] = field(default_factory=dict, init=False)
    listening: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    async def run(self) -> None:
        """Listen until cancelled, connecting again whenever the connection is lost."""
        try:
            while True:
                try:
                    await self._listen_once()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    logger.exception("alert stream lost its database connection; reconnecting")
                # Notifications sent while the connection was going are lost: every client comes
                # back with its last id and is sent what it missed.
                self.listening.clear()
                self._close_all()
                await asyncio.sleep(self.retry_interval)
        finally:
            self.listening.clear()
            self._close_all()

    async def _listen_once(self) -> None:
        connection: asyncpg.Connection = await asyncpg.connect(self.dsn, **self.connect_args)
        lost = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _connection: lost.set())
            await connection.add_listener(self.channel, self._on_notification)
            self.listening.set()
            await lost.wait()
        finally:
            with contextlib.suppress(OSError, asyncpg.InterfaceError, asyncpg.PostgresError):
                await connection.close(timeout=2)

    def _on_notification(self, _connection: object, _pid: int, _channel: str, body: str) -> None:
        if not self._clients:
            return  # nobody is listening: not worth parsing
        try:
            event = live_event(body)
        except (ValueError, KeyError, TypeError):
            logger.exception("a stream notification of the wrong shape")
            return
        for queue in list(self._clients.get(event.recipient, ())):
            if not _offer(queue, event):
                logger.warning("a stream client of %s fell behind; closing it", event.recipient)
                self._drop(event.recipient, queue)
                _make_room_and_close(queue)

    def _close_all(self) -> None:
        for recipient, queues in list(self._clients.items()):
            for queue in list(queues):
                self._drop(recipient, queue)
                _make_room_and_close(queue)

    @contextlib.contextmanager
    def _subscribed(self, recipient: Recipient) -> Iterator[asyncio.Queue[Any]]:
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=self.queue_size)
        self._clients.setdefault(recipient, set()).add(queue)
        self.metrics.stream_clients.inc()
        try:
            yield queue
        finally:
            self._drop(recipient, queue)
            self.metrics.stream_clients.dec()

    def _drop(self, recipient: Recipient, queue: asyncio.Queue[Any]) -> None:
        queues = self._clients.get(recipient)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._clients[recipient]

    async def events_for(
        self, recipient: Recipient, last_event_id: str | None = None
    ) -> AsyncIterator[str]:
        """The text/event-stream of one client: alerts (to a council) and notices of `recipient`
        after `last_event_id` if it is a position kept, else from now on.

        It ends after `max_duration_s` (the client reconnects), so that a server can shut down,
        and after a full page of kept events (the client reconnects for the next).
        """
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + self.max_duration_s
        try:
            async with asyncio.timeout(self.listening_timeout_s):
                await self.listening.wait()
        except TimeoutError:
            yield "retry: 2000\n: not listening yet\n\n"
            return
        # Subscribed before anything is read: whatever commits from here on reaches the queue.
        with self._subscribed(recipient) as queue:
            start = await self._start(recipient, resume_position(last_event_id))
            yield start.greeting
            sent = start.sent
            for kept in start.backlog[: self.backlog_page]:
                yield event_text(kept.position, kept.event, kept.data)
                sent = kept.position
            if len(start.backlog) > self.backlog_page:
                return  # more kept events than a page: the client comes back from `sent`
            while (remaining := ends_at - loop.time()) > 0:
                try:
                    async with asyncio.timeout(min(self.heartbeat_s, remaining)):
                        event = await queue.get()
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if event is _CLOSED:
                    return
                if event.position <= sent:
                    continue  # sent already, from the kept events (or before this stream began)
                data = event.data if event.data is not None else await self._data_of(event)
                if data is not None:
                    yield event_text(event.position, event.event, data)
                sent = event.position

    async def _start(self, recipient: Recipient, after: int | None) -> "_Start":
        """Where a stream starts: after `after` with the recipient's kept events since (a page and
        one more, to tell whether there are more), or, if that is no position kept, after the
        newest event, saying so with an `id:`."""
        async with connection_of(self.engine) as connection:
            newest = await store.newest_stream_position(connection)
            if after is None or after > newest:
                return _Start(f"retry: 2000\nid: {newest}\n: connected\n\n", newest, [])
            backlog = await store.stream_events_after(
                connection, recipient, after, limit=self.backlog_page + 1
            )
        return _Start("retry: 2000\n: connected\n\n", after, backlog)

    async def _data_of(self, event: LiveEvent) -> str | None:
        """The data of an event too long for its notification, read from the table."""
        async with connection_of(self.engine) as connection:
            return await store.stream_event_data(connection, event.position)


@dataclass(frozen=True, slots=True)
class _Start:
    greeting: str  # the first lines sent (`retry:`, maybe an `id:`, the `connected` comment)
    sent: int  # the position the client has had everything up to, once greeted
    backlog: list[store.StoredStreamEvent]


def _offer(queue: asyncio.Queue[Any], item: Any) -> bool:  # noqa: ANN401 - an event or _CLOSED
    try:
        queue.put_nowait(item)
    except asyncio.QueueFull:
        return False
    return True


def _make_room_and_close(queue: asyncio.Queue[Any]) -> None:
    with contextlib.suppress(asyncio.QueueEmpty):
        queue.get_nowait()
    _offer(queue, _CLOSED)
