"""The synthetic world as events: a valid history, for load tests, benchmarks and rebuild checks.

Providers register homes across England (the North West most densely), post, confirm, withdraw
and let expire vacancies, and place children; councils open, update, widen and close referrals.
Every aggregate's events carry sequences 1, 2, 3 … and obey the providers' rules (no more beds
offered or occupied than a home's registered places; nothing new at a closed home).

Where the simulator's plan is realistic, this history is thorough: apart from the mix of
settings, it draws every rating, sex, need and reason the contracts allow alike, so that the
ledger meets each of them.
"""

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Generic, TypeVar
from uuid import UUID

from contracts.enums import (
    Need,
    OfstedRating,
    PlacementEndReason,
    PlacementType,
    ReferralOutcome,
    Sex,
    Urgency,
    WithdrawalReason,
)
from contracts.envelope import Envelope, envelop
from contracts.events import (
    EventPayload,
    PlacementEnded,
    PlacementStarted,
    ReferralClosed,
    ReferralOpened,
    ReferralUpdated,
    ReferralWidened,
    SettingClosed,
    SettingRegistered,
    SettingUpdated,
    VacancyConfirmed,
    VacancyExpired,
    VacancyPosted,
    VacancyWithdrawn,
)
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
    registered: SettingRegistered
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


@dataclass
class _Placement:
    setting_id: UUID
    placing_authority_code: str
    beds: int
    started: date
    version: int = 1


