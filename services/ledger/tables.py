"""The ledger's tables, declared once: record state, capacity history and the consumer's tables.

Every table lives in the `ledger` schema; a rebuild replays the topics into a copy of the same
tables in another schema (`tables_in`).
"""

import functools
from datetime import datetime
from typing import Final
from uuid import UUID

from sqlalchemy import BigInteger, Index, MetaData, Table, Text, text
from sqlmodel import Field, SQLModel

from contracts.enums import DeclineReason, Need, OfstedRating, PlacementType
from services.ledger.domain import AnswerStatus, RequestStatus, VacancyStatus
from services.platform.consumer import consumer_tables
from services.platform.tables import EnumText, EnumTuple, UtcDateTime, schema_registry, table_of

SCHEMA: Final = "ledger"
REGISTRY = schema_registry(SCHEMA)
METADATA = REGISTRY.metadata


class LedgerTable(SQLModel, registry=REGISTRY):
    """Base of the ledger's tables: each of them lives in the ledger's schema."""


# --- record state: one row per record, as the consumer last saved it ----------------------------


class SettingRow(LedgerTable, table=True):
    __tablename__ = "settings"
    __table_args__ = (Index("settings_by_council", "authority_code", "placement_type"),)

    setting_id: UUID = Field(primary_key=True)
    provider_id: str = Field(sa_type=Text)
    placement_type: PlacementType = Field(sa_type=EnumText(PlacementType))
    registered_places: int
    ofsted_rating: OfstedRating = Field(sa_type=EnumText(OfstedRating))
    postcode_district: str = Field(sa_type=Text)
    authority_code: str = Field(sa_type=Text)
    is_open: bool


class VacancyRow(LedgerTable, table=True):
    __tablename__ = "vacancies"
    __table_args__ = (
        Index("vacancies_open_by_setting", "setting_id", postgresql_where=text("status = 'open'")),
    )

    vacancy_id: UUID = Field(primary_key=True)
    setting_id: UUID  # no foreign key: its setting may come later
    beds: int
    status: VacancyStatus = Field(sa_type=EnumText(VacancyStatus))
    posted_at: datetime = Field(sa_type=UtcDateTime)
    last_confirmed_at: datetime = Field(sa_type=UtcDateTime)


class PlacementRow(LedgerTable, table=True):
    __tablename__ = "placements"
    __table_args__ = (
        Index("placements_active_by_setting", "setting_id", postgresql_where=text("is_active")),
        # Which offers' holds placements took (few rows: only placements from a request).
        Index(
            "placements_by_request",
            "request_id",
            postgresql_where=text("request_id IS NOT NULL"),
        ),
    )

    placement_id: UUID = Field(primary_key=True)
    setting_id: UUID
    placing_authority_code: str = Field(sa_type=Text)
    beds: int
    is_active: bool
    request_id: UUID | None = Field(default=None)
    referral_id: UUID | None = Field(default=None)


class ReferralRow(LedgerTable, table=True):
    __tablename__ = "referrals"

    referral_id: UUID = Field(primary_key=True)
    authority_code: str = Field(sa_type=Text)
    placement_types: tuple[PlacementType, ...] = Field(sa_type=EnumTuple(PlacementType))
    is_open: bool


class RequestRow(LedgerTable, table=True):
    """A council's placement request (from its referral's events)."""

    __tablename__ = "requests"
    __table_args__ = (
        Index("requests_by_setting", "setting_id"),
        Index("requests_by_referral", "referral_id"),
    )

    request_id: UUID = Field(primary_key=True)
    referral_id: UUID
    authority_code: str = Field(sa_type=Text)
    vacancy_id: UUID  # no foreign keys: the vacancy's events come on another topic
    setting_id: UUID
    requested_at: datetime = Field(sa_type=UtcDateTime)
    needs: tuple[Need, ...] = Field(sa_type=EnumTuple(Need))
    home_postcode_district: str = Field(sa_type=Text)
    status: RequestStatus = Field(sa_type=EnumText(RequestStatus))


class AnswerRow(LedgerTable, table=True):
    """A provider's answer to a placement request (from its vacancy's events)."""

    __tablename__ = "answers"
    __table_args__ = (
        Index("answers_by_setting", "setting_id"),
        Index("answers_offered", "setting_id", postgresql_where=text("status = 'offered'")),
    )

    request_id: UUID = Field(primary_key=True)
    vacancy_id: UUID
    setting_id: UUID
    authority_code: str = Field(sa_type=Text)
    first_answered_at: datetime = Field(sa_type=UtcDateTime)
    status: AnswerStatus = Field(sa_type=EnumText(AnswerStatus))
    offered_beds: int
    decline_reason: DeclineReason | None = Field(default=None, sa_type=EnumText(DeclineReason))


# --- capacity history: a row holds until a later row for its key --------------------------------


class CapacityHistoryRow(LedgerTable, table=True):
    """One council's figures for one placement type, as a snapshot found them."""

    __tablename__ = "capacity_history"
    __table_args__ = (
        Index("capacity_history_by_key", "authority_code", "placement_type", "taken_at"),
        Index("capacity_history_by_time", "taken_at"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInteger)
    taken_at: datetime = Field(sa_type=UtcDateTime)
    authority_code: str = Field(sa_type=Text)
    placement_type: PlacementType = Field(sa_type=EnumText(PlacementType))
    registered_places: int
    occupied: int
    vacant: int
    offered: int
    stale_vacancies: int
    open_referrals: int
    # Added by migration 0002 (rows before it held no offers): last, as ALTER TABLE puts it.
    held: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})


class FlowHistoryRow(LedgerTable, table=True):
    """Beds in one council's settings occupied by another council's children, as a snapshot
    found them."""

    __tablename__ = "flow_history"
    __table_args__ = (
        Index(
            "flow_history_by_key",
            "authority_code",
            "placing_authority_code",
            "placement_type",
            "taken_at",
        ),
        Index("flow_history_by_time", "taken_at"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInteger)
    taken_at: datetime = Field(sa_type=UtcDateTime)
    authority_code: str = Field(sa_type=Text)
    placing_authority_code: str = Field(sa_type=Text)
    placement_type: PlacementType = Field(sa_type=EnumText(PlacementType))
    beds: int


SETTINGS = table_of(SettingRow)
VACANCIES = table_of(VacancyRow)
PLACEMENTS = table_of(PlacementRow)
REFERRALS = table_of(ReferralRow)
REQUESTS = table_of(RequestRow)
ANSWERS = table_of(AnswerRow)
CAPACITY_HISTORY = table_of(CapacityHistoryRow)
FLOW_HISTORY = table_of(FlowHistoryRow)
INBOX, CONSUMER_POSITIONS, AGGREGATE_VERSIONS, PARKED_EVENTS = consumer_tables(METADATA)


@functools.cache
def tables_in(schema: str) -> MetaData:
    """The ledger's tables in `schema`: its own, or a copy for a rebuild beside the live ones."""
    if schema == SCHEMA:
        return METADATA
    copy = MetaData(schema=schema)
    for table in METADATA.sorted_tables:
        table.to_metadata(copy, schema=schema)
    return copy


def table_in(table: Table, schema: str) -> Table:
    """`table` (one of the ledger's) as it is in `schema`."""
    return tables_in(schema).tables[f"{schema}.{table.name}"]
