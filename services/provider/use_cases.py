"""One method per command: load what it needs (locked), ask the domain, save and emit its answer.

Every write is one transaction (the platform's `Writer`) holding the state change, exactly one
outbox row (or none, when nothing changed) and the `Idempotency-Key` claim.
"""

from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar
from uuid import UUID, uuid4

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts.enums import OfferWithdrawalReason
from contracts.events import ProviderEvent
from services.platform.auth import Principal, Role
from services.platform.clock import Clock
from services.platform.errors import NotFoundError
from services.platform.idempotency import StoredResponse
from services.platform.writes import Writer, WriteRequest
from services.provider import domain, store
from services.provider.models import (
    CloseSetting,
    DeclineRequest,
    EndPlacement,
    OfferPlacement,
    PlacementView,
    PostVacancy,
    RegisterSetting,
    RequestView,
    SettingProfileView,
    SettingView,
    StartPlacement,
    UpdateSetting,
    VacancyView,
    WithdrawVacancy,
)
from services.provider.tables import (
    Placement,
    PlacementStatus,
    Request,
    RequestStatus,
    Setting,
    SettingStatus,
    Vacancy,
    VacancyStatus,
)

# The status codes of the answers stored against an `Idempotency-Key`, replayed as they were.
CREATED = 201
OK = 200

Record = TypeVar("Record", Setting, Vacancy, Placement, Request)
Versioned = TypeVar("Versioned", Setting, Vacancy, Placement)


def _answer(status_code: int, view: BaseModel) -> StoredResponse:
    return StoredResponse(status_code, view.model_dump(mode="json"))


def _aggregate_id(record: Setting | Vacancy | Placement) -> UUID:
    """The key of the aggregate whose stream a record's events go to: the record's own."""
    match record:
        case Setting():
            return record.setting_id
        case Vacancy():
            return record.vacancy_id
        case Placement():
            return record.placement_id


