"""A quiet check for whether something listens on a TCP port."""

import asyncio
import contextlib

_CONNECT_TIMEOUT_S = 1.0


async def port_accepts(host: str, port: int, timeout_s: float = _CONNECT_TIMEOUT_S) -> bool:
    """Whether something accepts TCP connections at `host:port`."""
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
