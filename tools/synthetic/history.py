"""The synthetic world as events: a valid history, for load tests, benchmarks and rebuild checks.

Providers register homes across England (the North West most densely), post, confirm, withdraw
and let expire vacancies, and place children; councils open, update, widen and close referrals.
Every aggregate's events carry sequences 1, 2, 3 … and obey the providers' rules (no more beds
offered or occupied than a home's registered places; nothing new at a closed home).

A seeded share of the history is the placement loop: councils ask for vacancies' beds for their
open referrals (PlacementRequested, RequestWithdrawn, OfferAccepted: events of the referral, from
the council), providers offer, decline, let expire and release offers (PlacementOffered,
PlacementDeclined, OfferExpired, OfferWithdrawn: events of the vacancy), and a placement starts
from an accepted offer (PlacementStarted naming the request and referral), which closes the
referral as placed and withdraws its other requests. An offer holds beds only of an open, requested
vacancy that has them free; a vacancy or referral that ends releases what its requests held.

Where the simulator's plan is realistic, this history is thorough: apart from the mix of
settings, it draws every rating, sex, need and reason the contracts allow alike, so that the
ledger meets each of them.
"""

import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Generic, TypeVar
from uuid import UUID

from contracts import enums, events
from contracts.envelope import Envelope, envelop
from contracts.topics import topic_for_event
from tools.synthetic import figures
from tools.synthetic.area import (
    council_codes,
    district_codes_of,
    districts_in_region,
    england_districts,
)
from tools.synthetic.population import OLDEST, YOUNGEST, draw, setting_profile

T = TypeVar("T")
PRODUCER = "synthetic"
# The share of events that move the placement loop on (when it has something to move).
LOOP_SHARE = 0.15
OFFER_HOLD = timedelta(hours=24)


def topic_of(event: Envelope[Any], prefix: str = "") -> str:
    """The (prefixed) catalogue topic that carries `event`."""
    return prefix + topic_for_event(event.event_type).name


class _Bag(Generic[T]):
    """Items by id with O(1) add, remove and random choice (the history keeps thousands)."""

    def __init__(self) -> None:
        self._ids: list[UUID] = []
        self._where: dict[UUID, int] = {}
        self.items: dict[UUID, T] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, item_id: UUID, item: T) -> None:
        self._where[item_id] = len(self._ids)
        self._ids.append(item_id)
        self.items[item_id] = item

    def remove(self, item_id: UUID) -> T:
        at = self._where.pop(item_id)
        last = self._ids.pop()
        if last != item_id:
            self._ids[at] = last
            self._where[last] = at
        return self.items.pop(item_id)

    def choice(self, chooser: random.Random) -> tuple[UUID, T] | None:
        if not self._ids:
            return None
        item_id = self._ids[chooser.randrange(len(self._ids))]
        return item_id, self.items[item_id]


@dataclass
class _Setting:
    registered: events.SettingRegistered
    version: int = 1
    occupied: int = 0
    offered: int = 0
    is_open: bool = True

    @property
    def room(self) -> int:
        return self.registered.registered_places - self.occupied - self.offered


@dataclass
class _Vacancy:
    setting_id: UUID
    beds: int
    confirmed_at: datetime
    version: int = 1
    held: int = 0  # beds that open offers (offered or accepted) hold
    is_open: bool = True

    @property
    def free(self) -> int:
        return self.beds - self.held


@dataclass
class _Placement:
    setting_id: UUID
    placing_authority_code: str
    beds: int
    started: date
    version: int = 1


@dataclass
class _Referral:
    opened: events.ReferralOpened
    version: int = 1
    # Its open requests (requested, offered or accepted), and the vacancies they are for.
    requests: dict[UUID, UUID] = field(default_factory=dict)


@dataclass
class _Request:
    """A council's open request: `requested`, `offered` (holding `beds`) or `accepted`."""

    requested: events.PlacementRequested
    referral: _Referral
    vacancy_id: UUID
    vacancy: _Vacancy
    status: str = "requested"
    beds: int = 0


