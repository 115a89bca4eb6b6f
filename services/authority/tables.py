"""The authority schema, declared once: referrals, their placement requests, the append-only audit
log, the view of the provider side (settings, open vacancies, beds occupied), outbox, idempotency
and the consumer's tables.

The classes serve reads and writes; they do not validate (SQLModel tables never do), so a referral
is validated as the contract's `ReferralDescription` before it becomes a row, and the provider view
is written only from validated events.
"""

from datetime import date, datetime, timedelta
from enum import StrEnum
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Index,
    SmallInteger,
    Text,
    text,
)
from sqlmodel import Field, SQLModel

from contracts.enums import (
    DeclineReason,
    Need,
    OfferWithdrawalReason,
    OfstedRating,
    PlacementType,
    ReferralOutcome,
    RequestWithdrawalReason,
    SearchScope,
    Sex,
    Urgency,
)
from services.platform.consumer import consumer_tables
from services.platform.idempotency import idempotency_table
from services.platform.outbox import outbox_table
from services.platform.tables import EnumText, EnumTuple, UtcDateTime, schema_registry

REGISTRY = schema_registry("authority")


class ReferralStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class AuditAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    CLOSE = "close"
    READ = "read"
    LIST = "list"
    WIDEN = "widen"
    REQUEST = "request"
    LIST_REQUESTS = "list_requests"
    ACCEPT = "accept"
    WITHDRAW = "withdraw"


class RequestStatus(StrEnum):
    """Where a placement request stands: sent, answered by the provider, or ended."""

    REQUESTED = "requested"
    OFFERED = "offered"
    DECLINED = "declined"
    EXPIRED = "expired"
    OFFER_WITHDRAWN = "offer_withdrawn"
    WITHDRAWN = "withdrawn"
    ACCEPTED = "accepted"
    PLACED = "placed"


# A request still in play: at most one per (referral, vacancy), and each is withdrawn when its
# referral is placed or closed.
OPEN_REQUEST_STATUSES = (RequestStatus.REQUESTED, RequestStatus.OFFERED, RequestStatus.ACCEPTED)
_OPEN_REQUEST_SQL = "status IN ('requested', 'offered', 'accepted')"


