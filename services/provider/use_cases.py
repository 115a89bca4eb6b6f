"""One function per command: load state (locked), check the rules, write state and its event.

Every write is one transaction holding the state change, exactly one outbox row (or none, when
nothing changed) and the `Idempotency-Key` claim; the relay is woken once it commits.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts.envelope import envelop
from contracts.events import (
    PlacementEnded,
    PlacementStarted,
    ProviderEvent,
    SettingClosed,
    SettingRegistered,
    SettingUpdated,
    VacancyConfirmed,
    VacancyExpired,
    VacancyPosted,
    VacancyWithdrawn,
)
from services.platform.errors import ConflictError, NotFoundError
from services.platform.idempotency import StoredResponse, run_once
from services.provider import domain, store
from services.provider.domain import (
    Placement,
    PlacementStatus,
    Setting,
    SettingStatus,
    Vacancy,
    VacancyStatus,
    VacancyTerms,
)
from services.provider.models import (
    CloseSetting,
    EndPlacement,
    PlacementView,
    PostVacancy,
    RegisterSetting,
    SettingView,
    StartPlacement,
    UpdateSetting,
    VacancyView,
    WithdrawVacancy,
)

PRODUCER = "provider"
CREATED = 201
OK = 200

Clock = Callable[[], datetime]
Work = Callable[[AsyncSession], Awaitable[StoredResponse]]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """Who asks, and how to recognise the same request sent again."""

    provider_id: str
    idempotency_key: str | None
    fingerprint: str


def _answer(status_code: int, view: BaseModel) -> StoredResponse:
    return StoredResponse(status_code, view.model_dump(mode="json"))


def _setting_event_fields(setting: Setting) -> dict[str, Any]:
    return {
        "setting_id": setting.setting_id,
        "provider_id": setting.provider_id,
        "placement_type": setting.placement_type,
        "registered_places": setting.registered_places,
        "ofsted_rating": setting.ofsted_rating,
        "age_min": setting.age_min,
        "age_max": setting.age_max,
        "sexes_accepted": setting.sexes_accepted,
        "needs_met": setting.needs_met,
        "postcode_district": setting.postcode_district,
        "authority_code": setting.authority_code,
    }


def _as_request_error(error: ValidationError) -> RequestValidationError:
    """A merged state that fails its contract is bad input: a 422 naming the field."""
    return RequestValidationError(
        [
            {"type": e["type"], "loc": ("body", *e["loc"]), "msg": e["msg"], "input": e["input"]}
            for e in error.errors()
        ]
    )


def _check_merged_ages(setting: Setting, changes: dict[str, Any]) -> None:
    """A PATCH of one end of the age range must still leave it in order: 422 naming that end."""
    age_min = changes.get("age_min", setting.age_min)
    age_max = changes.get("age_max", setting.age_max)
    if age_min > age_max:
        field = "age_min" if "age_min" in changes else "age_max"
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("body", field),
                    "msg": f"age_min ({age_min}) must not be greater than age_max ({age_max})",
                    "input": changes[field],
                }
            ]
        )


class ProviderService:
    """The provider's use cases over its database; `on_commit` wakes the outbox relay."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        on_commit: Callable[[], None],
        vacancy_expire_after: timedelta,
        clock: Clock = utc_now,
    ) -> None:
        self._sessions = sessions
        self._on_commit = on_commit
        self.vacancy_expire_after = vacancy_expire_after
        self._clock = clock

    # --- plumbing ---------------------------------------------------------------------------------

    async def _write(self, request: WriteRequest, work: Work) -> StoredResponse:
        async with self._sessions() as session, session.begin():
            answer = await run_once(
                session,
                store.IDEMPOTENCY_KEYS,
                organisation_id=request.provider_id,
                key=request.idempotency_key,
                fingerprint=request.fingerprint,
                work=lambda: work(session),
            )
        self._on_commit()
        return answer

    @staticmethod
    async def _emit(
        session: AsyncSession,
        payload: ProviderEvent,
        *,
        aggregate_id: UUID,
        sequence: int,
        occurred_at: datetime,
    ) -> None:
        await store.add_event(
            session,
            envelop(
                payload,
                producer=PRODUCER,
                organisation_id=payload.provider_id,
                aggregate_id=aggregate_id,
                sequence=sequence,
                occurred_at=occurred_at,
            ),
        )

    @staticmethod
    async def _owned_setting(
        session: AsyncSession, setting_id: UUID, provider_id: str, *, lock: bool
    ) -> Setting:
        setting = await store.load_setting(session, setting_id, lock=lock)
        if setting is None:
            raise NotFoundError(f"no setting {setting_id}")
        domain.check_owned_by(setting.provider_id, provider_id, "setting")
        return setting

    @staticmethod
    async def _owned_vacancy(
        session: AsyncSession, vacancy_id: UUID, provider_id: str, *, lock: bool
    ) -> Vacancy:
        vacancy = await store.load_vacancy(session, vacancy_id, lock=lock)
        if vacancy is None:
            raise NotFoundError(f"no vacancy {vacancy_id}")
        domain.check_owned_by(vacancy.provider_id, provider_id, "vacancy")
        return vacancy

    @staticmethod
    async def _owned_placement(
        session: AsyncSession, placement_id: UUID, provider_id: str, *, lock: bool
    ) -> Placement:
        placement = await store.load_placement(session, placement_id, lock=lock)
        if placement is None:
            raise NotFoundError(f"no placement {placement_id}")
        domain.check_owned_by(placement.provider_id, provider_id, "placement")
        return placement

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
            authority_code = body.authority_code or domain.council_of_district(
                body.postcode_district
            )
            setting = Setting(
                setting_id=uuid4(),
                provider_id=request.provider_id,
                status=SettingStatus.OPEN,
                placement_type=body.placement_type,
                registered_places=body.registered_places,
                ofsted_rating=body.ofsted_rating,
                age_min=body.age_min,
                age_max=body.age_max,
                sexes_accepted=body.sexes_accepted,
                needs_met=body.needs_met,
                postcode_district=body.postcode_district,
                authority_code=authority_code,
                closed_on=None,
                version=1,
                registered_at=now,
                updated_at=now,
            )
            await store.insert_setting(session, setting)
            await self._emit(
                session,
                SettingRegistered(**_setting_event_fields(setting)),
                aggregate_id=setting.setting_id,
                sequence=setting.version,
                occurred_at=now,
            )
            return _answer(CREATED, await self._setting_view(session, setting))

        return await self._write(request, work)

    async def update_setting(
        self, request: WriteRequest, setting_id: UUID, body: UpdateSetting
    ) -> StoredResponse:
        async def work(session: AsyncSession) -> StoredResponse:
            setting = await self._owned_setting(session, setting_id, request.provider_id, lock=True)
            domain.check_setting_open(setting)
            changes = body.changes()
            if "postcode_district" in changes and "authority_code" not in changes:
                changes["authority_code"] = domain.council_of_district(changes["postcode_district"])
            _check_merged_ages(setting, changes)
            current = _setting_event_fields(setting)
            try:
                wanted = SettingUpdated.model_validate({**current, **changes})
            except ValidationError as error:
                raise _as_request_error(error) from error
            if wanted == SettingUpdated.model_validate(current):
                return _answer(OK, await self._setting_view(session, setting))
            domain.check_registered_places_cover_occupied(
                wanted.registered_places, await store.capacity(session, setting)
            )
            now = self._clock()
            updated = replace(
                setting,
                placement_type=wanted.placement_type,
                registered_places=wanted.registered_places,
                ofsted_rating=wanted.ofsted_rating,
                age_min=wanted.age_min,
                age_max=wanted.age_max,
                sexes_accepted=wanted.sexes_accepted,
                needs_met=wanted.needs_met,
                postcode_district=wanted.postcode_district,
                authority_code=wanted.authority_code,
                version=setting.version + 1,
                updated_at=now,
            )
            await store.save_setting(session, updated)
            await self._emit(
                session,
                wanted,
                aggregate_id=setting_id,
                sequence=updated.version,
                occurred_at=now,
            )
            return _answer(OK, await self._setting_view(session, updated))

        return await self._write(request, work)

    async def close_setting(
        self, request: WriteRequest, setting_id: UUID, body: CloseSetting
    ) -> StoredResponse:
        async def work(session: AsyncSession) -> StoredResponse:
            setting = await self._owned_setting(session, setting_id, request.provider_id, lock=True)
            domain.check_setting_open(setting)
            now = self._clock()
            closed_on = body.closed_on or now.date()
            closed = replace(
                setting,
                status=SettingStatus.CLOSED,
                closed_on=closed_on,
                version=setting.version + 1,
                updated_at=now,
            )
            await store.save_setting(session, closed)
            await self._emit(
                session,
                SettingClosed(
                    setting_id=setting_id,
                    provider_id=setting.provider_id,
                    closed_on=closed_on,
                ),
                aggregate_id=setting_id,
                sequence=closed.version,
                occurred_at=now,
            )
            return _answer(OK, await self._setting_view(session, closed))

        return await self._write(request, work)

    async def setting(self, provider_id: str, setting_id: UUID) -> SettingView:
        async with self._sessions() as session:
            setting = await self._owned_setting(session, setting_id, provider_id, lock=False)
            return await self._setting_view(session, setting)

    async def settings(self, provider_id: str, status: SettingStatus | None) -> list[SettingView]:
        async with self._sessions() as session:
            settings = await store.settings_of(session, provider_id, status)
            capacities = await store.capacities(session, settings)
        return [SettingView.of(s, capacities[s.setting_id]) for s in settings]

    # --- vacancies --------------------------------------------------------------------------------

    async def post_vacancy(self, request: WriteRequest, body: PostVacancy) -> StoredResponse:
        async def work(session: AsyncSession) -> StoredResponse:
            # The setting's lock serialises every capacity check at it.
            setting = await self._owned_setting(
                session, body.setting_id, request.provider_id, lock=True
            )
            domain.check_setting_open(setting)
            terms = VacancyTerms(
                age_min=body.age_min,
                age_max=body.age_max,
                sexes_accepted=body.sexes_accepted,
                needs_met=body.needs_met,
            )
            domain.check_vacancy_fits_setting(terms, setting)
            domain.check_room_for_vacancy(body.beds, await store.capacity(session, setting))
            now = self._clock()
            vacancy = Vacancy(
                vacancy_id=uuid4(),
                setting_id=setting.setting_id,
                provider_id=request.provider_id,
                status=VacancyStatus.OPEN,
                beds=body.beds,
                available_from=body.available_from,
                terms=terms,
                withdrawal_reason=None,
                posted_at=now,
                last_confirmed_at=now,
                ended_at=None,
                version=1,
            )
            await store.insert_vacancy(session, vacancy)
            await self._emit(
                session,
                VacancyPosted(
                    setting_id=vacancy.setting_id,
                    provider_id=vacancy.provider_id,
                    vacancy_id=vacancy.vacancy_id,
                    beds=vacancy.beds,
                    available_from=vacancy.available_from,
                    age_min=terms.age_min,
                    age_max=terms.age_max,
                    sexes_accepted=terms.sexes_accepted,
                    needs_met=terms.needs_met,
                ),
                aggregate_id=vacancy.vacancy_id,
                sequence=vacancy.version,
                occurred_at=now,
            )
            return _answer(CREATED, self._vacancy_view(vacancy))

        return await self._write(request, work)

    async def confirm_vacancy(self, request: WriteRequest, vacancy_id: UUID) -> StoredResponse:
        async def work(session: AsyncSession) -> StoredResponse:
            vacancy = await self._owned_vacancy(session, vacancy_id, request.provider_id, lock=True)
            domain.check_vacancy_open(vacancy)
            setting = await self._owned_setting(
                session, vacancy.setting_id, request.provider_id, lock=False
            )
            domain.check_setting_open(setting)
            now = self._clock()
            confirmed = replace(vacancy, last_confirmed_at=now, version=vacancy.version + 1)
            await store.save_vacancy(session, confirmed)
            await self._emit(
                session,
                VacancyConfirmed(
                    setting_id=vacancy.setting_id,
                    provider_id=vacancy.provider_id,
                    vacancy_id=vacancy_id,
                    confirmed_at=now,
                ),
                aggregate_id=vacancy_id,
                sequence=confirmed.version,
                occurred_at=now,
            )
            return _answer(OK, self._vacancy_view(confirmed))

        return await self._write(request, work)

    async def withdraw_vacancy(
        self, request: WriteRequest, vacancy_id: UUID, body: WithdrawVacancy
    ) -> StoredResponse:
        async def work(session: AsyncSession) -> StoredResponse:
            vacancy = await self._owned_vacancy(session, vacancy_id, request.provider_id, lock=True)
            domain.check_vacancy_open(vacancy)
            now = self._clock()
            withdrawn = replace(
                vacancy,
                status=VacancyStatus.WITHDRAWN,
                withdrawal_reason=body.reason,
                ended_at=now,
                version=vacancy.version + 1,
            )
            await store.save_vacancy(session, withdrawn)
            await self._emit(
                session,
                VacancyWithdrawn(
                    setting_id=vacancy.setting_id,
                    provider_id=vacancy.provider_id,
                    vacancy_id=vacancy_id,
                    reason=body.reason,
                ),
                aggregate_id=vacancy_id,
                sequence=withdrawn.version,
                occurred_at=now,
            )
            return _answer(OK, self._vacancy_view(withdrawn))

        return await self._write(request, work)

    async def vacancy(self, provider_id: str, vacancy_id: UUID) -> VacancyView:
        async with self._sessions() as session:
            vacancy = await self._owned_vacancy(session, vacancy_id, provider_id, lock=False)
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
            async with self._sessions() as session, session.begin():
                now = self._clock()
                stale = await store.lock_stale_vacancies(
                    session, now - self.vacancy_expire_after, batch_size
                )
                for vacancy in stale:
                    await self._expire(session, vacancy, now)
            if stale:
                self._on_commit()
            expired += len(stale)
            if len(stale) < batch_size:
                return expired

    async def _expire(self, session: AsyncSession, vacancy: Vacancy, now: datetime) -> None:
        gone = replace(
            vacancy, status=VacancyStatus.EXPIRED, ended_at=now, version=vacancy.version + 1
        )
        await store.save_vacancy(session, gone)
        await self._emit(
            session,
            VacancyExpired(
                setting_id=vacancy.setting_id,
                provider_id=vacancy.provider_id,
                vacancy_id=vacancy.vacancy_id,
                last_confirmed_at=vacancy.last_confirmed_at,
            ),
            aggregate_id=vacancy.vacancy_id,
            sequence=gone.version,
            occurred_at=now,
        )

    # --- placements -------------------------------------------------------------------------------

    async def start_placement(self, request: WriteRequest, body: StartPlacement) -> StoredResponse:
        async def work(session: AsyncSession) -> StoredResponse:
            setting = await self._owned_setting(
                session, body.setting_id, request.provider_id, lock=True
            )
            domain.check_setting_open(setting)
            if body.vacancy_id is not None:
                await self._check_open_vacancy_at(session, body.vacancy_id, setting)
            domain.check_room_for_placement(body.beds, await store.capacity(session, setting))
            now = self._clock()
            placement = Placement(
                placement_id=uuid4(),
                setting_id=setting.setting_id,
                provider_id=request.provider_id,
                status=PlacementStatus.ACTIVE,
                placing_authority_code=body.placing_authority_code,
                start_date=body.start_date,
                beds=body.beds,
                vacancy_id=body.vacancy_id,
                end_date=None,
                end_reason=None,
                version=1,
                recorded_at=now,
                ended_at=None,
            )
            await store.insert_placement(session, placement)
            await self._emit(
                session,
                PlacementStarted(
                    setting_id=placement.setting_id,
                    provider_id=placement.provider_id,
                    placement_id=placement.placement_id,
                    placing_authority_code=placement.placing_authority_code,
                    start_date=placement.start_date,
                    beds=placement.beds,
                    vacancy_id=placement.vacancy_id,
                ),
                aggregate_id=placement.placement_id,
                sequence=placement.version,
                occurred_at=now,
            )
            return _answer(CREATED, PlacementView.of(placement))

        return await self._write(request, work)

    @staticmethod
    async def _check_open_vacancy_at(
        session: AsyncSession, vacancy_id: UUID, setting: Setting
    ) -> None:
        vacancy = await store.load_vacancy(session, vacancy_id, lock=False)
        if vacancy is None or vacancy.setting_id != setting.setting_id:
            raise ConflictError(
                f"vacancy_id: {vacancy_id} is not a vacancy at setting {setting.setting_id}"
            )
        domain.check_vacancy_open(vacancy)

    async def end_placement(
        self, request: WriteRequest, placement_id: UUID, body: EndPlacement
    ) -> StoredResponse:
        async def work(session: AsyncSession) -> StoredResponse:
            placement = await self._owned_placement(
                session, placement_id, request.provider_id, lock=True
            )
            domain.check_placement_active(placement)
            domain.check_end_date(placement, body.end_date)
            now = self._clock()
            ended = replace(
                placement,
                status=PlacementStatus.ENDED,
                end_date=body.end_date,
                end_reason=body.reason,
                ended_at=now,
                version=placement.version + 1,
            )
            await store.save_placement(session, ended)
            await self._emit(
                session,
                PlacementEnded(
                    setting_id=placement.setting_id,
                    provider_id=placement.provider_id,
                    placement_id=placement_id,
                    placing_authority_code=placement.placing_authority_code,
                    beds=placement.beds,
                    end_date=body.end_date,
                    reason=body.reason,
                ),
                aggregate_id=placement_id,
                sequence=ended.version,
                occurred_at=now,
            )
            return _answer(OK, PlacementView.of(ended))

        return await self._write(request, work)

    async def placement(self, provider_id: str, placement_id: UUID) -> PlacementView:
        async with self._sessions() as session:
            placement = await self._owned_placement(session, placement_id, provider_id, lock=False)
        return PlacementView.of(placement)

    async def placements(
        self, provider_id: str, status: PlacementStatus | None, setting_id: UUID | None
    ) -> list[PlacementView]:
        async with self._sessions() as session:
            placements = await store.placements_of(session, provider_id, status, setting_id)
        return [PlacementView.of(placement) for placement in placements]