class SyntheticHistory:
    """Generates events one at a time; the same seed always gives the same history."""

    def __init__(self, seed: int = 1, start: datetime | None = None) -> None:
        self._random = random.Random(seed)  # noqa: S311 - sample data, not secrets
        self._now = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        self._settings: dict[UUID, _Setting] = {}
        self._open_settings: _Bag[_Setting] = _Bag()
        self._vacancies: _Bag[_Vacancy] = _Bag()
        self._placements: _Bag[_Placement] = _Bag()
        self._referrals: _Bag[_Referral] = _Bag()
        self._requests: _Bag[_Request] = _Bag()
        # Events decided together with the last one (a placement's closed referral, say), in order.
        self._pending: deque[Envelope[Any]] = deque()
        self._districts = england_districts()
        self._north_west = districts_in_region(figures.NORTH_WEST)
        self._councils = council_codes()
        self._nw_councils = council_codes(figures.NORTH_WEST)
        self._providers = [f"provider-{n}" for n in range(1, 201)]

    # --- plumbing ---------------------------------------------------------------------------------

    def _uuid(self) -> UUID:
        return UUID(int=self._random.getrandbits(128), version=4)

    def _tick(self) -> datetime:
        self._now += timedelta(seconds=self._random.expovariate(1 / 90))
        return self._now

    def _envelope(
        self, payload: events.EventPayload, aggregate_id: UUID, sequence: int
    ) -> Envelope[Any]:
        # A council's events are its own (a request names the provider, but the council sends it).
        organisation = (
            payload.authority_code
            if isinstance(payload, events.ReferralEvent)
            else getattr(payload, "provider_id", None) or getattr(payload, "authority_code")  # noqa: B009
        )
        return envelop(
            payload,
            producer=PRODUCER,
            organisation_id=organisation,
            aggregate_id=aggregate_id,
            sequence=sequence,
            occurred_at=self._tick(),
            event_id=self._uuid(),
        )

    def _council(self) -> str:
        pool = self._nw_councils if self._random.random() < 0.5 else self._councils
        return self._random.choice(pool)

    def _setting_with_room(self) -> tuple[UUID, _Setting] | None:
        for _ in range(8):
            picked = self._open_settings.choice(self._random)
            if picked is not None and picked[1].room > 0:
                return picked
        return None

    # --- settings ---------------------------------------------------------------------------------

    def _register_setting(self) -> Envelope[Any]:
        where = self._random.choice(
            self._north_west if self._random.random() < 0.5 else self._districts
        )
        placement_type = draw(self._random, figures.HISTORY_SETTING_MIX)
        age_min = self._random.randint(YOUNGEST, 12)
        registered = events.SettingRegistered(
            setting_id=self._uuid(),
            provider_id=self._random.choice(self._providers),
            placement_type=placement_type,
            registered_places=self._random.choice((1, 2, 3, 3, 4, 4, 5, 6)),
            ofsted_rating=self._random.choice(list(enums.OfstedRating)),
            age_min=age_min,
            age_max=self._random.randint(age_min, OLDEST),
            sexes_accepted=tuple(self._random.sample(list(enums.Sex), self._random.randint(1, 3))),
            needs_met=tuple(self._random.sample(list(enums.Need), self._random.randint(0, 5))),
            postcode_district=where.code,
            authority_code=where.authority_code,
        )
        profile = setting_profile(
            str(registered.setting_id),
            registered.provider_id,
            placement_type,
            registered.registered_places,
            where.code,
        )
        if profile is not None:
            registered = events.SettingRegistered.model_validate(
                {**registered.model_dump(), **profile}
            )
        self._settings[registered.setting_id] = setting = _Setting(registered)
        self._open_settings.add(registered.setting_id, setting)
        return self._envelope(registered, registered.setting_id, 1)

    def _update_setting(self, setting_id: UUID, setting: _Setting) -> Envelope[Any]:
        lowest = max(setting.occupied + setting.offered, 1)
        places = self._random.randint(lowest, max(lowest, setting.registered.registered_places + 1))
        rating = self._random.choice(list(enums.OfstedRating))
        setting.registered = setting.registered.model_copy(
            update={"registered_places": places, "ofsted_rating": rating}
        )
        setting.version += 1
        updated = events.SettingUpdated(**setting.registered.model_dump())
        return self._envelope(updated, setting_id, setting.version)

    def _close_setting(self, setting_id: UUID, setting: _Setting) -> Envelope[Any]:
        setting.is_open = False
        self._open_settings.remove(setting_id)
        setting.version += 1
        closed = events.SettingClosed(
            setting_id=setting_id,
            provider_id=setting.registered.provider_id,
            closed_on=self._now.date(),
        )
        return self._envelope(closed, setting_id, setting.version)

    # --- vacancies --------------------------------------------------------------------------------

    def _post_vacancy(self, setting_id: UUID, setting: _Setting) -> Envelope[Any]:
        beds = self._random.randint(1, min(setting.room, 2))
        setting.offered += beds
        vacancy_id = self._uuid()
        self._vacancies.add(vacancy_id, _Vacancy(setting_id, beds, self._now))
        posted = events.VacancyPosted(
            setting_id=setting_id,
            provider_id=setting.registered.provider_id,
            vacancy_id=vacancy_id,
            beds=beds,
            available_from=self._now.date() + timedelta(days=self._random.randint(0, 21)),
        )
        return self._envelope(posted, vacancy_id, 1)

    def _confirm_vacancy(self, vacancy_id: UUID, vacancy: _Vacancy) -> Envelope[Any]:
        vacancy.version += 1
        confirmed_at = self._tick()
        vacancy.confirmed_at = confirmed_at
        confirmed = events.VacancyConfirmed(
            setting_id=vacancy.setting_id,
            provider_id=self._settings[vacancy.setting_id].registered.provider_id,
            vacancy_id=vacancy_id,
            confirmed_at=confirmed_at,
        )
        return self._envelope(confirmed, vacancy_id, vacancy.version)

    def _end_vacancy(self, vacancy_id: UUID, vacancy: _Vacancy) -> Envelope[Any]:
        withdrawing = self._random.random() < 0.7
        reason = (
            enums.OfferWithdrawalReason.VACANCY_WITHDRAWN
            if withdrawing
            else enums.OfferWithdrawalReason.VACANCY_EXPIRED
        )
        # The provider releases the vacancy's holds first (each the vacancy's next version).
        released = [
            self._release_offer(request_id, request, reason)
            for request_id, request in self._holds_on(vacancy)
        ]
        self._vacancies.remove(vacancy_id)
        vacancy.is_open = False
        setting = self._settings[vacancy.setting_id]
        setting.offered -= vacancy.beds
        provider_id = setting.registered.provider_id
        vacancy.version += 1
        gone: events.EventPayload
        if withdrawing:
            gone = events.VacancyWithdrawn(
                setting_id=vacancy.setting_id,
                provider_id=provider_id,
                vacancy_id=vacancy_id,
                reason=self._random.choice(list(enums.WithdrawalReason)),
            )
        else:
            gone = events.VacancyExpired(
                setting_id=vacancy.setting_id,
                provider_id=provider_id,
                vacancy_id=vacancy_id,
                last_confirmed_at=vacancy.confirmed_at,
            )
        return self._in_order(*released, self._envelope(gone, vacancy_id, vacancy.version))

    # --- placements -------------------------------------------------------------------------------

    def _start_placement(self, setting_id: UUID, setting: _Setting) -> Envelope[Any]:
        beds = 2 if setting.room >= 2 and self._random.random() < 0.1 else 1
        setting.occupied += beds
        placing = (
            setting.registered.authority_code if self._random.random() < 0.55 else self._council()
        )
        placement_id = self._uuid()
        started = self._now.date()
        self._placements.add(placement_id, _Placement(setting_id, placing, beds, started))
        payload = events.PlacementStarted(
            setting_id=setting_id,
            provider_id=setting.registered.provider_id,
            placement_id=placement_id,
            placing_authority_code=placing,
            start_date=started,
            beds=beds,
        )
        return self._envelope(payload, placement_id, 1)

    def _end_placement(self, placement_id: UUID, placement: _Placement) -> Envelope[Any]:
        self._placements.remove(placement_id)
        setting = self._settings[placement.setting_id]
        setting.occupied -= placement.beds
        ended = events.PlacementEnded(
            setting_id=placement.setting_id,
            provider_id=setting.registered.provider_id,
            placement_id=placement_id,
            placing_authority_code=placement.placing_authority_code,
            beds=placement.beds,
            end_date=max(self._now.date(), placement.started),
            reason=self._random.choice(list(enums.PlacementEndReason)),
        )
        return self._envelope(ended, placement_id, placement.version + 1)

    # --- referrals --------------------------------------------------------------------------------

    def _open_referral(self) -> Envelope[Any]:
        authority_code = self._council()
        siblings = 2 if self._random.random() < 0.08 else 1
        needs: set[enums.Need] = set(
            self._random.sample([n for n in enums.Need if n is not enums.Need.SIBLING_GROUP], 2)
        )
        if siblings > 1:
            needs.add(enums.Need.SIBLING_GROUP)
        opened = events.ReferralOpened(
            referral_id=self._uuid(),
            authority_code=authority_code,
            reference=f"REF-{self._random.getrandbits(40):x}",
            age=self._random.randint(YOUNGEST, OLDEST),
            sex=self._random.choice(list(enums.Sex)),
            needs=tuple(needs),
            sibling_group_size=siblings,
            placement_types=tuple(
                self._random.sample(list(enums.PlacementType), self._random.randint(1, 2))
            ),
            home_postcode_district=self._random.choice(district_codes_of(authority_code)),
            needed_by=self._now.date() + timedelta(days=self._random.randint(0, 60)),
            urgency=self._random.choice(list(enums.Urgency)),
        )
        self._referrals.add(opened.referral_id, _Referral(opened))
        return self._envelope(opened, opened.referral_id, 1)

    def _change_referral(self, referral_id: UUID, referral: _Referral) -> Envelope[Any]:
        roll = self._random.random()
        opened = referral.opened
        changed: events.EventPayload
        if roll < 0.4:
            outcome = self._random.choice(list(enums.ReferralOutcome))
            return self._in_order(*self._close_referral(referral_id, referral, outcome))
        referral.version += 1
        if roll < 0.55:
            changed = events.ReferralWidened(
                referral_id=referral_id, authority_code=opened.authority_code
            )
        else:
            types = tuple(
                self._random.sample(list(enums.PlacementType), self._random.randint(1, 3))
            )
            referral.opened = replace_payload(opened, placement_types=types)
            changed = events.ReferralUpdated(**referral.opened.model_dump())
        return self._envelope(changed, referral_id, referral.version)

    # --- the placement loop -----------------------------------------------------------------------

    def _in_order(self, first: Envelope[Any], *then: Envelope[Any]) -> Envelope[Any]:
        """`first` now, and `then` as the next events (decided with it, before anything else)."""
        self._pending.extend(then)
        return first

    def _referral_event(self, payload: events.EventPayload, referral: _Referral) -> Envelope[Any]:
        referral.version += 1
        return self._envelope(payload, referral.opened.referral_id, referral.version)

    def _vacancy_event(self, payload: events.EventPayload, request: _Request) -> Envelope[Any]:
        request.vacancy.version += 1
        return self._envelope(payload, request.vacancy_id, request.vacancy.version)

    def _about(self, request: _Request) -> dict[str, Any]:
        """The fields every event about a request carries."""
        requested = request.requested
        return {
            "referral_id": requested.referral_id,
            "authority_code": requested.authority_code,
            "request_id": requested.request_id,
            "vacancy_id": requested.vacancy_id,
            "setting_id": requested.setting_id,
            "provider_id": requested.provider_id,
        }

    def _holds_on(self, vacancy: _Vacancy) -> list[tuple[UUID, _Request]]:
        return sorted(
            (
                (request_id, request)
                for request_id, request in self._requests.items.items()
                if request.vacancy is vacancy and request.status in ("offered", "accepted")
            ),
            key=lambda pair: pair[0],
        )

    def _end_request(self, request_id: UUID, request: _Request) -> None:
        self._requests.remove(request_id)
        request.referral.requests.pop(request_id, None)

    def _release_offer(
        self, request_id: UUID, request: _Request, reason: enums.OfferWithdrawalReason
    ) -> Envelope[Any]:
        """The provider releases the request's hold (the request is over for it)."""
        request.vacancy.held -= request.beds
        self._end_request(request_id, request)
        released = events.OfferWithdrawn(**self._about(request), beds=request.beds, reason=reason)
        return self._vacancy_event(released, request)

    def _withdraw_request(
        self, request_id: UUID, request: _Request, reason: enums.RequestWithdrawalReason
    ) -> list[Envelope[Any]]:
        """The council withdraws the request; a hold it had, the provider then releases."""
        withdrawn = events.RequestWithdrawn(**self._about(request), reason=reason)
        emitted = [self._referral_event(withdrawn, request.referral)]
        if request.status in ("offered", "accepted"):
            released = enums.OfferWithdrawalReason.REQUEST_WITHDRAWN
            emitted.append(self._release_offer(request_id, request, released))
        else:
            self._end_request(request_id, request)
        return emitted

    def _close_referral(
        self, referral_id: UUID, referral: _Referral, outcome: enums.ReferralOutcome
    ) -> list[Envelope[Any]]:
        """The referral closes, and the council withdraws its open requests."""
        self._referrals.remove(referral_id)
        opened = referral.opened
        closed = events.ReferralClosed(
            referral_id=referral_id, authority_code=opened.authority_code, outcome=outcome
        )
        emitted = [self._referral_event(closed, referral)]
        reason = (
            enums.RequestWithdrawalReason.REFERRAL_PLACED
            if outcome is enums.ReferralOutcome.PLACED
            else enums.RequestWithdrawalReason.REFERRAL_CLOSED
        )
        for request_id in sorted(referral.requests):
            emitted += self._withdraw_request(request_id, self._requests.items[request_id], reason)
        return emitted

    def _request(self) -> Envelope[Any] | None:
        """An open referral's council asks for beds of an open vacancy that has them free."""
        picked = self._referrals.choice(self._random)
        if picked is None:
            return None
        referral_id, referral = picked
        opened = referral.opened
        for _ in range(8):
            found = self._vacancies.choice(self._random)
            if found is None:
                return None
            vacancy_id, vacancy = found
            if (
                vacancy.free >= opened.sibling_group_size
                and vacancy_id not in referral.requests.values()
            ):
                break
        else:
            return None
        setting = self._settings[vacancy.setting_id]
        requested = events.PlacementRequested(
            referral_id=referral_id,
            authority_code=opened.authority_code,
            request_id=self._uuid(),
            vacancy_id=vacancy_id,
            setting_id=vacancy.setting_id,
            provider_id=setting.registered.provider_id,
            # What the provider learns of the child: the referral's own facts.
            **opened.model_dump(include=set(events.RequestedChild.model_fields)),
        )
        request = _Request(requested, referral, vacancy_id, vacancy)
        self._requests.add(requested.request_id, request)
        referral.requests[requested.request_id] = vacancy_id
        return self._referral_event(requested, referral)

    def _answer(self, request_id: UUID, request: _Request) -> Envelope[Any]:
        """The provider offers the beds (if its open vacancy has them free) or declines."""
        beds = request.requested.sibling_group_size
        if request.vacancy.is_open and request.vacancy.free >= beds and self._random.random() < 0.6:
            request.status, request.beds = "offered", beds
            request.vacancy.held += beds
            offered = events.PlacementOffered(
                **self._about(request),
                beds=beds,
                expires_at=self._now + OFFER_HOLD,
                weekly_fee_gbp=self._random.choice((None, 4800.0, 5500.0, 7200.0)),
            )
            return self._vacancy_event(offered, request)
        self._end_request(request_id, request)
        reason = (
            self._random.choice(list(enums.DeclineReason))
            if request.vacancy.is_open
            else enums.DeclineReason.BED_NO_LONGER_AVAILABLE
        )
        return self._vacancy_event(
            events.PlacementDeclined(**self._about(request), reason=reason), request
        )

    def _after_offer(self, request_id: UUID, request: _Request) -> Envelope[Any]:
        """The council accepts or withdraws, or the offer expires."""
        roll = self._random.random()
        if roll < 0.55:
            request.status = "accepted"
            return self._referral_event(
                events.OfferAccepted(**self._about(request)), request.referral
            )
        if roll < 0.7:
            reason = enums.RequestWithdrawalReason.BY_COUNCIL
            return self._in_order(*self._withdraw_request(request_id, request, reason))
        request.vacancy.held -= request.beds
        self._end_request(request_id, request)
        expired = events.OfferExpired(**self._about(request), beds=request.beds)
        return self._vacancy_event(expired, request)

    def _place(self, request_id: UUID, request: _Request) -> Envelope[Any]:
        """The child moves in: the held beds become occupied, the vacancy has fewer (withdrawn as
        filled at none), and the referral closes as placed, withdrawing its other requests."""
        vacancy, beds = request.vacancy, request.beds
        setting = self._settings[vacancy.setting_id]
        self._end_request(request_id, request)
        vacancy.held -= beds
        vacancy.beds -= beds
        setting.offered -= beds
        setting.occupied += beds
        placement_id = self._uuid()
        started = self._now.date()
        placing = request.requested.authority_code
        self._placements.add(placement_id, _Placement(vacancy.setting_id, placing, beds, started))
        payload = events.PlacementStarted(
            setting_id=vacancy.setting_id,
            provider_id=setting.registered.provider_id,
            placement_id=placement_id,
            placing_authority_code=placing,
            start_date=started,
            beds=beds,
            vacancy_id=request.vacancy_id,
            request_id=request_id,
            referral_id=request.requested.referral_id,
        )
        emitted = [self._envelope(payload, placement_id, 1)]
        if vacancy.beds == 0:
            self._vacancies.remove(request.vacancy_id)
            vacancy.is_open = False
            filled = events.VacancyWithdrawn(
                setting_id=vacancy.setting_id,
                provider_id=setting.registered.provider_id,
                vacancy_id=request.vacancy_id,
                reason=enums.WithdrawalReason.FILLED,
            )
            emitted.append(self._vacancy_event(filled, request))
        referral = request.referral
        referral_id = request.requested.referral_id
        if referral_id in self._referrals.items:
            emitted += self._close_referral(referral_id, referral, enums.ReferralOutcome.PLACED)
        return self._in_order(*emitted)

    def _loop_step(self) -> Envelope[Any] | None:
        """A new request, or the next step of an open one; None when the loop has nothing to do."""
        picked = self._requests.choice(self._random)
        if picked is None or self._random.random() < 0.4:
            return self._request()
        request_id, request = picked
        if request.status == "requested":
            return self._answer(request_id, request)
        if request.status == "offered":
            return self._after_offer(request_id, request)
        if self._random.random() < 0.85:
            return self._place(request_id, request)
        reason = enums.RequestWithdrawalReason.BY_COUNCIL
        return self._in_order(*self._withdraw_request(request_id, request, reason))

    # --- the mix ----------------------------------------------------------------------------------

    def next_event(self) -> Envelope[Any]:
        """One more event, chosen so that the populations stay realistic."""
        if self._pending:
            return self._pending.popleft()
        if self._random.random() < LOOP_SHARE and (step := self._loop_step()) is not None:
            return step
        return self._change_the_world()

    def _change_the_world(self) -> Envelope[Any]:  # noqa: C901, PLR0911 - a branch per kind
        """A setting, vacancy, placement or referral changes."""
        roll = self._random.random()
        if roll < 0.06 or not self._settings:
            return self._register_setting()
        if roll < 0.08 and (picked := self._open_settings.choice(self._random)):
            return self._update_setting(*picked)
        if roll < 0.085 and (picked := self._open_settings.choice(self._random)):
            if picked[1].occupied == 0 and picked[1].offered == 0:
                return self._close_setting(*picked)
            return self._update_setting(*picked)
        if roll < 0.40:
            if (picked := self._setting_with_room()) is None:
                return self._register_setting()
            if roll < 0.25:
                return self._post_vacancy(*picked)
            return self._start_placement(*picked)
        if roll < 0.47 and (placement := self._placements.choice(self._random)):
            return self._end_placement(*placement)
        if roll < 0.62 and (vacancy := self._vacancies.choice(self._random)):
            return self._confirm_vacancy(*vacancy)
        if roll < 0.72 and (vacancy := self._vacancies.choice(self._random)):
            return self._end_vacancy(*vacancy)
        if roll < 0.86 or not self._referrals:
            return self._open_referral()
        referral = self._referrals.choice(self._random)
        assert referral is not None
        return self._change_referral(*referral)

    def events(self, count: int) -> Iterator[Envelope[Any]]:
        for _ in range(count):
            yield self.next_event()


def replace_payload(payload: events.ReferralOpened, **changes: Any) -> events.ReferralOpened:  # noqa: ANN401
    """The payload with `changes`, validated again."""
    return events.ReferralOpened(**{**payload.model_dump(), **changes})


def synthetic_events(count: int, seed: int = 1) -> list[Envelope[Any]]:
    """`count` events of a fresh synthetic history."""
    return list(SyntheticHistory(seed).events(count))
