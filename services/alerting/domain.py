"""What alerting knows and decides, pure: open records, the candidate index and the open alerts.

`AlertBook` is the working set the consumer keeps in memory: settings (with the beds occupied),
open vacancies, open referrals, the `CandidateIndex` over them, and the open alert of each
(referral, vacancy) pair. `AlertBook.apply` folds one event into it and records in a `Changes`
what must be written: record rows, alerts raised and retracted, and the notices (events, webhooks)
that tell the referring council. No I/O: the store loads a book from the database and saves the
changes of a batch in the same transaction as the consumer's position.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar, assert_never
from uuid import UUID, uuid4

from contracts import matching
from contracts.enums import AlertRetractionReason, SearchScope
from contracts.envelope import Envelope, envelop
from contracts.events import (
    AlertEvent,
    AlertRaised,
    AlertRetracted,
    EventPayload,
    OfferAccepted,
    OfferExpired,
    OfferWithdrawn,
    PlacementDeclined,
    PlacementEnded,
    PlacementOffered,
    PlacementRequested,
    PlacementStarted,
    ReferralClosed,
    ReferralOpened,
    ReferralState,
    ReferralUpdated,
    ReferralWidened,
    RequestWithdrawn,
    SettingClosed,
    SettingProfile,
    SettingRegistered,
    SettingState,
    SettingUpdated,
    VacancyConfirmed,
    VacancyExpired,
    VacancyPosted,
    VacancyWithdrawn,
)
from services.alerting.candidate_index import CandidateIndex
from services.alerting.holds import Hold, Holds
from services.alerting.matching import Fit, OpenReferral, OpenVacancy, failed_rules, fits
from services.alerting.notices import LoopNotice, loop_notice_of
from services.platform.clock import Clock, utc_now
from services.platform.errors import UnappliableEventError

Event = Envelope[Any]
PRODUCER = "alerting"


class AlertStatus(StrEnum):
    OPEN = "open"
    RETRACTED = "retracted"


class NoticeKind(StrEnum):
    RAISED = "raised"
    RETRACTED = "retracted"


class DeliveryState(StrEnum):
    """Where a webhook delivery stands: waiting for a (next) try, accepted, or given up."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Alert:
    """An open alert: a fit told to the referring council, once per (referral, vacancy)."""

    alert_id: UUID
    fit: Fit
    raised_at: datetime
    setting_profile: SettingProfile | None = None  # as the setting's was when it was raised

    @property
    def pair(self) -> tuple[UUID, UUID]:
        return self.fit.referral_id, self.fit.vacancy_id


@dataclass(frozen=True, slots=True)
class Notice:
    """One thing to tell the referring council: an alert raised, or retracted with a reason."""

    kind: NoticeKind
    alert: Alert
    at: datetime
    source: Event  # the event that caused it: its occurred_at starts the latency clock
    reason: AlertRetractionReason | None = None

    def webhook_body(self) -> dict[str, Any]:
        """The alert as a webhook, a stream event and `GET /alerts` show it (JSON-ready): its
        `AlertRaised` fields, with the notice's type, and when the alert was raised (and, for a
        retraction, why and when it was retracted)."""
        raised = self.raised().model_dump(mode="json")
        body: dict[str, Any] = {
            "alert_id": raised.pop("alert_id"),
            "type": self.kind.value,
            **raised,
            "raised_at": self.alert.raised_at.isoformat(),
        }
        match self.kind:
            case NoticeKind.RAISED:
                pass
            case NoticeKind.RETRACTED:
                body["reason"] = self.retraction_reason().value
                body["retracted_at"] = self.at.isoformat()
            case _:
                assert_never(self.kind)
        return body

    def raised(self) -> AlertRaised:
        """The alert as its `AlertRaised` event tells it. Built without validating it again: every
        field is a validated event's or matching's own, and a vacancy raises dozens of alerts."""
        fit = self.alert.fit
        return AlertRaised.model_construct(
            alert_id=self.alert.alert_id,
            referral_id=fit.referral_id,
            vacancy_id=fit.vacancy_id,
            setting_id=fit.setting_id,
            authority_code=fit.authority_code,
            distance_miles=fit.distance_miles,
            local=fit.local,
            placement_type=fit.placement_type,
            ofsted_rating=fit.ofsted_rating,
            postcode_district=fit.postcode_district,
            beds=fit.beds,
            setting_profile=self.alert.setting_profile,
        )

    def envelope(self) -> Event:
        """`AlertRaised` (sequence 1) or `AlertRetracted` (sequence 2) of the alert aggregate."""
        raised = self.raised()
        payload: EventPayload
        match self.kind:
            case NoticeKind.RAISED:
                payload = raised
                sequence = 1
            case NoticeKind.RETRACTED:
                # The same alert, referral, vacancy, setting and council as its raising.
                about = {name: getattr(raised, name) for name in AlertEvent.model_fields}
                payload = AlertRetracted.model_construct(**about, reason=self.retraction_reason())
                sequence = 2
            case _:
                assert_never(self.kind)
        return envelop(
            payload,
            producer=PRODUCER,
            # The tenant whose action caused it: the provider or council of the source event.
            organisation_id=self.source.organisation_id,
            aggregate_id=self.alert.alert_id,
            sequence=sequence,
            occurred_at=self.at,
        )

    def retraction_reason(self) -> AlertRetractionReason:
        assert self.reason is not None, "a retraction always says why"
        return self.reason