class ProviderService:
    """The provider's use cases over its database, writing through the platform's `Writer`."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        writer: Writer,
        *,
        clock: Clock,
        vacancy_expire_after: timedelta,
        offer_hold: timedelta = timedelta(hours=24),
    ) -> None:
        self._sessions = sessions
        self._writer = writer
        self._clock = clock
        self.vacancy_expire_after = vacancy_expire_after
        self.offer_hold = offer_hold

    # --- plumbing ---------------------------------------------------------------------------------

    @staticmethod
    async def _owned(
        session: AsyncSession, kind: type[Record], key: UUID, provider_id: str, *, lock: bool
    ) -> Record:
        """The record of `kind` with `key`, if there is one and it is the caller's."""
        what = kind.__name__.lower()
        record = await store.load(session, kind, key, lock=lock)
        if record is None:
            raise NotFoundError(f"no {what} {key}")
        domain.check_owned_by(record.provider_id, provider_id, what)
        return record

    async def _write_to_owned(
        self,
        request: WriteRequest,
        kind: type[Record],
        key: UUID,
        act: Callable[[AsyncSession, Record, datetime], Awaitable[StoredResponse]],
    ) -> StoredResponse:
        """One write that locks the caller's record of `kind` with `key` and hands it to `act`,
        with the one `now` of the change."""

        async def work(session: AsyncSession) -> StoredResponse:
            record = await self._owned(session, kind, key, request.organisation_id, lock=True)
            return await act(session, record, self._clock())

        return await self._writer.write(request, work)

    async def _write_to_request(
        self,
        request: WriteRequest,
        request_id: UUID,
        act: Callable[
            [AsyncSession, Request, Vacancy, Setting, datetime], Awaitable[StoredResponse]
        ],
    ) -> StoredResponse:
        """One write that locks a request sent to the caller, with its vacancy and setting (see
        `_answer_locked`), and hands them to `act` with the one `now` of the change."""

        async def work(session: AsyncSession) -> StoredResponse:
            asked, vacancy, setting = await self._answer_locked(
                session, request_id, request.organisation_id
            )
            return await act(session, asked, vacancy, setting, self._clock())

        return await self._writer.write(request, work)

    async def _save_and_emit(
        self,
        session: AsyncSession,
        record: Versioned,
        event: ProviderEvent,
        *,
        now: datetime,
        new: bool = False,
    ) -> None:
        """Write `record` at its new version (add it, when `new`) and emit `event` as its
        aggregate's at that version (every versioned record is its own aggregate)."""
        if new:
            session.add(record)
        else:
            await store.save(session, record)
        await self._writer.emit(
            session,
            event,
            organisation_id=event.provider_id,
            aggregate_id=_aggregate_id(record),
            sequence=record.version,
            occurred_at=now,
        )

    async def _save_request_change(
        self,
        session: AsyncSession,
        changed: Request,
        bumped: Vacancy,
        event: ProviderEvent,
        now: datetime,
    ) -> None:
        """A request's change is an event of its vacancy's: both written, the vacancy's version."""
        await store.save(session, changed)
        await self._save_and_emit(session, bumped, event, now=now)

    async def _setting_view(self, session: AsyncSession, setting: Setting) -> SettingView:
        return SettingView.of(setting, await store.capacity(session, setting))

    def _vacancy_view(self, vacancy: Vacancy, beds_held: int = 0) -> VacancyView:
        return VacancyView.of(vacancy, self.vacancy_expire_after, beds_held)

    async def _vacancy_views(
        self, session: AsyncSession, vacancies: Sequence[Vacancy]
    ) -> list[VacancyView]:
        held = await store.beds_held(session, [vacancy.vacancy_id for vacancy in vacancies])
        return [self._vacancy_view(v, held.get(v.vacancy_id, 0)) for v in vacancies]

    async def _release_offers(
        self,
        session: AsyncSession,
        vacancies: dict[UUID, Vacancy],
        holding: Iterable[Request],
        reason: OfferWithdrawalReason,
        now: datetime,
    ) -> dict[UUID, Vacancy]:
        """Release the holds of `holding` (their vacancies locked, in `vacancies`), one event each.

        Returns the vacancies at their new versions; a vacancy's later event follows them.
        """
        for request in holding:
            released, bumped, event = domain.release_offer(
                request, vacancies[request.vacancy_id], reason, now
            )
            vacancies[bumped.vacancy_id] = bumped
            await self._save_request_change(session, released, bumped, event, now)
        return vacancies

    # --- settings ---------------------------------------------------------------------------------

    async def register_setting(
        self, request: WriteRequest, body: RegisterSetting
    ) -> StoredResponse:
        async def work(session: AsyncSession) -> StoredResponse:
            now = self._clock()
            setting, registered = domain.register_setting(
                uuid4(), request.organisation_id, body, body.authority_code, now, profile=body
            )
            await self._save_and_emit(session, setting, registered, now=now, new=True)
            return _answer(CREATED, await self._setting_view(session, setting))

        return await self._writer.write(request, work)

    async def update_setting(
        self, request: WriteRequest, setting_id: UUID, body: UpdateSetting
    ) -> StoredResponse:
        async def update(session: AsyncSession, setting: Setting, now: datetime) -> StoredResponse:
            capacity = await store.capacity(session, setting)
            decided = domain.update_setting(setting, body.changes(), capacity, now)
            if decided is None:
                return _answer(OK, SettingView.of(setting, capacity))
            updated, event = decided
            await self._save_and_emit(session, updated, event, now=now)
            return _answer(OK, await self._setting_view(session, updated))

        return await self._write_to_owned(request, Setting, setting_id, update)

    async def close_setting(
        self, request: WriteRequest, setting_id: UUID, body: CloseSetting
    ) -> StoredResponse:
        async def close(session: AsyncSession, setting: Setting, now: datetime) -> StoredResponse:
            closed, event = domain.close_setting(setting, body.closed_on, now)
            holding = await store.holding_requests(session, setting_id=setting_id)
            await self._release_offers(
                session,
                await self._locked_vacancies(session, {r.vacancy_id for r in holding}),
                holding,
                OfferWithdrawalReason.SETTING_CLOSED,
                now,
            )
            await self._save_and_emit(session, closed, event, now=now)
            return _answer(OK, await self._setting_view(session, closed))

        return await self._write_to_owned(request, Setting, setting_id, close)

    async def setting(self, provider_id: str, setting_id: UUID) -> SettingView:
        async with self._sessions() as session:
            setting = await self._owned(session, Setting, setting_id, provider_id, lock=False)
            return await self._setting_view(session, setting)

    async def setting_profile(self, reader: Principal, setting_id: UUID) -> SettingProfileView:
        """Any council reads a setting's profile; of the providers, only its own."""
        async with self._sessions() as session:
            setting = await store.load(session, Setting, setting_id, lock=False)
        if setting is None:
            raise NotFoundError(f"no setting {setting_id}")
        if reader.role is not Role.AUTHORITY:
            domain.check_owned_by(setting.provider_id, reader.provider_id or "", "setting")
        return SettingProfileView.of(setting)

    async def settings(self, provider_id: str, status: SettingStatus | None) -> list[SettingView]:
        async with self._sessions() as session:
            settings = await store.of_provider(session, Setting, provider_id, status)
            capacities = await store.capacities(session, settings)
        return [SettingView.of(s, capacities[s.setting_id]) for s in settings]

    # --- vacancies --------------------------------------------------------------------------------

    async def post_vacancy(self, request: WriteRequest, body: PostVacancy) -> StoredResponse:
        async def work(session: AsyncSession) -> StoredResponse:
            # The setting's lock serialises every capacity check at it.
            setting = await self._owned(
                session, Setting, body.setting_id, request.organisation_id, lock=True
            )
            capacity = await store.capacity(session, setting)
            now = self._clock()
            vacancy, posted = domain.post_vacancy(uuid4(), setting, capacity, body, now)
            await self._save_and_emit(session, vacancy, posted, now=now, new=True)
            return _answer(CREATED, self._vacancy_view(vacancy))

        return await self._writer.write(request, work)

    async def confirm_vacancy(self, request: WriteRequest, vacancy_id: UUID) -> StoredResponse:
        async def confirm(session: AsyncSession, vacancy: Vacancy, now: datetime) -> StoredResponse:
            setting = await self._owned(
                session, Setting, vacancy.setting_id, request.organisation_id, lock=False
            )
            confirmed, event = domain.confirm_vacancy(vacancy, setting, now)
            await self._save_and_emit(session, confirmed, event, now=now)
            return _answer(OK, self._vacancy_view(confirmed))

        return await self._write_to_owned(request, Vacancy, vacancy_id, confirm)

    async def withdraw_vacancy(
        self, request: WriteRequest, vacancy_id: UUID, body: WithdrawVacancy
    ) -> StoredResponse:
        async def withdraw(
            session: AsyncSession, vacancy: Vacancy, now: datetime
        ) -> StoredResponse:
            domain.check_vacancy_open(vacancy)
            released = await self._release_offers(
                session,
                {vacancy_id: vacancy},
                await store.holding_requests(session, vacancy_ids=[vacancy_id]),
                OfferWithdrawalReason.VACANCY_WITHDRAWN,
                now,
            )
            withdrawn, event = domain.withdraw(released[vacancy_id], body.reason, now)
            await self._save_and_emit(session, withdrawn, event, now=now)
            return _answer(OK, self._vacancy_view(withdrawn))

        return await self._write_to_owned(request, Vacancy, vacancy_id, withdraw)

    async def vacancy(self, provider_id: str, vacancy_id: UUID) -> VacancyView:
        async with self._sessions() as session:
            vacancy = await self._owned(session, Vacancy, vacancy_id, provider_id, lock=False)
            (view,) = await self._vacancy_views(session, [vacancy])
        return view

    async def vacancies(
        self, provider_id: str, status: VacancyStatus | None, setting_id: UUID | None
    ) -> list[VacancyView]:
        async with self._sessions() as session:
            vacancies = await store.of_provider(session, Vacancy, provider_id, status, setting_id)
            return await self._vacancy_views(session, vacancies)

    async def expire_stale_vacancies(self, batch_size: int = 100) -> int:
        """Expire open vacancies not confirmed within `vacancy_expire_after`, a batch at a time.

        Each batch is one transaction with an outbox row per vacancy; rows another writer holds
        (a confirmation in flight, another instance's batch) are skipped and looked at next time.
        """
        expired = 0
        while True:
            async with self._writer.transaction() as session:
                now = self._clock()
                stale = await store.lock_stale_vacancies(
                    session, now - self.vacancy_expire_after, batch_size
                )
                holding = await store.holding_requests(
                    session, vacancy_ids=[vacancy.vacancy_id for vacancy in stale]
                )
                released = await self._release_offers(
                    session,
                    {vacancy.vacancy_id: vacancy for vacancy in stale},
                    holding,
                    OfferWithdrawalReason.VACANCY_EXPIRED,
                    now,
                )
                for vacancy in stale:
                    gone, event = domain.expire(released[vacancy.vacancy_id], now)
                    await self._save_and_emit(session, gone, event, now=now)
            expired += len(stale)
            if len(stale) < batch_size:
                return expired

    async def stale_vacancies(self) -> int:
        """How many open vacancies are past their confirmation deadline (expiry's backlog)."""
        async with self._sessions() as session:
            return await store.count_stale_vacancies(
                session, self._clock() - self.vacancy_expire_after
            )

    # --- placement requests: the inbox fills them from referral.events; the provider answers ----

    async def _locked_vacancies(
        self, session: AsyncSession, vacancy_ids: Iterable[UUID]
    ) -> dict[UUID, Vacancy]:
        vacancies: dict[UUID, Vacancy] = {}
        for vacancy_id in sorted(vacancy_ids):
            vacancy = await store.load(session, Vacancy, vacancy_id, lock=True)
            assert vacancy is not None, "a request's vacancy is never deleted"
            vacancies[vacancy_id] = vacancy
        return vacancies

    @staticmethod
    async def _sent_to(
        session: AsyncSession, request_id: UUID, provider_id: str, *, lock: bool
    ) -> Request:
        """The request, if it was sent to this provider: another's is as unknown as no request."""
        request = await store.load(session, Request, request_id, lock=lock)
        if request is None or request.provider_id != provider_id:
            raise NotFoundError(f"no request {request_id}")
        return request

    async def _answer_locked(
        self, session: AsyncSession, request_id: UUID, provider_id: str
    ) -> tuple[Request, Vacancy, Setting]:
        """The request with its setting and vacancy, locked setting, vacancy, then request."""
        found = await self._sent_to(session, request_id, provider_id, lock=False)
        setting = await store.load(session, Setting, found.setting_id, lock=True)
        vacancy = await store.load(session, Vacancy, found.vacancy_id, lock=True)
        assert setting is not None, "a request's setting is never deleted"
        assert vacancy is not None, "a request's vacancy is never deleted"
        request = await self._sent_to(session, request_id, provider_id, lock=True)
        return request, vacancy, setting

    async def offer_placement(
        self, request: WriteRequest, request_id: UUID, body: OfferPlacement
    ) -> StoredResponse:
        async def offer(
            session: AsyncSession, asked: Request, vacancy: Vacancy, setting: Setting, now: datetime
        ) -> StoredResponse:
            held = await store.beds_held(session, [vacancy.vacancy_id])
            capacity = await store.capacity(session, setting)
            hold = self.offer_hold if body.hold_hours is None else timedelta(hours=body.hold_hours)
            offered, bumped, event = domain.offer_placement(
                asked,
                vacancy,
                setting,
                beds=body.beds,
                held_by_others=held.get(vacancy.vacancy_id, 0),
                capacity=capacity,
                expires_at=now + hold,
                weekly_fee_gbp=body.weekly_fee_gbp,
                now=now,
            )
            await self._save_request_change(session, offered, bumped, event, now)
            return _answer(OK, RequestView.of(offered))

        return await self._write_to_request(request, request_id, offer)

    async def decline_request(
        self, request: WriteRequest, request_id: UUID, body: DeclineRequest
    ) -> StoredResponse:
        async def decline(
            session: AsyncSession, asked: Request, vacancy: Vacancy, _: Setting, now: datetime
        ) -> StoredResponse:
            declined, bumped, event = domain.decline_request(asked, vacancy, body.reason, now)
            await self._save_request_change(session, declined, bumped, event, now)
            return _answer(OK, RequestView.of(declined))

        return await self._write_to_request(request, request_id, decline)

    async def expire_offers(self, batch_size: int = 100) -> int:
        """Expire offers not accepted by their `offer_expires_at`, a batch at a time: each one's
        beds are free again (`OfferExpired`)."""
        expired = 0
        while True:
            async with self._writer.transaction() as session:
                now = self._clock()
                vacancies, due = await store.lock_expired_offers(session, now, batch_size)
                for asked in due:
                    gone, bumped, event = domain.expire_offer(
                        asked, vacancies[asked.vacancy_id], now
                    )
                    vacancies[bumped.vacancy_id] = bumped
                    await self._save_request_change(session, gone, bumped, event, now)
            expired += len(due)
            if len(vacancies) < batch_size:
                return expired

    async def placement_request(self, provider_id: str, request_id: UUID) -> RequestView:
        async with self._sessions() as session:
            return RequestView.of(await self._sent_to(session, request_id, provider_id, lock=False))

    async def placement_requests(
        self, provider_id: str, status: RequestStatus | None
    ) -> list[RequestView]:
        async with self._sessions() as session:
            requests = await store.of_provider(session, Request, provider_id, status)
        return [RequestView.of(request) for request in requests]

    # --- placements -------------------------------------------------------------------------------

    async def start_placement(self, request: WriteRequest, body: StartPlacement) -> StoredResponse:
        if body.request_id is not None:
            return await self._start_placement_from_offer(request, body.request_id, body)

        async def work(session: AsyncSession) -> StoredResponse:
            assert body.setting_id is not None, "validated: required without a request_id"
            setting = await self._owned(
                session, Setting, body.setting_id, request.organisation_id, lock=True
            )
            vacancy = (
                None
                if body.vacancy_id is None
                else await store.load(session, Vacancy, body.vacancy_id, lock=False)
            )
            capacity = await store.capacity(session, setting)
            now = self._clock()
            placement, started = domain.start_placement(
                uuid4(), setting, capacity, body.terms(), vacancy=vacancy, now=now
            )
            await self._save_and_emit(session, placement, started, now=now, new=True)
            return _answer(CREATED, PlacementView.of(placement))

        return await self._writer.write(request, work)

    async def _start_placement_from_offer(
        self, request: WriteRequest, request_id: UUID, body: StartPlacement
    ) -> StoredResponse:
        """The accepted offer's held beds become a placement, its vacancy fewer beds or filled."""

        async def place(
            session: AsyncSession,
            accepted: Request,
            vacancy: Vacancy,
            setting: Setting,
            now: datetime,
        ) -> StoredResponse:
            decided = domain.start_placement_from_offer(
                uuid4(),
                accepted,
                setting,
                vacancy,
                start_date=body.start_date,
                beds=body.beds,
                setting_id=body.setting_id,
                vacancy_id=body.vacancy_id,
                placing_authority_code=body.placing_authority_code,
                now=now,
            )
            placement = decided.placement
            await self._save_and_emit(
                session,
                placement,
                decided.started,
                now=now,
                new=True,
            )
            await store.save(session, decided.request)
            # No other offer holds beds of a vacancy the placement fills: offers never hold more
            # than its beds (tests/unit/test_provider_loop_properties.py).
            if decided.filled is None:
                await store.save(session, decided.vacancy)
            else:
                await self._save_and_emit(
                    session,
                    decided.vacancy,
                    decided.filled,
                    now=now,
                )
            return _answer(CREATED, PlacementView.of(decided.placement))

        return await self._write_to_request(request, request_id, place)

    async def end_placement(
        self, request: WriteRequest, placement_id: UUID, body: EndPlacement
    ) -> StoredResponse:
        async def end(session: AsyncSession, placement: Placement, now: datetime) -> StoredResponse:
            ended, event = domain.end_placement(placement, body.end_date, body.reason, now)
            await self._save_and_emit(session, ended, event, now=now)
            return _answer(OK, PlacementView.of(ended))

        return await self._write_to_owned(request, Placement, placement_id, end)

    async def placement(self, provider_id: str, placement_id: UUID) -> PlacementView:
        async with self._sessions() as session:
            placement = await self._owned(session, Placement, placement_id, provider_id, lock=False)
        return PlacementView.of(placement)

    async def placements(
        self, provider_id: str, status: PlacementStatus | None, setting_id: UUID | None
    ) -> list[PlacementView]:
        async with self._sessions() as session:
            placements = await store.of_provider(
                session, Placement, provider_id, status, setting_id
            )
        return [PlacementView.of(placement) for placement in placements]