@dataclass
class _Referral:
    opened: ReferralOpened
    version: int = 1


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

    def _envelope(self, payload: EventPayload, aggregate_id: UUID, sequence: int) -> Envelope[Any]:
        organisation = getattr(payload, "provider_id", None) or getattr(payload, "authority_code")  # noqa: B009
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
        registered = SettingRegistered(
            setting_id=self._uuid(),
            provider_id=self._random.choice(self._providers),
            placement_type=placement_type,
            registered_places=self._random.choice((1, 2, 3, 3, 4, 4, 5, 6)),
            ofsted_rating=self._random.choice(list(OfstedRating)),
            age_min=age_min,
            age_max=self._random.randint(age_min, OLDEST),
            sexes_accepted=tuple(self._random.sample(list(Sex), self._random.randint(1, 3))),
            needs_met=tuple(self._random.sample(list(Need), self._random.randint(0, 5))),
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
            registered = SettingRegistered.model_validate({**registered.model_dump(), **profile})
        self._settings[registered.setting_id] = setting = _Setting(registered)
        self._open_settings.add(registered.setting_id, setting)
        return self._envelope(registered, registered.setting_id, 1)

    def _update_setting(self, setting_id: UUID, setting: _Setting) -> Envelope[Any]:
        lowest = max(setting.occupied + setting.offered, 1)
        places = self._random.randint(lowest, max(lowest, setting.registered.registered_places + 1))
        rating = self._random.choice(list(OfstedRating))
        setting.registered = setting.registered.model_copy(
            update={"registered_places": places, "ofsted_rating": rating}
        )
        setting.version += 1
        updated = SettingUpdated(**setting.registered.model_dump())
        return self._envelope(updated, setting_id, setting.version)

    def _close_setting(self, setting_id: UUID, setting: _Setting) -> Envelope[Any]:
        setting.is_open = False
        self._open_settings.remove(setting_id)
        setting.version += 1
        closed = SettingClosed(
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
        posted = VacancyPosted(
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
        confirmed = VacancyConfirmed(
            setting_id=vacancy.setting_id,
            provider_id=self._settings[vacancy.setting_id].registered.provider_id,
            vacancy_id=vacancy_id,
            confirmed_at=confirmed_at,
        )
        return self._envelope(confirmed, vacancy_id, vacancy.version)

    def _end_vacancy(self, vacancy_id: UUID, vacancy: _Vacancy) -> Envelope[Any]:
        self._vacancies.remove(vacancy_id)
        setting = self._settings[vacancy.setting_id]
        setting.offered -= vacancy.beds
        provider_id = setting.registered.provider_id
        vacancy.version += 1
        gone: EventPayload
        if self._random.random() < 0.7:
            gone = VacancyWithdrawn(
                setting_id=vacancy.setting_id,
                provider_id=provider_id,
                vacancy_id=vacancy_id,
                reason=self._random.choice(list(WithdrawalReason)),
            )
        else:
            gone = VacancyExpired(
                setting_id=vacancy.setting_id,
                provider_id=provider_id,
                vacancy_id=vacancy_id,
                last_confirmed_at=vacancy.confirmed_at,
            )
        return self._envelope(gone, vacancy_id, vacancy.version)

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
        payload = PlacementStarted(
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
        ended = PlacementEnded(
            setting_id=placement.setting_id,
            provider_id=setting.registered.provider_id,
            placement_id=placement_id,
            placing_authority_code=placement.placing_authority_code,
            beds=placement.beds,
            end_date=max(self._now.date(), placement.started),
            reason=self._random.choice(list(PlacementEndReason)),
        )
        return self._envelope(ended, placement_id, placement.version + 1)

    # --- referrals --------------------------------------------------------------------------------

    def _open_referral(self) -> Envelope[Any]:
        authority_code = self._council()
        siblings = 2 if self._random.random() < 0.08 else 1
        needs: set[Need] = set(
            self._random.sample([n for n in Need if n is not Need.SIBLING_GROUP], 2)
        )
        if siblings > 1:
            needs.add(Need.SIBLING_GROUP)
        opened = ReferralOpened(
            referral_id=self._uuid(),
            authority_code=authority_code,
            reference=f"REF-{self._random.getrandbits(40):x}",
            age=self._random.randint(YOUNGEST, OLDEST),
            sex=self._random.choice(list(Sex)),
            needs=tuple(needs),
            sibling_group_size=siblings,
            placement_types=tuple(
                self._random.sample(list(PlacementType), self._random.randint(1, 2))
            ),
            home_postcode_district=self._random.choice(district_codes_of(authority_code)),
            needed_by=self._now.date() + timedelta(days=self._random.randint(0, 60)),
            urgency=self._random.choice(list(Urgency)),
        )
        self._referrals.add(opened.referral_id, _Referral(opened))
        return self._envelope(opened, opened.referral_id, 1)

    def _change_referral(self, referral_id: UUID, referral: _Referral) -> Envelope[Any]:
        referral.version += 1
        roll = self._random.random()
        opened = referral.opened
        changed: EventPayload
        if roll < 0.4:
            self._referrals.remove(referral_id)
            changed = ReferralClosed(
                referral_id=referral_id,
                authority_code=opened.authority_code,
                outcome=self._random.choice(list(ReferralOutcome)),
            )
        elif roll < 0.55:
            changed = ReferralWidened(referral_id=referral_id, authority_code=opened.authority_code)
        else:
            types = tuple(self._random.sample(list(PlacementType), self._random.randint(1, 3)))
            referral.opened = replace_payload(opened, placement_types=types)
            changed = ReferralUpdated(**referral.opened.model_dump())
        return self._envelope(changed, referral_id, referral.version)

    # --- the mix ----------------------------------------------------------------------------------

    def next_event(self) -> Envelope[Any]:  # noqa: C901, PLR0911 - a branch per kind of change
        """One more event, chosen so that the populations stay realistic."""
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


def replace_payload(payload: ReferralOpened, **changes: Any) -> ReferralOpened:  # noqa: ANN401
    """The payload with `changes`, validated again."""
    return ReferralOpened(**{**payload.model_dump(), **changes})


def synthetic_events(count: int, seed: int = 1) -> list[Envelope[Any]]:
    """`count` events of a fresh synthetic history."""
    return list(SyntheticHistory(seed).events(count))