_PROFILE_FIELDS = tuple(SettingProfile.model_fields)


def profile_of(state: SettingState) -> SettingProfile | None:
    """The setting's public profile, or None when it has none (no field of it given)."""
    values = {name: getattr(state, name) for name in _PROFILE_FIELDS}
    if all(value is None for value in values.values()):
        return None
    return SettingProfile(**values)


@dataclass(frozen=True, slots=True)
class SettingRow:
    state: SettingState
    is_open: bool
    # Worked out once per state, not once per alert raised.
    profile: SettingProfile | None = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "profile", profile_of(self.state))


@dataclass
class Changes:
    """What one batch of events changed: the rows to write and what to tell whom, in order."""

    settings: dict[UUID, SettingRow] = field(default_factory=dict)
    occupancy: dict[UUID, int] = field(default_factory=dict)
    vacancies_posted: dict[UUID, VacancyPosted] = field(default_factory=dict)
    vacancies_closed: set[UUID] = field(default_factory=set)
    referrals: dict[UUID, ReferralState] = field(default_factory=dict)
    referrals_closed: set[UUID] = field(default_factory=set)
    holds: dict[UUID, Hold] = field(default_factory=dict)  # by request
    holds_released: set[UUID] = field(default_factory=set)
    raised: dict[UUID, Alert] = field(default_factory=dict)
    retracted: dict[UUID, Notice] = field(default_factory=dict)
    notices: list[Notice] = field(default_factory=list)
    # The placement loop's events told to the provider or council each concerns (notices.py).
    loop_notices: list[LoopNotice] = field(default_factory=list)

    def vacancy_posted(self, vacancy: VacancyPosted) -> None:
        _kept(self.vacancies_posted, self.vacancies_closed, vacancy.vacancy_id, vacancy)

    def vacancy_closed(self, vacancy_id: UUID) -> None:
        self.vacancies_closed.add(vacancy_id)  # posted in this batch: still written, then closed

    def referral_open(self, state: ReferralState) -> None:
        _kept(self.referrals, self.referrals_closed, state.referral_id, state)

    def referral_closed(self, referral_id: UUID) -> None:
        _gone(self.referrals, self.referrals_closed, referral_id)

    def hold_kept(self, hold: Hold) -> None:
        _kept(self.holds, self.holds_released, hold.request_id, hold)

    def hold_released(self, request_id: UUID) -> None:
        _gone(self.holds, self.holds_released, request_id)


_V = TypeVar("_V")


def _kept(kept: dict[UUID, _V], gone: set[UUID], key: UUID, value: _V) -> None:
    """`value` is to be written under `key`, and no longer to be written as gone."""
    kept[key] = value
    gone.discard(key)


def _gone(kept: dict[UUID, _V], gone: set[UUID], key: UUID) -> None:
    """`key` is to be written as gone, and whatever was to be written under it is not."""
    kept.pop(key, None)
    gone.add(key)


RetractionReasonFor = Callable[[OpenReferral, OpenVacancy | None], AlertRetractionReason]


def always(reason: AlertRetractionReason) -> RetractionReasonFor:
    return lambda _referral, _vacancy: reason


