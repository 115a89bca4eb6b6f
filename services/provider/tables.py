"""The provider schema, declared once: settings, vacancies, placements, placement requests, the
outbox, idempotency keys and the referral.events consumer's tables.

Each record's columns are one SQLModel class (`SettingRecord`, ...): the table class adds its name
and indexes, and the HTTP answers inherit the same fields. The classes do not validate (SQLModel
tables never do), so input is validated as its contract (`contracts.events`) before it becomes a
row.
"""

from datetime import date, datetime
from enum import StrEnum
from uuid import UUID

from sqlalchemy import Index, Text, text
from sqlmodel import Field, SQLModel

from contracts.enums import (
    DeclineReason,
    Need,
    OfferWithdrawalReason,
    OfstedRating,
    PlacementEndReason,
    PlacementType,
    RequestWithdrawalReason,
    Sex,
    Urgency,
    WithdrawalReason,
)
from services.platform.consumer import consumer_tables
from services.platform.idempotency import idempotency_table
from services.platform.outbox import outbox_table
from services.platform.tables import EnumText, EnumTuple, UtcDateTime, schema_registry

SCHEMA = "provider"
REGISTRY = schema_registry(SCHEMA)


def _in_status(status: StrEnum, name: str, column: str) -> Index:
    """A partial index of the rows in one `status` by `column` (a scheduler's query)."""
    return Index(name, column, postgresql_where=text(f"status = '{status.value}'"))


class SettingStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class VacancyStatus(StrEnum):
    OPEN = "open"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


class PlacementStatus(StrEnum):
    ACTIVE = "active"
    ENDED = "ended"


class RequestStatus(StrEnum):
    """Where a council's placement request stands with the provider it was sent to."""

    REQUESTED = "requested"  # waiting for the provider's answer
    OFFERED = "offered"  # the provider holds beds for it until the offer expires
    DECLINED = "declined"
    OFFER_EXPIRED = "offer_expired"
    OFFER_WITHDRAWN = "offer_withdrawn"  # the provider released the hold (vacancy or setting gone)
    WITHDRAWN = "withdrawn"  # by the council
    ACCEPTED = "accepted"  # the council accepted the offer; the beds stay held for the placement
    PLACED = "placed"


# A request in one of these holds its offered beds at the vacancy.
HOLDING = (RequestStatus.OFFERED, RequestStatus.ACCEPTED)


class ProviderTable(SQLModel, registry=REGISTRY):
    """Base of the provider's tables: each lives in the `provider` schema."""


class SettingRecord(SQLModel):
    """A setting as stored: its description and council, and where it is in its life."""

    setting_id: UUID = Field(primary_key=True)
    provider_id: str = Field(sa_type=Text)
    status: SettingStatus = Field(sa_type=EnumText(SettingStatus))
    placement_type: PlacementType = Field(sa_type=EnumText(PlacementType))
    registered_places: int
    ofsted_rating: OfstedRating = Field(sa_type=EnumText(OfstedRating))
    age_min: int
    age_max: int
    sexes_accepted: tuple[Sex, ...] = Field(sa_type=EnumTuple(Sex))
    needs_met: tuple[Need, ...] = Field(sa_type=EnumTuple(Need))
    postcode_district: str = Field(sa_type=Text)
    authority_code: str = Field(sa_type=Text)
    # The public profile (`contracts.events.SettingProfile`): none for a foster household, or for
    # a setting registered before profiles existed until its provider adds one.
    name: str | None = Field(default=None, sa_type=Text)
    ofsted_urn: str | None = Field(default=None, sa_type=Text)
    referrals_email: str | None = Field(default=None, sa_type=Text)
    referrals_phone: str | None = Field(default=None, sa_type=Text)
    description: str | None = Field(default=None, sa_type=Text)
    closed_on: date | None = None
    version: int
    registered_at: datetime = Field(sa_type=UtcDateTime)
    updated_at: datetime = Field(sa_type=UtcDateTime)


class Setting(SettingRecord, ProviderTable, table=True):
    __tablename__ = "settings"
    __table_args__ = (Index("settings_by_provider", "provider_id", "registered_at"),)


