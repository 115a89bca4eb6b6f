"""The provider's loop, as any sequence of commands through its pure rules: every setting's beds
add up (held + occupied + free = registered places) and no vacancy ever has more beds held than
it has.

Each rule does what the service's use case does with the records it would load: refused
commands (a `ConflictError`, the service's 409) change nothing.
"""

import contextlib
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from uuid import UUID, uuid4

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from contracts.enums import (
    DeclineReason,
    Need,
    OfferWithdrawalReason,
    OfstedRating,
    PlacementEndReason,
    PlacementType,
    RequestWithdrawalReason,
    Sex,
    WithdrawalReason,
)
from contracts.events import PlacementRequested, PlacementTerms, VacancyOffer
from services.platform.errors import ConflictError
from services.provider import domain
from services.provider.domain import Capacity
from services.provider.tables import (
    HOLDING,
    Placement,
    PlacementStatus,
    Request,
    RequestStatus,
    Setting,
    SettingStatus,
    Vacancy,
    VacancyStatus,
)

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
PROVIDER = "acme-care"
SEFTON = "E08000014"

beds = st.integers(min_value=1, max_value=4)
maybe_beds = st.none() | beds


def _setting(registered_places: int) -> Setting:
    return Setting(
        setting_id=uuid4(),
        provider_id=PROVIDER,
        status=SettingStatus.OPEN,
        placement_type=PlacementType.CHILDRENS_HOME,
        registered_places=registered_places,
        ofsted_rating=OfstedRating.GOOD,
        age_min=8,
        age_max=17,
        sexes_accepted=(Sex.FEMALE, Sex.MALE),
        needs_met=(Need.SEMH,),
        postcode_district="LA9",
        authority_code="E06000064",
        version=1,
        registered_at=NOW,
        updated_at=NOW,
    )


def _requested(vacancy: Vacancy, sibling_group_size: int) -> PlacementRequested:
    return PlacementRequested(
        referral_id=uuid4(),
        authority_code=SEFTON,
        request_id=uuid4(),
        vacancy_id=vacancy.vacancy_id,
        setting_id=vacancy.setting_id,
        provider_id=vacancy.provider_id,
        age=14,
        sex=Sex.FEMALE,
        sibling_group_size=sibling_group_size,
        needs=(Need.SEMH,),
        home_postcode_district="L20",
        needed_by=date(2026, 12, 7),
        urgency="planned",
    )