def reason_after_setting_change(
    referral: OpenReferral, vacancy: OpenVacancy | None
) -> AlertRetractionReason:
    """A setting updated below the referral's minimum rating says so; any other misfit is plain."""
    if vacancy is not None and "ofsted" in failed_rules(referral, vacancy):
        return AlertRetractionReason.RATING_BELOW_MINIMUM
    return AlertRetractionReason.NO_LONGER_FITS


def reason_vacancy_gone(event: Event) -> AlertRetractionReason:
    """Why a vacancy's alerts are retracted when it closes: withdrawn or expired, nothing else."""
    match event.payload:
        case VacancyWithdrawn():
            return AlertRetractionReason.VACANCY_WITHDRAWN
        case VacancyExpired():
            return AlertRetractionReason.VACANCY_EXPIRED
        case _:
            raise UnappliableEventError(f"{event.event_type} does not close a vacancy")


def occupancy_change(event: Event) -> tuple[int, AlertRetractionReason]:
    """Beds a placement event takes (negative: frees), and why an alert it spoils is retracted.

    A placement takes beds (and leaves the setting no longer empty for a solo placement); an
    ending frees them, and a vacancy may fit again.
    """
    match event.payload:
        case PlacementStarted(beds=beds):
            return beds, AlertRetractionReason.VACANCY_TAKEN
        case PlacementEnded(beds=beds):
            return -beds, AlertRetractionReason.NO_LONGER_FITS
        case _:
            raise UnappliableEventError(f"{event.event_type} neither starts nor ends a placement")


def free_beds(registered_places: int, occupied_beds: int, vacancy_beds: int) -> int:
    """Beds a vacancy can still fill: its own, but never more than the setting has free."""
    return matching.free_beds(vacancy_beds, registered_places, max(occupied_beds, 0))


def open_vacancy(
    setting: SettingState, vacancy: VacancyPosted, occupied_beds: int, held_beds: int = 0
) -> OpenVacancy:
    """The vacancy as matching sees it now: narrowed by its setting, with the beds still free.

    Beds held by offers (or taken by placements started from them) are not free.
    """
    occupied = max(occupied_beds, 0)
    offer = OpenVacancy.from_events(setting, vacancy, occupied)
    beds = free_beds(setting.registered_places, occupied, vacancy.beds - held_beds)
    return replace(offer, beds=beds)