class VacancyRecord(SQLModel):
    """A vacancy as stored; terms left `None` are the setting's own."""

    vacancy_id: UUID = Field(primary_key=True)
    setting_id: UUID = Field(foreign_key="settings.setting_id")
    provider_id: str = Field(sa_type=Text)
    status: VacancyStatus = Field(sa_type=EnumText(VacancyStatus))
    beds: int
    available_from: date
    age_min: int | None = None
    age_max: int | None = None
    sexes_accepted: tuple[Sex, ...] | None = Field(default=None, sa_type=EnumTuple(Sex))
    needs_met: tuple[Need, ...] | None = Field(default=None, sa_type=EnumTuple(Need))
    withdrawal_reason: WithdrawalReason | None = Field(
        default=None, sa_type=EnumText(WithdrawalReason)
    )
    posted_at: datetime = Field(sa_type=UtcDateTime)
    last_confirmed_at: datetime = Field(sa_type=UtcDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    version: int


class Vacancy(VacancyRecord, ProviderTable, table=True):
    __tablename__ = "vacancies"
    __table_args__ = (
        Index("vacancies_by_setting", "setting_id", "status"),
        Index("vacancies_by_provider", "provider_id", "posted_at"),
        # The expiry scheduler's query: open vacancies by their last confirmation.
        _in_status(VacancyStatus.OPEN, "vacancies_open_by_confirmation", "last_confirmed_at"),
    )


class PlacementRecord(SQLModel):
    """A placement as stored: a child (or sibling group) living at a setting."""

    placement_id: UUID = Field(primary_key=True)
    setting_id: UUID = Field(foreign_key="settings.setting_id")
    provider_id: str = Field(sa_type=Text)
    status: PlacementStatus = Field(sa_type=EnumText(PlacementStatus))
    placing_authority_code: str = Field(sa_type=Text)
    start_date: date
    beds: int
    vacancy_id: UUID | None = None
    end_date: date | None = None
    end_reason: PlacementEndReason | None = Field(
        default=None, sa_type=EnumText(PlacementEndReason)
    )
    recorded_at: datetime = Field(sa_type=UtcDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    version: int


class Placement(PlacementRecord, ProviderTable, table=True):
    __tablename__ = "placements"
    __table_args__ = (
        Index("placements_by_setting", "setting_id", "status"),
        Index("placements_by_provider", "provider_id", "recorded_at"),
    )


class RequestRecord(SQLModel):
    """A council's request for a vacancy's beds, as the provider it was sent to sees it.

    The child is pseudonymous: age, sex, needs, sibling group, home district, date needed and
    urgency, as `contracts.events.RequestedChild` gives them. Never a name, a date of birth, an
    address or the council's case reference.
    """

    request_id: UUID = Field(primary_key=True)
    referral_id: UUID
    authority_code: str = Field(sa_type=Text)
    vacancy_id: UUID = Field(foreign_key="vacancies.vacancy_id")
    setting_id: UUID = Field(foreign_key="settings.setting_id")
    provider_id: str = Field(sa_type=Text)
    age: int
    sex: Sex = Field(sa_type=EnumText(Sex))
    sibling_group_size: int
    needs: tuple[Need, ...] = Field(sa_type=EnumTuple(Need))
    home_postcode_district: str = Field(sa_type=Text)
    needed_by: date
    urgency: Urgency = Field(sa_type=EnumText(Urgency))
    status: RequestStatus = Field(sa_type=EnumText(RequestStatus))
    requested_at: datetime = Field(sa_type=UtcDateTime)
    # The provider's answer: the beds offered (held while the request is in HOLDING), until when.
    offered_beds: int | None = None
    offer_expires_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    weekly_fee_gbp: float | None = None
    decline_reason: DeclineReason | None = Field(default=None, sa_type=EnumText(DeclineReason))
    withdrawal_reason: RequestWithdrawalReason | None = Field(
        default=None, sa_type=EnumText(RequestWithdrawalReason)
    )
    offer_withdrawal_reason: OfferWithdrawalReason | None = Field(
        default=None, sa_type=EnumText(OfferWithdrawalReason)
    )
    answered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    placement_id: UUID | None = None
    updated_at: datetime = Field(sa_type=UtcDateTime)


class Request(RequestRecord, ProviderTable, table=True):
    __tablename__ = "requests"
    __table_args__ = (
        Index("requests_by_provider", "provider_id", "requested_at"),
        Index("requests_by_vacancy", "vacancy_id", "status"),
        # The offer-expiry scheduler's query: open offers by when they expire.
        _in_status(RequestStatus.OFFERED, "offers_open_by_expiry", "offer_expires_at"),
    )


METADATA = REGISTRY.metadata
OUTBOX = outbox_table(METADATA)
IDEMPOTENCY_KEYS = idempotency_table(METADATA)
# The inbox, stored positions, aggregate versions and parked events of the referral.events consumer.
CONSUMER_TABLES = consumer_tables(METADATA)
