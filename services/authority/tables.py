"""The authority schema, declared once: referrals, the append-only audit log, outbox, idempotency.

The classes serve reads and writes; they do not validate (SQLModel tables never do), so a referral
is validated as the contract's `ReferralDescription` before it becomes a row.
"""

from datetime import date, datetime, timedelta
from enum import StrEnum
from uuid import UUID

from sqlalchemy import BigInteger, CheckConstraint, Column, Index, SmallInteger, Text, text
from sqlmodel import Field, SQLModel

from contracts.enums import (
    Need,
    OfstedRating,
    PlacementType,
    ReferralOutcome,
    SearchScope,
    Sex,
    Urgency,
)
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


METADATA = REGISTRY.metadata
OUTBOX = outbox_table(METADATA)
IDEMPOTENCY_KEYS = idempotency_table(METADATA)
