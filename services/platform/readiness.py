"""What `/ready` asks: the broker for its cluster metadata, the database for a query.

A port that accepts a TCP connection is not a broker that answers: a broker still starting, or
one that lost its controller, accepts connections and answers nothing useful. So readiness asks
for what the service needs from each: the broker's metadata (which brokers and topics there are),
and a query answered by the database.
"""

import asyncio
import contextlib

from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.platform.connections import PLAINTEXT, KafkaSecurity

CHECK_TIMEOUT_S = 2.0


async def broker_answers(
    bootstrap_servers: str,
    timeout_s: float = CHECK_TIMEOUT_S,
    *,
    security: KafkaSecurity = PLAINTEXT,
) -> bool:
    """Whether a broker of `bootstrap_servers` answers a metadata request naming at least one
    broker, within `timeout_s`, to a client connecting as the services do (`security`)."""
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap_servers.split(","),
        client_id="nearhome-readiness",
        request_timeout_ms=int(timeout_s * 1000),
        **security.client_options(),
    )
    try:
        async with asyncio.timeout(timeout_s):
            await client.bootstrap()
        return bool(client.cluster.brokers())
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        with contextlib.suppress(Exception):
            await client.close()


async def database_answers(engine: AsyncEngine, timeout_s: float = CHECK_TIMEOUT_S) -> bool:
    """Whether the database answers a query on one of `engine`'s connections within
    `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means "not ready", which is the answer
        return False
    return True
