"""The provider service's settings, read from the environment (pydantic-settings)."""

from datetime import timedelta

from pydantic import AliasChoices, Field

from services.platform.composition import WritingServiceSettings
from services.platform.limits import InputLimitSettings
from services.platform.retention import Duration


class Settings(WritingServiceSettings, InputLimitSettings):
    port: int = Field(default=8001, validation_alias=AliasChoices("PROVIDER_PORT", "port"))
    # An open vacancy not confirmed for this long is stale and expires: seconds ("1209600") or
    # an ISO 8601 duration ("P14D").
    vacancy_expire_after: Duration = Field(
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
    # The Kafka consumer group of the provider's inbox (its subscriber to referral.events).
    consumer_group: str = Field(
        default="nearhome-provider",
        min_length=1,
        validation_alias=AliasChoices("PROVIDER_CONSUMER_GROUP", "consumer_group"),
    )
