"""`Idempotency-Key` on POST: the same key returns the first answer and writes nothing new.

The key is claimed inside the request's own transaction, so a retried request either finds the
committed answer or waits for the first attempt to commit or roll back; a rolled-back attempt (a
409, say) leaves no claim behind.
"""

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.platform.errors import IdempotencyKeyReusedError

MAX_KEY_LENGTH = 200


def idempotency_table(metadata: MetaData) -> Table:
    return Table(
        "idempotency_keys",
        metadata,
        Column("organisation_id", Text, nullable=False),
        Column("idempotency_key", Text, nullable=False),
        Column("request_hash", Text, nullable=False),
        Column("status_code", Integer),
        Column("response", JSONB),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("organisation_id", "idempotency_key"),
        Index("idempotency_keys_created_at", "created_at"),  # retention's horizon
    )


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: Any


def request_fingerprint(method: str, path: str, body: object) -> str:
    canonical = json.dumps([method, path, body], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def run_once(  # noqa: PLR0913 - the key's owner, the key, the request and the work
    session: AsyncSession,
    table: Table,
    *,
    organisation_id: str,
    key: str | None,
    fingerprint: str,
    work: Callable[[], Awaitable[StoredResponse]],
) -> StoredResponse:
    """Run `work` in the caller's transaction unless `key` already has an answer, then return it."""
    if key is None:
        return await work()
    if not 0 < len(key) <= MAX_KEY_LENGTH:
        raise IdempotencyKeyReusedError(f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} characters")
    claimed = await session.scalar(
        insert(table)
        .values(organisation_id=organisation_id, idempotency_key=key, request_hash=fingerprint)
        .on_conflict_do_nothing()
        .returning(table.c.idempotency_key)
    )
    if claimed is None:
        earlier = (
            await session.execute(
                select(table.c.request_hash, table.c.status_code, table.c.response).where(
                    table.c.organisation_id == organisation_id,
                    table.c.idempotency_key == key,
                )
            )
        ).one()
        if earlier.request_hash != fingerprint:
            raise IdempotencyKeyReusedError(
                "this Idempotency-Key was already used for a different request"
            )
        return StoredResponse(earlier.status_code, earlier.response)
    response = await work()
    await session.execute(
        update(table)
        .where(table.c.organisation_id == organisation_id, table.c.idempotency_key == key)
        .values(status_code=response.status_code, response=response.body)
    )
    return response
