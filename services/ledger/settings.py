"""The ledger service's settings, read from the environment (pydantic-settings)."""

from datetime import timedelta

from pydantic import AliasChoices, Field

from services.platform.limits import InputLimitSettings
from services.platform.retention import Duration, RetentionSettings
from services.platform.settings import ServiceSettings


class Settings(ServiceSettings, InputLimitSettings, RetentionSettings):
    port: int = Field(default=8003, validation_alias=AliasChoices("LEDGER_PORT", "port"))
    # The Kafka consumer group of the ledger's subscribers (one per topic, both in this group).
    consumer_group: str = Field(
        default="nearhome-ledger",
        min_length=1,
        validation_alias=AliasChoices("LEDGER_CONSUMER_GROUP", "consumer_group"),
    )
    # Records per batch: each batch is one PostgreSQL transaction (bigger is faster, to a point).
    max_records: int = Field(
        default=2000, ge=1, validation_alias=AliasChoices("LEDGER_MAX_RECORDS", "max_records")
    )
    # An open vacancy not confirmed for this long counts as stale: seconds ("259200") or an
    # ISO 8601 duration ("P3D").
    vacancy_stale_after: Duration = Field(
        default=timedelta(hours=72),
        gt=timedelta(0),
        validation_alias=AliasChoices("VACANCY_STALE_AFTER", "vacancy_stale_after"),
    )
    # How often the capacity history takes a snapshot (and the capacity gauges are refreshed).
    history_interval: float = Field(
        default=60.0,
        gt=0,
        validation_alias=AliasChoices("LEDGER_HISTORY_INTERVAL", "history_interval"),
    )
    # Connections kept open to the database: the consumers' batches (one per topic at a time),
    # the snapshots and the readers. Beyond it, each busy moment opens (and closes) more of them.
    database_pool_size: int = Field(
        default=10,
        ge=2,
        validation_alias=AliasChoices("LEDGER_DATABASE_POOL_SIZE", "database_pool_size"),
    )
    # How long to wait before trying again to connect the consumers when the broker is down.
    broker_retry_interval: float = Field(default=2.0, gt=0)
    # The dead-letter producer's request timeout (connecting, metadata, produce requests).
    kafka_request_timeout_ms: int = Field(default=10_000, ge=100)
