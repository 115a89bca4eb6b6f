"""One shared way to write: state, its events and the `Idempotency-Key` claim in one transaction.

A use case loads what it needs, asks the domain (which decides and returns the new state and the
event), saves the state and `emit`s the event; `Writer` supplies the transaction, stages the
events in the outbox and wakes the relay once the transaction has committed.
"""

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import KW_ONLY, dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts.envelope import envelop
from contracts.events import EventPayload
from services.platform.idempotency import StoredResponse, run_once
from services.platform.outbox import add_to_outbox


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """Who asks (the organisation the token names), and how to recognise the request sent again."""

    organisation_id: str
    idempotency_key: str | None
    fingerprint: str


Work = Callable[[AsyncSession], Awaitable[StoredResponse]]
AfterWork = Callable[[AsyncSession, StoredResponse], Awaitable[None]]


@dataclass(eq=False)
class Writer:
    """A service's write path: its sessions, outbox, idempotency keys and relay."""

    sessions: async_sessionmaker[AsyncSession]
    _: KW_ONLY
    producer: str
    outbox: Table
    idempotency_keys: Table
    on_commit: Callable[[], None]

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One transaction; the relay is woken after it commits (an idle wake costs nothing)."""
        async with self.sessions() as session, session.begin():
            yield session
        self.on_commit()

    async def write(
        self, request: WriteRequest, work: Work, *, after: AfterWork | None = None
    ) -> StoredResponse:
        """Run `work` once per `Idempotency-Key`, then `after` (an audit row, say): one commit."""
        async with self.transaction() as session:
            answer = await run_once(
                session,
                self.idempotency_keys,
                organisation_id=request.organisation_id,
                key=request.idempotency_key,
                fingerprint=request.fingerprint,
                work=lambda: work(session),
            )
            if after is not None:
                await after(session, answer)
        return answer

    async def emit(  # noqa: PLR0913 - the event and the envelope fields it cannot know itself
        self,
        session: AsyncSession,
        payload: EventPayload,
        *,
        organisation_id: str,
        aggregate_id: UUID,
        sequence: int,
        occurred_at: datetime,
    ) -> None:
        """Stage `payload` in the outbox: it is published only if the transaction commits."""
        await add_to_outbox(
            session,
            self.outbox,
            envelop(
                payload,
                producer=self.producer,
                organisation_id=organisation_id,
                aggregate_id=aggregate_id,
                sequence=sequence,
                occurred_at=occurred_at,
            ),
        )