class AuditOutcome(StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    INVALID = "invalid"
    UNAUTHENTICATED = "unauthenticated"
    ERROR = "error"


class AuthorityTable(SQLModel, registry=REGISTRY):
    """Base of the authority's tables: each lives in the `authority` schema."""


class Referral(AuthorityTable, table=True):
    """One referral as its single writer sees it; `version` is its last event's sequence.

    Only what matching needs: no names, dates of birth, addresses or notes (docs/domain.md).
    """

    __tablename__ = "referrals"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'closed')", name="referrals_status_known"),
        CheckConstraint(
            "(status = 'closed') = (outcome IS NOT NULL)", name="referrals_closed_has_outcome"
        ),
        Index("referrals_by_council", "authority_code", "status", "opened_at"),
        Index(
            "referrals_due_to_widen",
            "widen_at",
            postgresql_where=text(
                "status = 'open' AND search_scope = 'local' AND widened_at IS NULL"
            ),
        ),
    )

    referral_id: UUID = Field(primary_key=True)
    authority_code: str = Field(sa_type=Text)
    reference: str = Field(sa_type=Text)
    age: int = Field(sa_type=SmallInteger)
    sex: Sex = Field(sa_type=EnumText(Sex))
    needs: tuple[Need, ...] = Field(sa_type=EnumTuple(Need))
    sibling_group_size: int
    placement_types: tuple[PlacementType, ...] = Field(sa_type=EnumTuple(PlacementType))
    home_postcode_district: str = Field(sa_type=Text)
    needed_by: date
    urgency: Urgency = Field(sa_type=EnumText(Urgency))
    min_ofsted_rating: OfstedRating = Field(sa_type=EnumText(OfstedRating))
    accept_not_yet_inspected: bool
    search_scope: SearchScope = Field(sa_type=EnumText(SearchScope))
    status: ReferralStatus = Field(sa_type=EnumText(ReferralStatus))
    outcome: ReferralOutcome | None = Field(default=None, sa_type=EnumText(ReferralOutcome))
    version: int
    opened_at: datetime = Field(sa_type=UtcDateTime)
    updated_at: datetime = Field(sa_type=UtcDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    # The council's own choice; NULL means the default for the referral's urgency.
    chosen_widen_after: timedelta | None = None
    widen_at: datetime = Field(sa_type=UtcDateTime)
    widened_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class AuditEntry(AuthorityTable, table=True):
    """One audited attempt to read or write referrals; never a request body.

    Append-only: the migration installs a trigger that refuses UPDATE, DELETE and TRUNCATE.
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index("audit_log_by_referral", "referral_id"),)

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True)
    )
    at: datetime = Field(sa_type=UtcDateTime)
    actor: str | None = Field(default=None, sa_type=Text)
    role: str | None = Field(default=None, sa_type=Text)
    organisation: str | None = Field(default=None, sa_type=Text)
    action: AuditAction = Field(sa_type=EnumText(AuditAction))
    referral_id: UUID | None = None
    outcome: AuditOutcome = Field(sa_type=EnumText(AuditOutcome))
    status_code: int | None = None
    request_id: str | None = Field(default=None, sa_type=Text)


class PlacementRequest(AuthorityTable, table=True):
    """A council's request for one vacancy's bed(s) for one referral, and the provider's answer.

    Written by the council's requests (requested, accepted, withdrawn) and by the consumer of
    `provider.events` (offered, declined, expired, offer withdrawn, placed).
    """

    __tablename__ = "placement_requests"
    __table_args__ = (
        Index("placement_requests_by_referral", "referral_id", "requested_at"),
        Index(
            "placement_requests_one_open_per_vacancy",
            "referral_id",
            "vacancy_id",
            unique=True,
            postgresql_where=text(_OPEN_REQUEST_SQL),
        ),
    )

    request_id: UUID = Field(primary_key=True)
    referral_id: UUID
    authority_code: str = Field(sa_type=Text)
    vacancy_id: UUID
    setting_id: UUID
    provider_id: str = Field(sa_type=Text)
    status: RequestStatus = Field(sa_type=EnumText(RequestStatus))
    requested_at: datetime = Field(sa_type=UtcDateTime)
    updated_at: datetime = Field(sa_type=UtcDateTime)
    offered_beds: int | None = None
    offer_expires_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    weekly_fee_gbp: float | None = None
    decline_reason: DeclineReason | None = Field(default=None, sa_type=EnumText(DeclineReason))
    offer_withdrawal_reason: OfferWithdrawalReason | None = Field(
        default=None, sa_type=EnumText(OfferWithdrawalReason)
    )
    withdrawal_reason: RequestWithdrawalReason | None = Field(
        default=None, sa_type=EnumText(RequestWithdrawalReason)
    )
    placement_id: UUID | None = None


# --- the view of the provider side, kept by the consumer of provider.events -----------------------


class ProviderSetting(AuthorityTable, table=True):
    """A setting as its latest SettingRegistered/SettingUpdated said, open until SettingClosed."""

    __tablename__ = "provider_settings"

    setting_id: UUID = Field(primary_key=True)
    provider_id: str = Field(sa_type=Text)
    placement_type: PlacementType = Field(sa_type=EnumText(PlacementType))
    registered_places: int
    ofsted_rating: OfstedRating = Field(sa_type=EnumText(OfstedRating))
    age_min: int = Field(sa_type=SmallInteger)
    age_max: int = Field(sa_type=SmallInteger)
    sexes_accepted: tuple[Sex, ...] = Field(sa_type=EnumTuple(Sex))
    needs_met: tuple[Need, ...] = Field(sa_type=EnumTuple(Need))
    postcode_district: str = Field(sa_type=Text)
    authority_code: str = Field(sa_type=Text)
    is_open: bool
    # The public profile (none for a setting registered without one).
    name: str | None = Field(default=None, sa_type=Text)
    ofsted_urn: str | None = Field(default=None, sa_type=Text)
    referrals_email: str | None = Field(default=None, sa_type=Text)
    referrals_phone: str | None = Field(default=None, sa_type=Text)
    description: str | None = Field(default=None, sa_type=Text)


class SettingOccupancy(AuthorityTable, table=True):
    """Beds taken at a setting by active placements (PlacementStarted less PlacementEnded)."""

    __tablename__ = "setting_occupancy"

    setting_id: UUID = Field(primary_key=True)
    occupied_beds: int


class ProviderVacancy(AuthorityTable, table=True):
    """A vacancy as posted; its terms, where given, narrow its setting's. Open until it ends."""

    __tablename__ = "provider_vacancies"

    vacancy_id: UUID = Field(primary_key=True)
    setting_id: UUID
    provider_id: str = Field(sa_type=Text)
    beds: int
    available_from: date
    age_min: int | None = Field(default=None, sa_type=SmallInteger)
    age_max: int | None = Field(default=None, sa_type=SmallInteger)
    sexes_accepted: tuple[Sex, ...] | None = Field(default=None, sa_type=EnumTuple(Sex))
    needs_met: tuple[Need, ...] | None = Field(default=None, sa_type=EnumTuple(Need))
    is_open: bool


METADATA = REGISTRY.metadata
OUTBOX = outbox_table(METADATA)
IDEMPOTENCY_KEYS = idempotency_table(METADATA)
INBOX, CONSUMER_POSITIONS, AGGREGATE_VERSIONS, PARKED_EVENTS = consumer_tables(METADATA)
