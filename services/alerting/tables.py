"""Alerting's tables, each declared once as a SQLModel class, and the platform's beside them.

Record states are kept as the JSON of their latest event payload (`state`), so the start-up load
parses them with the contracts' own models. The API's views are built on the same fields as the
alert and subscription tables (`AlertFields`, `SubscriptionFields`, `DeliveryCounts`), so neither
is written out twice; where the API names a field differently from its column, the field keeps
the API's name and the column its own (`sa_column_kwargs={"name": ...}`).
"""

from datetime import datetime
from typing import Any, Final
from uuid import UUID

from sqlalchemy import BigInteger, CheckConstraint, Identity, Index, SmallInteger, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from contracts.enums import AlertRetractionReason, OfstedRating, PlacementType
from contracts.events import SettingProfile
from services.alerting.domain import AlertStatus, DeliveryState
from services.alerting.notices import Audience, LoopNoticeKind
from services.platform.consumer import consumer_tables
from services.platform.idempotency import idempotency_table
from services.platform.outbox import outbox_table
from services.platform.tables import EnumText, UtcDateTime, schema_registry, table_of

SCHEMA: Final = "alerting"
REGISTRY = schema_registry(SCHEMA)
METADATA = REGISTRY.metadata

# A counter that starts at zero in the database, whoever inserts the row.
_ZERO: Final = {"server_default": "0"}


class AlertingTable(SQLModel, registry=REGISTRY):
    """Base of alerting's own tables: every one lives in the alerting schema."""


# --- the records the book is loaded from ----------------------------------------------------------
#
# The book is split into shards, one per partition of `referral.events` (services/alerting/
# shards.py): a shard holds the referrals whose events that partition carries, their alerts, and
# its own copy of every setting, vacancy and hold (what it matches them against), each copy kept
# in step with the provider events that shard has applied.


def _shard() -> Any:  # noqa: ANN401 - a field, as sqlmodel's Field gives it
    """The shard a row belongs to: the first part of its key where every shard has a copy."""
    return Field(primary_key=True, sa_type=SmallInteger)


class StoredSetting(AlertingTable, table=True):
    __tablename__ = "settings"

    shard: int = _shard()
    setting_id: UUID = Field(primary_key=True)
    state: dict[str, Any] = Field(sa_type=JSONB)  # the latest SettingRegistered/Updated payload
    is_open: bool


class SettingOccupancy(AlertingTable, table=True):
    __tablename__ = "setting_occupancy"

    shard: int = _shard()
    setting_id: UUID = Field(primary_key=True)
    occupied_beds: int


class StoredVacancy(AlertingTable, table=True):
    __tablename__ = "vacancies"
    __table_args__ = (Index("vacancies_by_setting", "setting_id"),)

    shard: int = _shard()
    vacancy_id: UUID = Field(primary_key=True)
    setting_id: UUID
    state: dict[str, Any] = Field(sa_type=JSONB)  # its VacancyPosted payload
    is_open: bool


class StoredReferral(AlertingTable, table=True):
    __tablename__ = "referrals"
    __table_args__ = (Index("referrals_by_shard", "shard", "is_open"),)

    referral_id: UUID = Field(primary_key=True)
    shard: int = Field(sa_type=SmallInteger)  # the partition of referral.events carrying its events
    authority_code: str = Field(sa_type=Text)
    state: dict[str, Any] = Field(sa_type=JSONB)  # the latest state, with its current search scope
    is_open: bool


class StoredHold(AlertingTable, table=True):
    """Beds of an open vacancy an offer holds for a referral, or a placement from it has taken."""

    __tablename__ = "holds"

    shard: int = _shard()
    request_id: UUID = Field(primary_key=True)
    vacancy_id: UUID
    referral_id: UUID
    beds: int
    taken: bool


class IndexEpoch(AlertingTable, table=True):
    """One row per shard (`id` is the shard), bumped by every consumer transaction of that shard:
    a process can tell whether the batch it applied to its in-memory book committed (the epoch it
    wrote is there) or rolled back, or another process has changed the shard since."""

    __tablename__ = "index_epoch"

    id: int = Field(primary_key=True)
    epoch: int = Field(sa_type=BigInteger)


# --- alerts ---------------------------------------------------------------------------------------


