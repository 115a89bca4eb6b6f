"""One method per command: load what it needs (locked), ask the domain, save and emit its answer.

Every write is one transaction (the platform's `Writer`) holding the state change, exactly one
outbox row (or none, when nothing changed) and the `Idempotency-Key` claim.
"""

from datetime import datetime, timedelta
from typing import TypeVar
from uuid import UUID, uuid4

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts.events import ProviderEvent
from services.platform.auth import Principal, Role
from services.platform.clock import Clock
from services.platform.errors import NotFoundError
from services.platform.idempotency import StoredResponse
from services.platform.writes import Writer, WriteRequest
from services.provider import domain, store
from services.provider.models import (
    CloseSetting,
    EndPlacement,
    PlacementView,
    PostVacancy,
    RegisterSetting,
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
    Setting,
    SettingStatus,
    Vacancy,
    VacancyStatus,
)

# The status codes of the answers stored against an `Idempotency-Key`, replayed as they were.
CREATED = 201
OK = 200

Record = TypeVar("Record", Setting, Vacancy, Placement)


def _answer(status_code: int, view: BaseModel) -> StoredResponse:
    return StoredResponse(status_code, view.model_dump(mode="json"))


class ProviderService:
    """The provider's use cases over its database, writing through the platform's `Writer`."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        writer: Writer,
        *,
        clock: Clock,
        vacancy_expire_after: timedelta,
    ) -> None:
        self._sessions = sessions
        self._writer = writer
        self._clock = clock
        self.vacancy_expire_after = vacancy_expire_after

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

    async def _emit(
        self,
        session: AsyncSession,
        event: ProviderEvent,
        *,
        aggregate_id: UUID,
        sequence: int,
        now: datetime,
    ) -> None:
        await self._writer.emit(
            session,
            event,
            organisation_id=event.provider_id,
            aggregate_id=aggregate_id,
            sequence=sequence,
            occurred_at=now,
        )

    async def _setting_view(self, session: AsyncSession, setting: Setting) -> SettingView:
        return SettingView.of(setting, await store.capacity(session, setting))

    def _vacancy_view(self, vacancy: Vacancy) -> VacancyView:
        return VacancyView.of(vacancy, self.vacancy_expire_after)

    # --- settings ---------------------------------------------------------------------------------

    async def register_setting(
        self, request: WriteRequest, body: RegisterSetting
    ) -> StoredResponse:
        async def work(session: AsyncSession) -> StoredResponse:
            now = self._clock()
            setting, registered = domain.register_setting(
                uuid4(), request.organisation_id, body, body.authority_code, now, profile=body
            )
            session.add(setting)
            await self._emit(
                session,
                registered,
                aggregate_id=setting.setting_id,
                sequence=setting.version,
                now=now,
            )
            return _answer(CREATED, await self._setting_view(session, setting))

        return await self._writer.write(request, work)

    async def update_setting(
        self, request: WriteRequest, setting_id: UUID, body: UpdateSetting
    ) -> StoredResponse:
        async def work(session: AsyncSession) -> StoredResponse:
            setting = await self._owned(
                session, Setting, setting_id, request.organisation_id, lock=True
            )
            capacity = await store.capacity(session, setting)
            now = self._clock()
            decided = domain.update_setting(setting, body.changes(), capacity, now)
            if decided is None:
                return _answer(OK, SettingView.of(setting, capacity))
            updated, event = decided
            await store.save(session, updated)
            await self._emit(
                session, event, aggregate_id=setting_id, sequence=updated.version, now=now
            )
            return _answer(OK, await self._setting_view(session, updated))

        return await self._writer.write(request, work)

    async def close_setting(
        self, request: WriteRequest, setting_id: UUID, body: CloseSetting
    ) -> StoredResponse:
        async def work(session: AsyncSession) -> StoredResponse:
            setting = await self._owned(
                session, Setting, setting_id, request.organisation_id, lock=True
            )
            now = self._clock()
            closed, event = domain.close_setting(setting, body.closed_on, now)
            await store.save(session, closed)
            await self._emit(
                session, event, aggregate_id=setting_id, sequence=closed.version, now=now
            )
            return _answer(OK, await self._setting_view(session, closed))

        return await self._writer.write(request, work)

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
            settings = await store.settings_of(session, provider_id, status)
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
            session.add(vacancy)
            await self._emit(
                session, posted, aggregate_id=vacancy.vacancy_id, sequence=vacancy.version, now=now
            )
            return _answer(CREATED, self._vacancy_view(vacancy))

        return await self._writer.write(request, work)

    async def confirm_vacancy(self, request: WriteRequest, vacancy_id: UUID) -> StoredResponse:
        async def work(session: AsyncSession) -> StoredResponse:
            vacancy = await self._owned(
                session, Vacancy, vacancy_id, request.organisation_id, lock=True
            )
            setting = await self._owned(
                session, Setting, vacancy.setting_id, request.organisation_id, lock=False
            )
            now = self._clock()
            confirmed, event = domain.confirm_vacancy(vacancy, setting, now)
            await store.save(session, confirmed)
            await self._emit(
                session, event, aggregate_id=vacancy_id, sequence=confirmed.version, now=now
            )
            return _answer(OK, self._vacancy_view(confirmed))

        return await self._writer.write(request, work)

    async def withdraw_vacancy(
        self, request: WriteRequest, vacancy_id: UUID, body: WithdrawVacancy
    ) -> StoredResponse:
        async def work(session: AsyncSession) -> StoredResponse:
            vacancy = await self._owned(
                session, Vacancy, vacancy_id, request.organisation_id, lock=True
            )
            now = self._clock()
            withdrawn, event = domain.withdraw(vacancy, body.reason, now)
            await store.save(session, withdrawn)
            await self._emit(
                session, event, aggregate_id=vacancy_id, sequence=withdrawn.version, now=now
            )
            return _answer(OK, self._vacancy_view(withdrawn))

        return await self._writer.write(request, work)

    async def vacancy(self, provider_id: str, vacancy_id: UUID) -> VacancyView:
        async with self._sessions() as session:
            vacancy = await self._owned(session, Vacancy, vacancy_id, provider_id, lock=False)
        return self._vacancy_view(vacancy)

    async def vacancies(
        self, provider_id: str, status: VacancyStatus | None, setting_id: UUID | None
    ) -> list[VacancyView]:
        async with self._sessions() as session:
            vacancies = await store.vacancies_of(session, provider_id, status, setting_id)
        return [self._vacancy_view(vacancy) for vacancy in vacancies]

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
                for vacancy in stale:
                    gone, event = domain.expire(vacancy, now)
                    await store.save(session, gone)
                    await self._emit(
                        session, event, aggregate_id=gone.vacancy_id, sequence=gone.version, now=now
                    )
            expired += len(stale)
            if len(stale) < batch_size:
                return expired

    # --- placements -------------------------------------------------------------------------------

    async def start_placement(self, request: WriteRequest, body: StartPlacement) -> StoredResponse:
        async def work(session: AsyncSession) -> StoredResponse:
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
                uuid4(), setting, capacity, body, vacancy=vacancy, now=now
            )
            session.add(placement)
            await self._emit(
                session,
                started,
                aggregate_id=placement.placement_id,
                sequence=placement.version,
                now=now,
            )
            return _answer(CREATED, PlacementView.of(placement))

        return await self._writer.write(request, work)

    async def end_placement(
        self, request: WriteRequest, placement_id: UUID, body: EndPlacement
    ) -> StoredResponse:
        async def work(session: AsyncSession) -> StoredResponse:
            placement = await self._owned(
                session, Placement, placement_id, request.organisation_id, lock=True
            )
            now = self._clock()
            ended, event = domain.end_placement(placement, body.end_date, body.reason, now)
            await store.save(session, ended)
            await self._emit(
                session, event, aggregate_id=placement_id, sequence=ended.version, now=now
            )
            return _answer(OK, PlacementView.of(ended))

        return await self._writer.write(request, work)

    async def placement(self, provider_id: str, placement_id: UUID) -> PlacementView:
        async with self._sessions() as session:
            placement = await self._owned(session, Placement, placement_id, provider_id, lock=False)
        return PlacementView.of(placement)

    async def placements(
        self, provider_id: str, status: PlacementStatus | None, setting_id: UUID | None
    ) -> list[PlacementView]:
        async with self._sessions() as session:
            placements = await store.placements_of(session, provider_id, status, setting_id)
        return [PlacementView.of(placement) for placement in placements]
