"""Server-sent events of alerts, fed by PostgreSQL notifications sent when each batch commits.

The consumer's transaction calls `pg_notify` for each alert raised or retracted; PostgreSQL
delivers notifications only if, and when, that transaction commits, to every process listening.
`AlertStream` listens on one connection and hands each notification to the stream clients of the
alert's council (never any other's). A client that falls `queue_size` events behind is
disconnected rather than allowed to hold memory; it reconnects and reads what it missed from
`GET /v1/alerts`.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg

from services.alerting.metrics import AlertingMetrics

logger = logging.getLogger(__name__)

_CLOSED: Any = object()  # put on a client's queue when the stream ends for it


class AlertStream:
    def __init__(  # noqa: PLR0913 - where to listen, and knobs each named at the call
        self,
        dsn: str,
        channel: str,
        metrics: AlertingMetrics,
        *,
        queue_size: int = 1000,
        heartbeat_s: float = 15.0,
        max_duration_s: float = 300.0,
        retry_interval: float = 2.0,
    ) -> None:
        self._dsn = dsn
        self._channel = channel
        self._metrics = metrics
        self._queue_size = queue_size
        self._heartbeat_s = heartbeat_s
        self._max_duration_s = max_duration_s
        self._retry_interval = retry_interval
        self._clients: dict[str, set[asyncio.Queue[Any]]] = {}
        self.listening = asyncio.Event()

    async def run(self) -> None:
        """Listen until cancelled, connecting again whenever the connection is lost."""
        try:
            while True:
                try:
                    await self._listen_once()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    logger.exception("alert stream lost its database connection; reconnecting")
                self.listening.clear()
                await asyncio.sleep(self._retry_interval)
        finally:
            self.listening.clear()
            for queues in self._clients.values():
                for queue in queues:
                    _offer(queue, _CLOSED)

    async def _listen_once(self) -> None:
        connection: asyncpg.Connection = await asyncpg.connect(self._dsn)
        lost = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _connection: lost.set())
            await connection.add_listener(self._channel, self._on_notification)
            self.listening.set()
            await lost.wait()
        finally:
            with contextlib.suppress(OSError, asyncpg.InterfaceError, asyncpg.PostgresError):
                await connection.close(timeout=2)

    def _on_notification(self, _connection: object, _pid: int, _channel: str, body: str) -> None:
        if not self._clients:
            return  # nobody is listening: not worth parsing
        try:
            alert = json.loads(body)
            council = alert["authority_code"]
        except (ValueError, KeyError, TypeError):
            logger.exception("an alert notification that is not an alert")
            return
        for queue in list(self._clients.get(council, ())):
            if not _offer(queue, alert):
                logger.warning("an alert stream client of %s fell behind; closing it", council)
                self._drop(council, queue)
                _make_room_and_close(queue)

    @contextlib.contextmanager
    def _subscribed(self, council: str) -> Iterator[asyncio.Queue[Any]]:
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=self._queue_size)
        self._clients.setdefault(council, set()).add(queue)
        self._metrics.stream_clients.inc()
        try:
            yield queue
        finally:
            self._drop(council, queue)
            self._metrics.stream_clients.dec()

    def _drop(self, council: str, queue: asyncio.Queue[Any]) -> None:
        queues = self._clients.get(council)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._clients[council]

    async def events_for(self, council: str) -> AsyncIterator[str]:
        """The text/event-stream of one client: alerts of `council` from now on.

        It ends after `max_duration_s` (the client reconnects), so that a server can shut down.
        """
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + self._max_duration_s
        with self._subscribed(council) as queue:
            # Subscribed from here on; the comment tells a client it will miss nothing newer.
            yield "retry: 2000\n: connected\n\n"
            while (remaining := ends_at - loop.time()) > 0:
                try:
                    alert = await asyncio.wait_for(queue.get(), min(self._heartbeat_s, remaining))
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if alert is _CLOSED:
                    return
                yield _event(alert)


def _event(alert: dict[str, Any]) -> str:
    data = json.dumps(alert, separators=(",", ":"))
    return (
        f"event: alert.{alert['type']}\nid: {alert['alert_id']}.{alert['type']}\ndata: {data}\n\n"
    )


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