class AlertFields(SQLModel):
    """An alert as its council reads it (`GET /v1/alerts`) and as it is stored."""

    alert_id: UUID = Field(primary_key=True)
    referral_id: UUID
    vacancy_id: UUID
    setting_id: UUID
    status: AlertStatus = Field(sa_type=EnumText(AlertStatus))
    local: bool
    distance_miles: float
    placement_type: PlacementType = Field(sa_type=EnumText(PlacementType))
    ofsted_rating: OfstedRating = Field(sa_type=EnumText(OfstedRating))
    postcode_district: str = Field(sa_type=Text)
    beds: int
    raised_at: datetime = Field(sa_type=UtcDateTime)
    retracted_at: datetime | None = Field(sa_type=UtcDateTime)
    reason: AlertRetractionReason | None = Field(
        description="why it was retracted",
        sa_type=EnumText(AlertRetractionReason),
        sa_column_kwargs={"name": "retraction_reason"},
    )
    setting_profile: SettingProfile | None = Field(
        description="whose home it is and how to ask for the bed, as when the alert was raised"
        " (null for a setting without a profile)",
        sa_type=JSONB,
    )


class StoredAlert(AlertFields, AlertingTable, table=True):
    __tablename__ = "alerts"
    __table_args__ = (
        # One open alert per (referral, vacancy); a retracted pair may be alerted again later.
        Index(
            "alerts_one_open_per_pair",
            "referral_id",
            "vacancy_id",
            unique=True,
            postgresql_where=text("status = 'open'"),
        ),
        Index("alerts_by_council", "authority_code", "status"),
        Index("alerts_by_referral", "referral_id"),
        Index("alerts_open_by_shard", "shard", postgresql_where=text("status = 'open'")),
    )

    authority_code: str = Field(sa_type=Text)  # the referring council's: only it reads the alert
    shard: int = Field(sa_type=SmallInteger)  # its referral's shard


# --- webhooks: subscriptions and their deliveries -------------------------------------------------


class SubscriptionFields(SQLModel):
    """A council's or a provider's webhook as it reads it back (never with its secret)."""

    subscription_id: UUID = Field(primary_key=True)
    authority_code: str | None = Field(
        description="the council's, for a council's webhook (null for a provider's)", sa_type=Text
    )
    provider_id: str | None = Field(
        description="the provider's, for a provider's webhook (null for a council's)", sa_type=Text
    )
    url: str = Field(sa_type=Text)
    created_at: datetime = Field(sa_type=UtcDateTime)


class DeliveryCounts(SQLModel):
    """What became of a subscription's deliveries so far, kept on its row as they happen.

    No defaults here, so the API's schema says every count is always there: the database starts
    a new subscription's at zero.
    """

    delivered: int = Field(
        description="deliveries the receiver accepted (2xx)",
        sa_type=BigInteger,
        sa_column_kwargs=_ZERO,
    )
    failed: int = Field(
        description="tries that failed (each is tried again until dead)",
        sa_type=BigInteger,
        sa_column_kwargs={"name": "failed_attempts", **_ZERO},
    )
    dead: int = Field(
        description="deliveries given up after the last try",
        sa_type=BigInteger,
        sa_column_kwargs=_ZERO,
    )
    last_error: str | None = Field(sa_type=Text)
    last_error_at: datetime | None = Field(sa_type=UtcDateTime)
    last_success_at: datetime | None = Field(sa_type=UtcDateTime)


class Subscription(SubscriptionFields, DeliveryCounts, AlertingTable, table=True):
    __tablename__ = "subscriptions"
    __table_args__ = (
        Index("subscriptions_by_council", "authority_code"),
        Index("subscriptions_by_provider", "provider_id"),
        CheckConstraint(
            "num_nonnulls(authority_code, provider_id) = 1", name="subscriptions_one_owner"
        ),
        CheckConstraint(
            "secret_ciphertext IS NOT NULL AND secret_key_id IS NOT NULL OR secret IS NOT NULL",
            name="subscriptions_secret_kept",
        ),
    )

    # The secret that signs every webhook (shown to the council once), encrypted (AES-GCM, the
    # subscription's id authenticated with it) under the key `secret_key_id` names
    # (services/platform/secrets.py). `secret` holds, in plain text, only a secret stored before
    # secrets were encrypted; the service seals those on start when it has a key.
    secret_ciphertext: bytes | None = Field(default=None)
    secret_key_id: str | None = Field(default=None, sa_type=Text)
    secret: str | None = Field(default=None, sa_type=Text)


def _inserted_at() -> Any:  # noqa: ANN401 - a field, as sqlmodel's Field gives it
    """When the row was inserted: set by the database (None in a row not read back yet)."""
    return Field(
        default=None,
        sa_type=UtcDateTime,
        nullable=False,
        sa_column_kwargs={"server_default": func.now()},
    )


