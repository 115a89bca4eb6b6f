"""Server-sent events of alerts and placement-loop notices, fed by PostgreSQL notifications sent
when each batch commits.

The consumer's transaction calls `pg_notify` for each alert raised or retracted (on the alert
channel) and for each loop notice (on the notice channel, naming its council or provider);
PostgreSQL delivers notifications only if, and when, that transaction commits, to every process
listening. `AlertStream` listens on one connection and hands each notification to the stream
clients of the alert's council or the notice's recipient (never anyone else's). A client that
falls `queue_size` events behind is disconnected rather than allowed to hold memory; it reconnects
and reads what it missed from `GET /v1/alerts`.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import asyncpg

from services.alerting.metrics import AlertingMetrics
from services.alerting.notices import Audience, Recipient

logger = logging.getLogger(__name__)

# A notification's parsed JSON -> whose stream clients get it, and the event they get.
Route = Callable[[dict[str, Any]], tuple[Recipient, str]]

_CLOSED: Any = object()  # put on a client's queue when the stream ends for it


@dataclass(eq=False)
class AlertStream:
    dsn: str
    channel: str
    metrics: AlertingMetrics
    _: KW_ONLY
    notice_channel: str | None = None
    queue_size: int = 1000
    heartbeat_s: float = 15.0
    max_duration_s: float = 300.0
    retry_interval: float = 2.0
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
                self.listening.clear()
                await asyncio.sleep(self.retry_interval)
        finally:
            self.listening.clear()
            for queues in self._clients.values():
                for queue in queues:
                    _offer(queue, _CLOSED)

    async def _listen_once(self) -> None:
        connection: asyncpg.Connection = await asyncpg.connect(self.dsn)
        lost = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _connection: lost.set())
            await connection.add_listener(self.channel, self._on_alert)
            if self.notice_channel is not None:
                await connection.add_listener(self.notice_channel, self._on_notice)
            self.listening.set()
            await lost.wait()
        finally:
            with contextlib.suppress(OSError, asyncpg.InterfaceError, asyncpg.PostgresError):
                await connection.close(timeout=2)

    def _on_alert(self, _connection: object, _pid: int, _channel: str, body: str) -> None:
        self._hand_out(body, alert_event)

    def _on_notice(self, _connection: object, _pid: int, _channel: str, body: str) -> None:
        self._hand_out(body, notice_event)

    def _hand_out(self, body: str, route: Route) -> None:
        if not self._clients:
            return  # nobody is listening: not worth parsing
        try:
            recipient, event = route(json.loads(body))
        except (ValueError, KeyError, TypeError):
            logger.exception("a stream notification of the wrong shape")
            return
        for queue in list(self._clients.get(recipient, ())):
            if not _offer(queue, event):
                logger.warning("a stream client of %s fell behind; closing it", recipient)
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

    async def events_for(self, recipient: Recipient) -> AsyncIterator[str]:
        """The text/event-stream of one client: alerts (to a council) and notices of `recipient`
        from now on.

        It ends after `max_duration_s` (the client reconnects), so that a server can shut down.
        """
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + self.max_duration_s
        with self._subscribed(recipient) as queue:
            # Subscribed from here on; the comment tells a client it will miss nothing newer.
            yield "retry: 2000\n: connected\n\n"
            while (remaining := ends_at - loop.time()) > 0:
                try:
                    async with asyncio.timeout(min(self.heartbeat_s, remaining)):
                        event = await queue.get()
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if event is _CLOSED:
                    return
                yield event


def alert_event(alert: dict[str, Any]) -> tuple[Recipient, str]:
    """An alert notification's council, and its event: `alert.<type>`, id `<alert_id>.<type>`."""
    data = json.dumps(alert, separators=(",", ":"))
    event = (
        f"event: alert.{alert['type']}\nid: {alert['alert_id']}.{alert['type']}\ndata: {data}\n\n"
    )
    return Recipient(Audience.AUTHORITY, alert["authority_code"]), event


def notice_event(notification: dict[str, Any]) -> tuple[Recipient, str]:
    """A notice notification's recipient, and its event: named as its type, id its notice id."""
    recipient = Recipient(Audience(notification["audience"]), notification["organisation_id"])
    notice = notification["notice"]
    data = json.dumps(notice, separators=(",", ":"))
    return recipient, f"event: {notice['type']}\nid: {notice['notice_id']}\ndata: {data}\n\n"


def _offer(queue: asyncio.Queue[Any], item: Any) -> bool:  # noqa: ANN401 - an alert or _CLOSED
    try:
        queue.put_nowait(item)
    except asyncio.QueueFull:
        return False
    return True


def _make_room_and_close(queue: asyncio.Queue[Any]) -> None:
    with contextlib.suppress(asyncio.QueueEmpty):
        queue.get_nowait()
    _offer(queue, _CLOSED)
