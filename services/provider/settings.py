"""The provider service's settings, read from the environment (pydantic-settings)."""

from datetime import timedelta

from pydantic import AliasChoices, Field, field_validator

from services.platform.settings import ServiceSettings


class Settings(ServiceSettings):
    port: int = Field(default=8001, validation_alias=AliasChoices("PROVIDER_PORT", "port"))
    # An open vacancy not confirmed for this long is stale and expires: seconds ("1209600") or
    # an ISO 8601 duration ("P14D").
    vacancy_expire_after: timedelta = Field(
        default=timedelta(days=14),
        validation_alias=AliasChoices("VACANCY_EXPIRE_AFTER", "vacancy_expire_after"),
        gt=timedelta(0),
    )
    # How long an offer holds its beds for the council unless the provider says otherwise.
    offer_hold_hours: int = Field(
        default=24,
        ge=1,
        le=672,
        validation_alias=AliasChoices("OFFER_HOLD_HOURS", "offer_hold_hours"),
    )
    # How often the schedulers look for stale vacancies and for offers past their expiry.
    expiry_check_interval: float = Field(default=60.0, gt=0)
    expiry_batch_size: int = Field(default=100, ge=1)
    # The outbox relay: how long it waits after a failed send, how often it polls when idle, and
    # how often it measures the backlog gauges (also while it waits for the broker).
    relay_retry_interval: float = Field(default=1.0, gt=0)
    relay_idle_interval: float = Field(default=0.05, gt=0)
    relay_backlog_interval: float = Field(default=1.0, gt=0)
    # The Kafka consumer group of the provider's inbox (its subscriber to referral.events).
    consumer_group: str = Field(
        default="nearhome-provider",
        min_length=1,
        validation_alias=AliasChoices("PROVIDER_CONSUMER_GROUP", "consumer_group"),
    )
    max_records: int = Field(default=500, ge=1)
    # How long to wait before trying again to connect the consumer when the broker is down.
    broker_retry_interval: float = Field(default=2.0, gt=0)
    # The producer's request timeout (connecting, metadata, produce requests).
    kafka_request_timeout_ms: int = Field(default=10_000, ge=100)

    @field_validator("vacancy_expire_after", mode="before")
    @classmethod
    def _seconds_from_the_environment(cls, value: object) -> object:
        # pydantic reads a number as seconds, but the environment gives a string of digits.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return value
        return value
