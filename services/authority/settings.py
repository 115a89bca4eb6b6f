"""The authority service's settings, read from the environment (pydantic-settings)."""

from datetime import timedelta

from pydantic import AliasChoices, Field

from services.platform.composition import WritingServiceSettings
from services.platform.limits import InputLimitSettings


class Settings(WritingServiceSettings, InputLimitSettings):
    port: int = Field(default=8002, validation_alias=AliasChoices("AUTHORITY_PORT", "port"))
    # How long a local referral waits for a local fit before it widens to its region, unless the
    # council chose its own `widen_after_hours` (seconds or ISO 8601 durations such as PT4H).
    widen_after_emergency: timedelta = Field(
        default=timedelta(hours=4),
        gt=timedelta(0),
        validation_alias=AliasChoices("WIDEN_AFTER_EMERGENCY", "widen_after_emergency"),
    )
    widen_after_planned: timedelta = Field(
        default=timedelta(days=5),
        gt=timedelta(0),
        validation_alias=AliasChoices("WIDEN_AFTER_PLANNED", "widen_after_planned"),
    )
    widen_check_interval: float = Field(
        default=60.0,
        gt=0,
        validation_alias=AliasChoices("WIDEN_CHECK_INTERVAL", "widen_check_interval"),
    )
    widen_batch_size: int = Field(default=100, ge=1)
    # The Kafka consumer group of the view of the provider side (provider.events).
    consumer_group: str = Field(
        default="nearhome-authority",
        min_length=1,
        validation_alias=AliasChoices("AUTHORITY_CONSUMER_GROUP", "consumer_group"),
    )
