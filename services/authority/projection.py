"""The authority's view of the provider side, kept from `provider.events` exactly once.

What placement requests need: settings (with their public profiles), open vacancies, beds occupied
per setting, and the providers' answers to this service's requests. A placement started from a
referral closes that referral as placed and withdraws its other requests, with the events written
to the outbox in the consumer's own transaction (services/platform/consumer.py).
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg

from contracts.envelope import Envelope, envelop
from contracts.events import (
    OfferExpired,
    OfferWithdrawn,
    PlacementDeclined,
    PlacementEnded,
    PlacementOffered,
    PlacementStarted,
    ReferralEvent,
    RequestAnswer,
    SettingClosed,
    SettingRegistered,
    SettingState,
    SettingUpdated,
    VacancyConfirmed,
    VacancyEvent,
    VacancyExpired,
    VacancyPosted,
    VacancyWithdrawn,
)
from services.authority import domain, store, tables
from services.authority.tables import (
    PlacementRequest,
    ProviderSetting,
    ProviderVacancy,
    Referral,
    SettingOccupancy,
)
from services.platform.clock import Clock, utc_now
from services.platform.errors import UnappliableEventError
from services.platform.outbox import stage_in_outbox
from services.platform.sequencing import Event

PRODUCER = "authority"


@dataclass
class ProviderViewBatch:
    """The rows one batch of events touches, as loaded (locked where it writes them)."""

    settings: dict[UUID, ProviderSetting] = field(default_factory=dict)
    vacancies: dict[UUID, ProviderVacancy] = field(default_factory=dict)
    occupancy: dict[UUID, int] = field(default_factory=dict)
    referrals: dict[UUID, Referral] = field(default_factory=dict)
    requests: dict[UUID, PlacementRequest] = field(default_factory=dict)
    changed_settings: set[UUID] = field(default_factory=set)
    changed_vacancies: set[UUID] = field(default_factory=set)
    changed_occupancy: set[UUID] = field(default_factory=set)
    changed_referrals: set[UUID] = field(default_factory=set)
    changed_requests: set[UUID] = field(default_factory=set)
    outgoing: list[Envelope[Any]] = field(default_factory=list)


def _setting_row(state: SettingState, *, is_open: bool) -> ProviderSetting:
    return ProviderSetting(
        **state.model_dump(exclude={"setting_id"}), setting_id=state.setting_id, is_open=is_open
    )


def _placement_referrals(events: Sequence[Event]) -> set[UUID]:
    return {
        event.payload.referral_id
        for event in events
        if isinstance(event.payload, PlacementStarted) and event.payload.referral_id is not None
    }


class ProviderView:
    """The consumer's projection: load the rows a batch touches, fold the events, save them."""

    def __init__(self, clock: Clock = utc_now) -> None:
        self._clock = clock

    async def load(
        self, connection: asyncpg.Connection, events: Sequence[Event]
    ) -> ProviderViewBatch:
        payloads = [event.payload for event in events]
        setting_ids = {payload.setting_id for payload in payloads}
        vacancy_ids = {p.vacancy_id for p in payloads if isinstance(p, VacancyEvent)}
        answers = [p for p in payloads if isinstance(p, RequestAnswer)]
        placed = _placement_referrals(events)
        # Referrals first, then their requests: the order the HTTP side takes the same locks in.
        referrals = await store.fetch_rows(
            connection,
            Referral,
            "referral_id",
            placed | {answer.referral_id for answer in answers},
            for_update=True,
        )
        requests = await store.fetch_rows(
            connection,
            PlacementRequest,
            "request_id",
            {answer.request_id for answer in answers},
            for_update=True,
        ) + await store.fetch_rows(
            connection, PlacementRequest, "referral_id", placed, for_update=True
        )
        settings = await store.fetch_rows(connection, ProviderSetting, "setting_id", setting_ids)
        occupancy = await store.fetch_rows(connection, SettingOccupancy, "setting_id", setting_ids)
        vacancies = await store.fetch_rows(connection, ProviderVacancy, "vacancy_id", vacancy_ids)
        return ProviderViewBatch(
            settings={s.setting_id: s for s in settings},
            vacancies={v.vacancy_id: v for v in vacancies},
            occupancy={o.setting_id: o.occupied_beds for o in occupancy},
            referrals={r.referral_id: r for r in referrals},
            requests={r.request_id: r for r in requests},
        )

    def apply(self, batch: ProviderViewBatch, event: Event) -> None:  # noqa: C901 - one branch per event type
        payload = event.payload
        match payload:
            case SettingRegistered():
                batch.settings[payload.setting_id] = _setting_row(payload, is_open=True)
                batch.changed_settings.add(payload.setting_id)
            case SettingUpdated():
                known = batch.settings.get(payload.setting_id)
                is_open = known.is_open if known is not None else True
                batch.settings[payload.setting_id] = _setting_row(payload, is_open=is_open)
                batch.changed_settings.add(payload.setting_id)
            case SettingClosed():
                setting = self._setting(batch, payload.setting_id)
                setting.is_open = False
                batch.changed_settings.add(payload.setting_id)
            case VacancyPosted():
                batch.vacancies[payload.vacancy_id] = ProviderVacancy(
                    **payload.model_dump(), is_open=True
                )
                batch.changed_vacancies.add(payload.vacancy_id)
            case VacancyConfirmed():
                pass  # still open, on the same terms: nothing a request reads changes
            case VacancyWithdrawn() | VacancyExpired():
                vacancy = batch.vacancies.get(payload.vacancy_id)
                if vacancy is None:
                    raise UnappliableEventError(f"no vacancy {payload.vacancy_id} to close")
                vacancy.is_open = False
                batch.changed_vacancies.add(payload.vacancy_id)
            case PlacementStarted():
                self._occupy(batch, payload.setting_id, payload.beds)
                if payload.referral_id is not None:
                    self._place(batch, payload)
            case PlacementEnded():
                self._occupy(batch, payload.setting_id, -payload.beds)
            case PlacementOffered() | PlacementDeclined() | OfferExpired() | OfferWithdrawn():
                self._answer(batch, payload)
            case _:
                raise UnappliableEventError(
                    f"the authority's provider view does not handle {event.event_type}"
                )

    @staticmethod
    def _setting(batch: ProviderViewBatch, setting_id: UUID) -> ProviderSetting:
        setting = batch.settings.get(setting_id)
        if setting is None:
            raise UnappliableEventError(f"no setting {setting_id}")
        return setting

    @staticmethod
    def _occupy(batch: ProviderViewBatch, setting_id: UUID, beds: int) -> None:
        batch.occupancy[setting_id] = max(batch.occupancy.get(setting_id, 0) + beds, 0)
        batch.changed_occupancy.add(setting_id)

    def _answer(self, batch: ProviderViewBatch, answer: RequestAnswer) -> None:
        request = batch.requests.get(answer.request_id)
        if request is None:
            # Every request this service sends is committed before the provider can see it, so an
            # answer to an unknown one is about another exchange's request on a shared topic.
            return
        if (request.referral_id, request.vacancy_id, request.authority_code) != (
            answer.referral_id,
            answer.vacancy_id,
            answer.authority_code,
        ):
            raise UnappliableEventError(
                f"{type(answer).__name__} for request {answer.request_id} names another "
                "referral, vacancy or council than the request"
            )
        answered = domain.record_answer(request, answer, self._clock())
        if answered is not None:
            batch.requests[answered.request_id] = answered
            batch.changed_requests.add(answered.request_id)

    def _place(self, batch: ProviderViewBatch, placement: PlacementStarted) -> None:
        assert placement.referral_id is not None
        referral = batch.referrals.get(placement.referral_id)
        if referral is None or referral.authority_code != placement.placing_authority_code:
            return  # not a referral of the placing council here: only the beds change
        requests = sorted(
            (r for r in batch.requests.values() if r.referral_id == referral.referral_id),
            key=lambda r: (r.requested_at, r.request_id),
        )
        now = self._clock()
        placed, changed, events = domain.place_referral(
            referral,
            requests,
            request_id=placement.request_id,
            placement_id=placement.placement_id,
            now=now,
        )
        batch.referrals[placed.referral_id] = placed
        batch.changed_referrals.add(placed.referral_id)
        for request in changed:
            batch.requests[request.request_id] = request
            batch.changed_requests.add(request.request_id)
        first = placed.version - len(events) + 1
        for sequence, event in enumerate(events, start=first):
            batch.outgoing.append(self._envelope(placed, event, sequence))

    def _envelope(self, referral: Referral, event: ReferralEvent, sequence: int) -> Envelope[Any]:
        return envelop(
            event,
            producer=PRODUCER,
            organisation_id=referral.authority_code,
            aggregate_id=referral.referral_id,
            sequence=sequence,
            occurred_at=referral.updated_at,
        )

    async def save(self, connection: asyncpg.Connection, batch: ProviderViewBatch) -> None:
        await store.upsert_rows(
            connection, ProviderSetting, [batch.settings[i] for i in sorted(batch.changed_settings)]
        )
        await store.upsert_rows(
            connection,
            ProviderVacancy,
            [batch.vacancies[i] for i in sorted(batch.changed_vacancies)],
        )
        await store.upsert_rows(
            connection,
            SettingOccupancy,
            [
                SettingOccupancy(setting_id=i, occupied_beds=batch.occupancy[i])
                for i in sorted(batch.changed_occupancy)
            ],
        )
        await store.update_referral_lifecycles(
            connection, [batch.referrals[i] for i in sorted(batch.changed_referrals)]
        )
        await store.upsert_rows(
            connection,
            PlacementRequest,
            [batch.requests[i] for i in sorted(batch.changed_requests)],
        )
        await stage_in_outbox(connection, tables.OUTBOX, batch.outgoing)