class WebhookDelivery(AlertingTable, table=True):
    __tablename__ = "deliveries"
    __table_args__ = (
        # Each subscription's queue, in the order its deliveries fall due.
        Index(
            "deliveries_due_by_subscription",
            "subscription_id",
            "next_attempt_at",
            "delivery_id",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("deliveries_by_alert", "alert_id", "subscription_id"),
        # Retention finds the accepted deliveries past its horizon by this.
        Index(
            "deliveries_delivered_at",
            "delivered_at",
            postgresql_where=text("status = 'delivered'"),
        ),
        # Each delivery tells of an alert or of a placement-loop notice.
        CheckConstraint("num_nonnulls(alert_id, notice_id) = 1", name="deliveries_of_one"),
    )

    delivery_id: int | None = Field(default=None, primary_key=True, sa_type=BigInteger)
    subscription_id: UUID = Field(
        foreign_key=f"{SCHEMA}.subscriptions.subscription_id", ondelete="CASCADE"
    )
    alert_id: UUID | None = None
    notice_id: UUID | None = None  # a placement-loop notice's (notices.py)
    # An alert's `raised`/`retracted`, or a loop notice's kind (`placement.requested`, ...).
    kind: str = Field(sa_type=Text)
    body: bytes  # the exact bytes every try sends
    status: DeliveryState = Field(sa_type=EnumText(DeliveryState))
    attempts: int = Field(default=0, sa_column_kwargs=_ZERO)
    next_attempt_at: datetime = Field(sa_type=UtcDateTime)
    lease_until: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_error: str | None = Field(default=None, sa_type=Text)
    last_attempt_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    source_occurred_at: datetime = Field(sa_type=UtcDateTime)
    created_at: datetime | None = _inserted_at()


# --- the placement loop's notices -----------------------------------------------------------------


class StoredNotice(AlertingTable, table=True):
    """A placement-loop event told to the provider or council it concerns, once: keyed by the
    event's id, so a redelivered event finds its notice already made."""

    __tablename__ = "notices"

    notice_id: UUID = Field(primary_key=True)
    kind: LoopNoticeKind = Field(sa_type=EnumText(LoopNoticeKind))
    audience: Audience = Field(sa_type=EnumText(Audience))
    organisation_id: str = Field(sa_type=Text)
    occurred_at: datetime = Field(sa_type=UtcDateTime)
    created_at: datetime | None = _inserted_at()


# --- the alert stream's events -------------------------------------------------------------------


class StreamEvent(AlertingTable, table=True):
    """An event of `GET /v1/alerts/stream` (an alert raised or retracted, or a loop notice), kept
    for a while so that a client that reconnects with `Last-Event-ID` gets what it missed.

    Written in the consumer's transaction that made it, which holds the stream's lock from then
    until it commits: positions are handed out, and become visible, in the order of the commits.
    """

    __tablename__ = "stream_events"
    __table_args__ = (
        # A recipient's events after a position: what a reconnecting client missed.
        Index("stream_events_by_recipient", "audience", "organisation_id", "position"),
        Index("stream_events_by_age", "created_at"),  # for pruning
    )

    # The event's `id:` on the stream: increasing, with gaps (rolled-back batches, others' events).
    position: int | None = Field(
        default=None,
        primary_key=True,
        sa_type=BigInteger,
        sa_column_args=[Identity(always=True)],
    )
    audience: Audience = Field(sa_type=EnumText(Audience))
    organisation_id: str = Field(sa_type=Text)  # the council's code or the provider's id
    event: str = Field(sa_type=Text)  # the event's name: `alert.raised`, `placement.offered`, ...
    data: str = Field(sa_type=Text)  # its data, JSON text exactly as streamed (a webhook body)
    created_at: datetime | None = _inserted_at()


SETTINGS = table_of(StoredSetting)
SETTING_OCCUPANCY = table_of(SettingOccupancy)
VACANCIES = table_of(StoredVacancy)
REFERRALS = table_of(StoredReferral)
HOLDS = table_of(StoredHold)
INDEX_EPOCH = table_of(IndexEpoch)
ALERTS = table_of(StoredAlert)
SUBSCRIPTIONS = table_of(Subscription)
DELIVERIES = table_of(WebhookDelivery)
NOTICES = table_of(StoredNotice)
STREAM_EVENTS = table_of(StreamEvent)

# The platform's tables, in the alerting schema: the outbox of `alert.events`, the API's
# idempotency keys, and the consumer's inbox, positions, aggregate versions and parked events.
OUTBOX = outbox_table(METADATA)
IDEMPOTENCY_KEYS = idempotency_table(METADATA)
INBOX, CONSUMER_POSITIONS, AGGREGATE_VERSIONS, PARKED_EVENTS = consumer_tables(
    METADATA, sharded=True
)
