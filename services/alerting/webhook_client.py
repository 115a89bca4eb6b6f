"""A lean HTTP/1.1 client for webhooks: one POST, its status code, keep-alive connections.

Sending webhooks is the service's hot path: one request per alert per subscription, thousands a
second at national scale. httpx spent about a millisecond of CPU on each (its pool bookkeeping,
and a failed `import sniffio` on every request when sniffio is not installed), which capped a
process at a few hundred webhooks a second. A webhook needs little of what httpx offers (no
redirects, cookies, proxies, HTTP/2 or streaming), so this sends it on asyncio streams with h11
doing the HTTP/1.1 framing, at about a tenth of the cost.

One `WebhookSender` per subscription keeps up to `max_idle` connections to its receiver alive.
One the receiver is known to have closed while it was idle is dropped unused; one whose closing
had not arrived yet fails before any answer arrives, and the request is then sent once more on
another connection (as browsers and HTTP libraries do).

Each new connection asks `resolve` for the address to connect to (delivery_targets.py resolves
the host and refuses an internal address), and connects to exactly that address, with the host
name kept for TLS, so what was checked is what is connected to.
"""

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11

# A receiver's answer body is read (to keep the connection usable) up to this size, then dropped.
_MAX_ANSWER_BYTES = 1 << 20
_READ_CHUNK = 65536


class WebhookSendError(Exception):
    """The request got no HTTP answer: the message names what went wrong (shown to the council)."""


class _StaleConnectionError(Exception):
    """A kept-alive connection closed by the receiver before it answered anything."""


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    protocol: h11.Connection

    def close(self) -> None:
        self.writer.close()


# A POST as h11 sends it: the request line and headers, the body, the end of the message.
_Message = tuple[h11.Request, h11.Data, h11.EndOfMessage]


class WebhookSender:
    """POSTs to one URL (http or https), reusing up to `max_idle` kept-alive connections."""

    def __init__(
        self,
        url: str,
        *,
        max_idle: int,
        timeout_s: float,
        tls: ssl.SSLContext | None = None,
        resolve: Callable[[str, int], Awaitable[str]] | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s) URL")
        self._host = parts.hostname
        self._secure = parts.scheme == "https"
        self._port = parts.port or (443 if self._secure else 80)
        default_port = (self._secure and self._port == 443) or (
            not self._secure and self._port == 80
        )
        self._host_header = parts.netloc.rpartition("@")[2] if not default_port else self._host
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        # TLS only for https; `tls` lets many senders share one context.
        self._tls = (tls or ssl.create_default_context()) if self._secure else None
        self._max_idle = max_idle
        # (host, port) -> the address to connect to; None connects to the host as named.
        self._resolve = resolve
        self._timeout_s = timeout_s
        self._idle: list[_Connection] = []

    async def post(self, body: bytes, headers: list[tuple[str, str]]) -> int:
        """The receiver's status code; WebhookSendError when no answer came within the timeout
        (for connecting, sending and answering, all told)."""
        message = self._message(body, headers)
        try:
            async with asyncio.timeout(self._timeout_s):
                while self._idle:
                    connection = self._idle.pop()
                    if connection.reader.at_eof():  # closed by the receiver while it was idle
                        connection.close()
                        continue
                    try:
                        return await self._exchange(connection, message, reused=True)
                    except _StaleConnectionError:
                        continue
                return await self._exchange(await self._connect(), message, reused=False)
        except TimeoutError as error:
            raise WebhookSendError(f"timed out after {self._timeout_s}s") from error

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    async def _connect(self) -> _Connection:
        try:
            address = self._host
            if self._resolve is not None:
                address = await self._resolve(self._host, self._port)
            reader, writer = await asyncio.open_connection(
                address,
                self._port,
                ssl=self._tls,
                server_hostname=self._host if self._secure else None,
            )
        except OSError as error:
            raise WebhookSendError(f"ConnectError: {error}") from error
        return _Connection(reader, writer, h11.Connection(h11.CLIENT))

    def _message(self, body: bytes, headers: list[tuple[str, str]]) -> _Message:
        """The POST of `body`, as the h11 events that send it (the same on every connection)."""
        request = h11.Request(
            method="POST",
            target=self._target,
            headers=[
                ("Host", self._host_header),
                ("Content-Length", str(len(body))),
                *headers,
            ],
        )
        return request, h11.Data(data=body), h11.EndOfMessage()

    async def _exchange(self, connection: _Connection, message: _Message, *, reused: bool) -> int:
        keep = False
        try:
            status = await self._request(connection, message, reused=reused)
            keep = (
                connection.protocol.our_state is h11.DONE
                and connection.protocol.their_state is h11.DONE
                and len(self._idle) < self._max_idle
            )
            if keep:
                connection.protocol.start_next_cycle()
                self._idle.append(connection)
            return status
        finally:
            if not keep:
                connection.close()

    async def _request(self, connection: _Connection, message: _Message, *, reused: bool) -> int:
        protocol = connection.protocol
        request, data, end = message
        try:
            connection.writer.write(
                protocol.send(request) + protocol.send(data) + protocol.send(end)
            )
            await connection.writer.drain()
            return await self._answer(connection, reused=reused)
        except h11.ProtocolError as error:
            raise WebhookSendError(f"ProtocolError: {error}") from error
        except OSError as error:
            if reused:
                raise _StaleConnectionError from error
            raise WebhookSendError(f"{type(error).__name__}: {error}") from error

    @staticmethod
    async def _answer(connection: _Connection, *, reused: bool) -> int:
        protocol = connection.protocol
        status: int | None = None
        read = 0
        while True:
            event = protocol.next_event()
            if event is h11.NEED_DATA:
                data = await connection.reader.read(_READ_CHUNK)
                if not data and status is None:
                    if reused:
                        raise _StaleConnectionError
                    raise WebhookSendError("ReadError: the receiver closed the connection")
                protocol.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                read += len(event.data)
                if read > _MAX_ANSWER_BYTES and status is not None:
                    return status  # not worth reading on: the connection is closed, not kept
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                if status is None:
                    raise WebhookSendError("ReadError: the receiver closed the connection")
                return status
            # An informational (1xx) answer: the real one follows.


def shared_tls_context() -> ssl.SSLContext:
    """One context for every sender: loading the CA certificates costs ~20 ms each time."""
    return ssl.create_default_context()
