"""The provider's inbox: the placement requests councils send it, from `referral.events`.

The platform's exactly-once processor runs this projection over each batch, in one transaction
with the inbox and the stored positions: `load` locks the vacancies and requests the batch names
(vacancy first, as every writer of the provider locks them), `apply` folds each event into them
(pure, through `domain`), and `save` writes the requests back, with the vacancies' new versions
and the events the batch decided (an offer released because its request was withdrawn) staged in
the outbox. The bulk path is asyncpg, its columns taken from the table classes.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
from sqlalchemy import Column

from contracts.envelope import Envelope, envelop
from contracts.events import (
    OfferAccepted,
    PlacementRequested,
    ProviderEvent,
    ReferralClosed,
    ReferralOpened,
    ReferralUpdated,
    ReferralWidened,
    RequestWithdrawn,
)
from services.platform.clock import Clock
from services.platform.errors import UnappliableEventError
from services.platform.outbox import stage_in_outbox
from services.platform.sequencing import Event
from services.platform.tables import (
    as_read,
    bulk_upsert,
    encoder,
    qualified,
    select_columns,
    table_of,
)
from services.provider import domain
from services.provider.tables import OUTBOX, Request, Vacancy

logger = logging.getLogger(__name__)

Loaded = TypeVar("Loaded", Vacancy, Request)

PRODUCER = "provider"
_REQUESTS = table_of(Request)
_VACANCIES = table_of(Vacancy)

# Vacancy first, then request: the order every writer of the provider takes its locks in.
_LOCK_VACANCIES = (
    select_columns(_VACANCIES)
    + " WHERE vacancy_id = any($1::uuid[]) ORDER BY vacancy_id FOR UPDATE"
)
_LOCK_REQUESTS = (
    select_columns(_REQUESTS) + " WHERE request_id = any($1::uuid[]) ORDER BY request_id FOR UPDATE"
)
_UPSERT_REQUESTS = bulk_upsert(_REQUESTS)
_NEW_VACANCY_VERSIONS = (
    f"UPDATE {qualified(_VACANCIES)} AS v SET version = u.version"  # noqa: S608 - names from code
    " FROM unnest($1::uuid[], $2::int[]) AS u(vacancy_id, version)"
    " WHERE v.vacancy_id = u.vacancy_id"
)


@dataclass
class Inbox:
    """What a batch touches: the vacancies and requests it names, and what it changed."""

    vacancies: dict[UUID, Vacancy]
    requests: dict[UUID, Request]
    changed_requests: set[UUID] = field(default_factory=set)
    changed_vacancies: set[UUID] = field(default_factory=set)
    outbox: list[Envelope[Any]] = field(default_factory=list)


def _row_to(kind: type[Loaded], row: asyncpg.Record) -> Loaded:
    table = table_of(kind)
    return kind(**{column.name: as_read(column, row[column.name]) for column in table.columns})


class RequestInbox:
    """The projection of `referral.events` the provider keeps: the requests it was sent."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def load(self, connection: asyncpg.Connection, events: Sequence[Event]) -> Inbox:
        vacancy_ids: set[UUID] = set()
        request_ids: set[UUID] = set()
        for event in events:
            payload = event.payload
            if isinstance(payload, PlacementRequested | RequestWithdrawn | OfferAccepted):
                vacancy_ids.add(payload.vacancy_id)
                request_ids.add(payload.request_id)
        vacancies = await connection.fetch(_LOCK_VACANCIES, sorted(vacancy_ids))
        requests = await connection.fetch(_LOCK_REQUESTS, sorted(request_ids))
        return Inbox(
            vacancies={row["vacancy_id"]: _row_to(Vacancy, row) for row in vacancies},
            requests={row["request_id"]: _row_to(Request, row) for row in requests},
        )

    def apply(self, state: Inbox, event: Event) -> None:
        """Fold one event in; every referral event type has its branch, an unknown one raises."""
        match event.payload:
            case PlacementRequested() as requested:
                if requested.request_id in state.requests:
                    raise UnappliableEventError(f"request {requested.request_id} already received")
                vacancy = state.vacancies.get(requested.vacancy_id)
                request = domain.receive_request(requested, vacancy, event.occurred_at)
                self._keep(state, request)
            case RequestWithdrawn() as withdrawn:
                request = self._known(state, withdrawn.request_id)
                vacancy = state.vacancies[request.vacancy_id]
                after, bumped, released = domain.withdraw_request(
                    request, vacancy, withdrawn.reason, self._clock()
                )
                self._keep(state, after)
                if bumped is not None and released is not None:
                    self._emit(state, bumped, released)
            case OfferAccepted() as accepted:
                request = self._known(state, accepted.request_id)
                taken = domain.accept_offer(request, self._clock())
                if taken is None:
                    logger.warning(
                        "offer for request %s accepted while %s: nothing to accept",
                        request.request_id,
                        request.status.value,
                    )
                else:
                    self._keep(state, taken)
            case ReferralOpened() | ReferralUpdated() | ReferralWidened() | ReferralClosed():
                # A referral's own life is the council's: a provider learns of a child only
                # through a request sent to it (a closed referral's requests are withdrawn).
                pass
            case _:
                raise UnappliableEventError(
                    f"the provider's inbox has no rule for {event.event_type} events"
                )

    async def save(self, connection: asyncpg.Connection, state: Inbox) -> None:
        if state.changed_requests:
            changed = [state.requests[key] for key in sorted(state.changed_requests)]
            await connection.execute(
                _UPSERT_REQUESTS,
                *(
                    [_written(column, getattr(request, column.name)) for request in changed]
                    for column in _REQUESTS.columns
                ),
            )
        if state.changed_vacancies:
            keys = sorted(state.changed_vacancies)
            await connection.execute(
                _NEW_VACANCY_VERSIONS, keys, [state.vacancies[key].version for key in keys]
            )
        await stage_in_outbox(connection, OUTBOX, state.outbox)

    @staticmethod
    def _known(state: Inbox, request_id: UUID) -> Request:
        request = state.requests.get(request_id)
        if request is None:
            raise UnappliableEventError(f"no request {request_id} was received by this provider")
        return request

    @staticmethod
    def _keep(state: Inbox, request: Request) -> None:
        state.requests[request.request_id] = request
        state.changed_requests.add(request.request_id)

    def _emit(self, state: Inbox, vacancy: Vacancy, event: ProviderEvent) -> None:
        state.vacancies[vacancy.vacancy_id] = vacancy
        state.changed_vacancies.add(vacancy.vacancy_id)
        state.outbox.append(
            envelop(
                event,
                producer=PRODUCER,
                organisation_id=event.provider_id,
                aggregate_id=vacancy.vacancy_id,
                sequence=vacancy.version,
                occurred_at=self._clock(),
            )
        )


def _written(column: Column[Any], value: object) -> object:
    encode = encoder(column, arrays_as_text=True)
    return value if encode is None else encode(value)