class AlertBook:
    """Open settings, vacancies, referrals and alerts, kept as committed state (see store.py)."""

    def __init__(self, clock: Clock = utc_now) -> None:
        self._clock = clock
        self.index = CandidateIndex()
        self.settings: dict[UUID, SettingRow] = {}
        self.occupied: dict[UUID, int] = {}
        self.vacancies: dict[UUID, VacancyPosted] = {}  # open: posted, not withdrawn or expired
        self.vacancies_by_setting: dict[UUID, set[UUID]] = {}
        self.referrals: dict[UUID, ReferralState] = {}  # open, with their current search scope
        self.holds = Holds()  # on open vacancies
        self.alerts: dict[tuple[UUID, UUID], Alert] = {}  # open, by (referral, vacancy)
        self._alerted_referrals: dict[UUID, set[UUID]] = {}  # vacancy -> referrals alerted
        self._alerted_vacancies: dict[UUID, set[UUID]] = {}  # referral -> vacancies alerted

    @classmethod
    def of(  # noqa: PLR0913 - the committed records, one collection per kind
        cls,
        *,
        settings: Iterable[SettingRow],
        occupied: dict[UUID, int],
        vacancies: Iterable[VacancyPosted],
        referrals: Iterable[ReferralState],
        alerts: Iterable[Alert],
        holds: Iterable[Hold] = (),
        clock: Clock = utc_now,
    ) -> "AlertBook":
        """The book of committed state (loaded at start-up, or after a batch rolled back)."""
        book = cls(clock)
        book.settings = {row.state.setting_id: row for row in settings}
        book.occupied = dict(occupied)
        for hold in holds:
            book.holds.add(hold)
        for vacancy in vacancies:
            book.vacancies[vacancy.vacancy_id] = vacancy
            book.vacancies_by_setting.setdefault(vacancy.setting_id, set()).add(vacancy.vacancy_id)
            if (offer := book.open_vacancy(vacancy.vacancy_id)) is not None:
                book.index.add_vacancy(offer)
        for referral in referrals:
            book.referrals[referral.referral_id] = referral
            book.index.add_referral(OpenReferral.from_event(referral))
        for alert in alerts:
            book._file(alert)
        book.index.settle()  # every record in its columns' arrays now, not at the first match
        return book

    # --- reading ----------------------------------------------------------------------------------

    def open_vacancy(self, vacancy_id: UUID, *, sparing: UUID | None = None) -> OpenVacancy | None:
        """The vacancy as matching sees it, or None while its setting is unknown or closed.

        Its free beds leave out those held by offers, except the offers for referral `sparing`.
        """
        vacancy = self.vacancies.get(vacancy_id)
        if vacancy is None:
            return None
        setting = self.settings.get(vacancy.setting_id)
        if setting is None or not setting.is_open:
            return None
        occupied = self.occupied.get(vacancy.setting_id, 0)
        held = self.holds.beds_held(vacancy_id, sparing=sparing)
        return open_vacancy(setting.state, vacancy, occupied, held)

    def alerts_of_vacancy(self, vacancy_id: UUID) -> list[Alert]:
        referrals = self._alerted_referrals.get(vacancy_id, ())
        return [self.alerts[(referral_id, vacancy_id)] for referral_id in referrals]

    def alerts_of_referral(self, referral_id: UUID) -> list[Alert]:
        vacancies = self._alerted_vacancies.get(referral_id, ())
        return [self.alerts[(referral_id, vacancy_id)] for vacancy_id in vacancies]

    # --- applying events --------------------------------------------------------------------------

    def apply(self, event: Event, changes: Changes) -> None:  # noqa: C901, PLR0912 - routing table
        """Fold one event into the book, recording in `changes` what to write and whom to tell."""
        payload = event.payload
        match payload:
            case SettingRegistered() | SettingUpdated():
                self._setting_state(event, payload, changes)
            case SettingClosed():
                self._setting_closed(event, payload, changes)
            case VacancyPosted():
                self._vacancy_posted(event, payload, changes)
            case VacancyConfirmed():
                pass  # still open, on the same terms: nothing to match again
            case VacancyWithdrawn() | VacancyExpired():
                self._vacancy_gone(event, payload, changes)
            case PlacementStarted() | PlacementEnded():
                self._occupancy_changed(event, payload, changes)
            case ReferralOpened() | ReferralUpdated():
                self._referral_state(event, payload, changes)
            case ReferralWidened():
                self._referral_widened(event, payload, changes)
            case ReferralClosed():
                self._referral_closed(event, payload, changes)
            case PlacementOffered():
                changes.loop_notices.append(loop_notice_of(event))
                self._offer_made(event, payload, changes)
            case OfferExpired() | OfferWithdrawn():
                changes.loop_notices.append(loop_notice_of(event))
                self._offer_ended(event, payload, changes)
            case PlacementRequested() | RequestWithdrawn() | OfferAccepted() | PlacementDeclined():
                # A request holds no bed (only an offer does), and a decline or an accepted offer
                # changes none: the offer's own events, and the placement, say what happens to it.
                # Each is only told to the provider or council it concerns.
                changes.loop_notices.append(loop_notice_of(event))
            case _:
                raise UnappliableEventError(f"alerting does not apply {event.event_type} events")

    def _setting_state(
        self, event: Event, payload: SettingRegistered | SettingUpdated, changes: Changes
    ) -> None:
        known = self.settings.get(payload.setting_id)
        row = SettingRow(payload, is_open=known.is_open if known is not None else True)
        self.settings[payload.setting_id] = row
        changes.settings[payload.setting_id] = row
        self._refresh_setting(event, payload.setting_id, changes, reason_after_setting_change)

    def _setting_closed(self, event: Event, payload: SettingClosed, changes: Changes) -> None:
        known = self._known_setting(event, payload.setting_id)
        row = replace(known, is_open=False)
        self.settings[payload.setting_id] = row
        changes.settings[payload.setting_id] = row
        reason = always(AlertRetractionReason.SETTING_CLOSED)
        self._refresh_setting(event, payload.setting_id, changes, reason)

    def _vacancy_posted(self, event: Event, payload: VacancyPosted, changes: Changes) -> None:
        self.vacancies[payload.vacancy_id] = payload
        self.vacancies_by_setting.setdefault(payload.setting_id, set()).add(payload.vacancy_id)
        changes.vacancy_posted(payload)
        # A vacancy of a setting not known yet waits unindexed; its setting's event indexes it.
        self._refresh_vacancy(event, payload.vacancy_id, changes, reason_after_setting_change)

    def _vacancy_gone(
        self, event: Event, payload: VacancyWithdrawn | VacancyExpired, changes: Changes
    ) -> None:
        reason = reason_vacancy_gone(event)  # an event of any other type is refused here
        vacancy = self.vacancies.pop(payload.vacancy_id, None)
        if vacancy is None:
            raise UnappliableEventError(
                f"{event.event_type} for vacancy {payload.vacancy_id}, which is not open here"
            )
        at_setting = self.vacancies_by_setting.get(vacancy.setting_id, set())
        at_setting.discard(payload.vacancy_id)
        if not at_setting:
            self.vacancies_by_setting.pop(vacancy.setting_id, None)
        changes.vacancy_closed(payload.vacancy_id)
        for hold in self.holds.remove_vacancy(payload.vacancy_id):
            changes.hold_released(hold.request_id)
        self.index.remove_vacancy(payload.vacancy_id)
        for alert in self.alerts_of_vacancy(payload.vacancy_id):
            self._retract(event, alert, reason, changes)

    def _occupancy_changed(
        self, event: Event, payload: PlacementStarted | PlacementEnded, changes: Changes
    ) -> None:
        change, reason = occupancy_change(event)
        match payload:
            case PlacementStarted(request_id=UUID() as request_id):
                # From an accepted offer: its held beds are taken, never to be freed again.
                if (taken := self.holds.take(request_id)) is not None:
                    changes.hold_kept(taken)
            case _:
                pass
        occupied = self.occupied.get(payload.setting_id, 0) + change
        self.occupied[payload.setting_id] = occupied
        changes.occupancy[payload.setting_id] = occupied
        self._refresh_setting(event, payload.setting_id, changes, always(reason))

    def _referral_state(
        self, event: Event, payload: ReferralOpened | ReferralUpdated, changes: Changes
    ) -> None:
        self._index_referral(event, payload, changes)

    def _referral_widened(self, event: Event, payload: ReferralWidened, changes: Changes) -> None:
        known = self.referrals.get(payload.referral_id)
        if known is None:
            raise UnappliableEventError(
                f"ReferralWidened for referral {payload.referral_id}, which is not open here"
            )
        widened = known.model_copy(update={"search_scope": SearchScope(payload.search_scope)})
        self._index_referral(event, widened, changes)

    def _referral_closed(self, event: Event, payload: ReferralClosed, changes: Changes) -> None:
        self.referrals.pop(payload.referral_id, None)
        self.index.remove_referral(payload.referral_id)
        changes.referral_closed(payload.referral_id)
        for alert in self.alerts_of_referral(payload.referral_id):
            self._retract(event, alert, AlertRetractionReason.REFERRAL_CLOSED, changes)

    def _offer_made(self, event: Event, payload: PlacementOffered, changes: Changes) -> None:
        if payload.vacancy_id not in self.vacancies:
            return  # the vacancy closed: its holds went with it
        hold = Hold(payload.request_id, payload.vacancy_id, payload.referral_id, payload.beds)
        self.holds.add(hold)
        changes.hold_kept(hold)
        reason = always(AlertRetractionReason.HELD)
        self._refresh_vacancy(event, payload.vacancy_id, changes, reason)

    def _offer_ended(
        self, event: Event, payload: OfferExpired | OfferWithdrawn, changes: Changes
    ) -> None:
        hold = self.holds.get(payload.request_id)
        # None: the hold went with its vacancy; taken: a placement has the beds, nothing to free.
        if hold is None or hold.taken:
            return
        self.holds.remove(payload.request_id)
        changes.hold_released(payload.request_id)
        reason = always(AlertRetractionReason.NO_LONGER_FITS)
        self._refresh_vacancy(event, payload.vacancy_id, changes, reason)

    def _known_setting(self, event: Event, setting_id: UUID) -> SettingRow:
        known = self.settings.get(setting_id)
        if known is None:
            raise UnappliableEventError(
                f"{event.event_type} for setting {setting_id}, which is not known here"
            )
        return known

    # --- matching again ---------------------------------------------------------------------------

    def _index_referral(self, event: Event, state: ReferralState, changes: Changes) -> None:
        self.referrals[state.referral_id] = state
        changes.referral_open(state)
        referral = OpenReferral.from_event(state)
        self.index.add_referral(referral)
        fitting = {fit.vacancy_id: fit for fit in self.index.vacancies_fitting(referral)}
        for vacancy_id in self.holds.vacancies_held_for(referral.referral_id):
            if (fit := self._fit_on_own_hold(referral.referral_id, vacancy_id)) is not None:
                fitting[vacancy_id] = fit
        for alert in self.alerts_of_referral(referral.referral_id):
            if alert.fit.vacancy_id not in fitting:
                self._retract(event, alert, AlertRetractionReason.NO_LONGER_FITS, changes)
        for vacancy_id, fit in fitting.items():
            if (referral.referral_id, vacancy_id) not in self.alerts:
                self._raise(event, fit, changes)

    def _refresh_setting(
        self, event: Event, setting_id: UUID, changes: Changes, reason: RetractionReasonFor
    ) -> None:
        for vacancy_id in sorted(self.vacancies_by_setting.get(setting_id, ())):
            self._refresh_vacancy(event, vacancy_id, changes, reason)

    def _refresh_vacancy(
        self, event: Event, vacancy_id: UUID, changes: Changes, reason: RetractionReasonFor
    ) -> None:
        """Index the vacancy as it is now; retract alerts it no longer fits, raise new fits."""
        offer = self.open_vacancy(vacancy_id)
        if offer is None:
            self.index.remove_vacancy(vacancy_id)
            fitting: dict[UUID, Fit] = {}
        else:
            self.index.add_vacancy(offer)
            fitting = {fit.referral_id: fit for fit in self.index.referrals_fitting(offer)}
            for referral_id in self.holds.referrals_holding(vacancy_id):
                if (fit := self._fit_on_own_hold(referral_id, vacancy_id)) is not None:
                    fitting[referral_id] = fit
        for alert in self.alerts_of_vacancy(vacancy_id):
            if alert.fit.referral_id not in fitting:
                referral = self.index.referrals[alert.fit.referral_id]
                self._retract(event, alert, reason(referral, offer), changes)
        for referral_id, fit in fitting.items():
            if (referral_id, vacancy_id) not in self.alerts:
                self._raise(event, fit, changes)

    def _fit_on_own_hold(self, referral_id: UUID, vacancy_id: UUID) -> Fit | None:
        """The fit for the referral an offer holds the vacancy's beds for, counting them free."""
        referral = self.index.referrals.get(referral_id)
        offer = self.open_vacancy(vacancy_id, sparing=referral_id)
        if referral is None or offer is None:
            return None
        return fits(referral, offer)

    # --- alerts -----------------------------------------------------------------------------------

    def _raise(self, event: Event, fit: Fit, changes: Changes) -> None:
        now = self._clock()
        setting = self.settings.get(fit.setting_id)
        profile = None if setting is None else setting.profile
        alert = Alert(alert_id=uuid4(), fit=fit, raised_at=now, setting_profile=profile)
        self._file(alert)
        changes.raised[alert.alert_id] = alert
        changes.notices.append(Notice(NoticeKind.RAISED, alert, now, event))

    def _retract(
        self, event: Event, alert: Alert, reason: AlertRetractionReason, changes: Changes
    ) -> None:
        referral_id, vacancy_id = alert.pair
        del self.alerts[alert.pair]
        _discard(self._alerted_referrals, vacancy_id, referral_id)
        _discard(self._alerted_vacancies, referral_id, vacancy_id)
        notice = Notice(NoticeKind.RETRACTED, alert, self._clock(), event, reason)
        changes.retracted[alert.alert_id] = notice
        changes.notices.append(notice)

    def _file(self, alert: Alert) -> None:
        referral_id, vacancy_id = alert.pair
        self.alerts[alert.pair] = alert
        self._alerted_referrals.setdefault(vacancy_id, set()).add(referral_id)
        self._alerted_vacancies.setdefault(referral_id, set()).add(vacancy_id)


def _discard(index: dict[UUID, set[UUID]], key: UUID, member: UUID) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(member)
        if not members:
            del index[key]
