"""The provider schema, declared once: settings, vacancies, placements, outbox, idempotency keys.

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
    Need,
    OfstedRating,
    PlacementEndReason,
    PlacementType,
    Sex,
    WithdrawalReason,
)
from services.platform.idempotency import idempotency_table
from services.platform.outbox import outbox_table
from services.platform.tables import EnumText, EnumTuple, UtcDateTime, schema_registry

REGISTRY = schema_registry("provider")


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
        Index(
            "vacancies_open_by_confirmation",
            "last_confirmed_at",
            postgresql_where=text("status = 'open'"),
        ),
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


METADATA = REGISTRY.metadata
OUTBOX = outbox_table(METADATA)
IDEMPOTENCY_KEYS = idempotency_table(METADATA)