class ProviderLoop(RuleBasedStateMachine):
    """One provider's settings, vacancies, requests and placements, as its rules leave them."""

    def __init__(self) -> None:
        super().__init__()
        self.settings: dict[UUID, Setting] = {}
        self.vacancies: dict[UUID, Vacancy] = {}
        self.requests: dict[UUID, Request] = {}
        self.placements: dict[UUID, Placement] = {}
        self.now = NOW

    # --- what the store would count -------------------------------------------------------------

    def held_at_vacancy(self, vacancy_id: UUID, *, sparing: UUID | None = None) -> int:
        return sum(
            request.offered_beds or 0
            for request in self.requests.values()
            if request.vacancy_id == vacancy_id
            and request.status in HOLDING
            and request.request_id != sparing
        )

    def capacity(self, setting: Setting) -> Capacity:
        here = setting.setting_id
        return Capacity(
            registered_places=setting.registered_places,
            occupied=sum(
                p.beds
                for p in self.placements.values()
                if p.setting_id == here and p.status is PlacementStatus.ACTIVE
            ),
            offered=sum(
                v.beds
                for v in self.vacancies.values()
                if v.setting_id == here and v.status is VacancyStatus.OPEN
            ),
            held=sum(
                r.offered_beds or 0
                for r in self.requests.values()
                if r.setting_id == here and r.status in HOLDING
            ),
        )

    def tick(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now

    @staticmethod
    def refused(command: Callable[[], None]) -> None:
        """Run `command`; a broken rule is a 409 that changes nothing."""
        with contextlib.suppress(ConflictError):
            command()

    @staticmethod
    def pick(data: st.DataObject, records: dict[UUID, object]) -> UUID:
        # In the order they were made: ids are random, the choice must replay the same.
        return data.draw(st.sampled_from(list(records)))

    # --- commands -------------------------------------------------------------------------------

    @initialize(places=st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=2))
    def register_settings(self, places: list[int]) -> None:
        for registered_places in places:
            setting = _setting(registered_places)
            self.settings[setting.setting_id] = setting

    @rule(data=st.data(), beds=beds)
    def post_vacancy(self, data: st.DataObject, beds: int) -> None:
        setting = self.settings[self.pick(data, self.settings)]  # type: ignore[arg-type]
        offer = VacancyOffer(beds=beds, available_from=date(2026, 12, 1))

        def post() -> None:
            vacancy, _ = domain.post_vacancy(
                uuid4(), setting, self.capacity(setting), offer, self.tick()
            )
            self.vacancies[vacancy.vacancy_id] = vacancy

        self.refused(post)

    @precondition(lambda self: self.vacancies)
    @rule(data=st.data(), group=beds)
    def receive_request(self, data: st.DataObject, group: int) -> None:
        vacancy = self.vacancies[self.pick(data, self.vacancies)]  # type: ignore[arg-type]
        request = domain.receive_request(_requested(vacancy, group), vacancy, self.tick())
        self.requests[request.request_id] = request

    def _answer(self, data: st.DataObject) -> tuple[Request, Vacancy, Setting]:
        request = self.requests[self.pick(data, self.requests)]  # type: ignore[arg-type]
        return request, self.vacancies[request.vacancy_id], self.settings[request.setting_id]

    def _keep(self, request: Request, vacancy: Vacancy | None = None) -> None:
        self.requests[request.request_id] = request
        if vacancy is not None:
            self.vacancies[vacancy.vacancy_id] = vacancy

    @precondition(lambda self: self.requests)
    @rule(data=st.data(), beds=maybe_beds)
    def offer(self, data: st.DataObject, beds: int | None) -> None:
        request, vacancy, setting = self._answer(data)

        def offer() -> None:
            offered, bumped, _ = domain.offer_placement(
                request,
                vacancy,
                setting,
                beds=beds,
                held_by_others=self.held_at_vacancy(vacancy.vacancy_id),
                capacity=self.capacity(setting),
                expires_at=self.now + timedelta(hours=24),
                weekly_fee_gbp=None,
                now=self.tick(),
            )
            self._keep(offered, bumped)

        self.refused(offer)

    @precondition(lambda self: self.requests)
    @rule(data=st.data(), reason=st.sampled_from(DeclineReason))
    def decline(self, data: st.DataObject, reason: DeclineReason) -> None:
        request, vacancy, _ = self._answer(data)

        def decline() -> None:
            declined, bumped, _ = domain.decline_request(request, vacancy, reason, self.tick())
            self._keep(declined, bumped)

        self.refused(decline)

    @precondition(lambda self: self.requests)
    @rule(data=st.data())
    def expire_offer(self, data: st.DataObject) -> None:
        request, vacancy, _ = self._answer(data)

        def expire() -> None:
            expired, bumped, _ = domain.expire_offer(request, vacancy, self.tick())
            self._keep(expired, bumped)

        self.refused(expire)

    @precondition(lambda self: self.requests)
    @rule(data=st.data(), reason=st.sampled_from(RequestWithdrawalReason))
    def withdraw_request(self, data: st.DataObject, reason: RequestWithdrawalReason) -> None:
        request, vacancy, _ = self._answer(data)
        withdrawn, bumped, _ = domain.withdraw_request(request, vacancy, reason, self.tick())
        self._keep(withdrawn, bumped)

    @precondition(lambda self: self.requests)
    @rule(data=st.data())
    def accept(self, data: st.DataObject) -> None:
        request, _, _ = self._answer(data)
        accepted = domain.accept_offer(request, self.tick())
        if accepted is not None:
            self._keep(accepted)

    @precondition(lambda self: self.requests)
    @rule(data=st.data(), beds=maybe_beds)
    def start_placement_from_request(self, data: st.DataObject, beds: int | None) -> None:
        request, vacancy, setting = self._answer(data)

        def start() -> None:
            decided = domain.start_placement_from_offer(
                uuid4(), request, setting, vacancy, start_date=date(2026, 12, 1), beds=beds,
                now=self.tick(),
            )  # fmt: skip
            # Exactly the beds the offer held, and they leave the vacancy for good.
            assert decided.placement.beds == request.offered_beds
            assert decided.vacancy.beds == max(vacancy.beds - decided.placement.beds, 0)
            self.placements[decided.placement.placement_id] = decided.placement
            self._keep(decided.request, decided.vacancy)

        self.refused(start)

    @rule(data=st.data(), beds=beds, in_vacancy=st.booleans())
    def start_placement_without_request(
        self, data: st.DataObject, beds: int, in_vacancy: bool
    ) -> None:
        setting = self.settings[self.pick(data, self.settings)]  # type: ignore[arg-type]
        here = {k: v for k, v in self.vacancies.items() if v.setting_id == setting.setting_id}
        vacancy = self.vacancies[self.pick(data, here)] if in_vacancy and here else None  # type: ignore[arg-type]
        terms = PlacementTerms(
            placing_authority_code=SEFTON,
            start_date=date(2026, 12, 1),
            beds=beds,
            vacancy_id=None if vacancy is None else vacancy.vacancy_id,
        )

        def start() -> None:
            placement, _ = domain.start_placement(
                uuid4(), setting, self.capacity(setting), terms, vacancy=vacancy, now=self.tick()
            )
            self.placements[placement.placement_id] = placement

        self.refused(start)

    @precondition(lambda self: self.placements)
    @rule(data=st.data())
    def end_placement(self, data: st.DataObject) -> None:
        placement = self.placements[self.pick(data, self.placements)]  # type: ignore[arg-type]

        def end() -> None:
            ended, _ = domain.end_placement(
                placement, date(2027, 1, 1), PlacementEndReason.PLANNED_MOVE, self.tick()
            )
            self.placements[ended.placement_id] = ended

        self.refused(end)

    @precondition(lambda self: self.vacancies)
    @rule(data=st.data())
    def withdraw_vacancy(self, data: st.DataObject) -> None:
        """As the service withdraws one: its offers' holds are released first."""
        vacancy = self.vacancies[self.pick(data, self.vacancies)]  # type: ignore[arg-type]
        if vacancy.status is not VacancyStatus.OPEN:
            return
        now = self.tick()
        for request in list(self.requests.values()):
            if request.vacancy_id == vacancy.vacancy_id and request.status in HOLDING:
                released, vacancy, _ = domain.release_offer(
                    request, vacancy, OfferWithdrawalReason.VACANCY_WITHDRAWN, now
                )
                self._keep(released)
        withdrawn, _ = domain.withdraw(vacancy, WithdrawalReason.NO_LONGER_AVAILABLE, now)
        self.vacancies[withdrawn.vacancy_id] = withdrawn

    # --- what always holds ----------------------------------------------------------------------

    @invariant()
    def every_settings_beds_add_up(self) -> None:
        for setting in self.settings.values():
            capacity = self.capacity(setting)
            assert capacity.held + capacity.occupied + capacity.free == setting.registered_places, (
                capacity
            )

    @invariant()
    def no_vacancy_holds_more_beds_than_it_has(self) -> None:
        for vacancy in self.vacancies.values():
            held = self.held_at_vacancy(vacancy.vacancy_id)
            if vacancy.status is VacancyStatus.OPEN:
                assert held <= vacancy.beds, (vacancy, held)
            else:
                assert held == 0, f"a {vacancy.status} vacancy holds {held} beds"

    @invariant()
    def a_placed_request_names_its_placement_in_its_vacancy(self) -> None:
        for request in self.requests.values():
            if request.status is RequestStatus.PLACED:
                assert request.placement_id is not None
                placement = self.placements[request.placement_id]
                assert placement.vacancy_id == request.vacancy_id
                assert placement.placing_authority_code == request.authority_code


ProviderLoop.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
test_the_loop_keeps_every_settings_beds_in_balance = ProviderLoop.TestCase
