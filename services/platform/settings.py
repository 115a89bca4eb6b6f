"""Settings shared by every service and command, read from the environment (pydantic-settings)."""

from typing import Annotated

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.platform.auth import DEVELOPMENT_SECRET

LOCAL_KAFKA = "127.0.0.1:9092"
LOCAL_DATABASE_URL = "postgresql+asyncpg://nearhome:nearhome@127.0.0.1:5432/nearhome"
SERVICE_SCHEMAS = ("provider", "authority", "ledger", "alerting")
# The pages, as `nearhome run` serves them by default: the provider workspace (8001), the home
# finder (8002) and the regional dashboard (8003).
LOCAL_PAGE_ORIGINS = tuple(
    f"http://{host}:{port}" for port in (8001, 8002, 8003) for host in ("127.0.0.1", "localhost")
)


class CommonSettings(BaseSettings):
    """Where the broker and database are; every service's settings extend this."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field(default=LOCAL_KAFKA)
    database_url: str = Field(default=LOCAL_DATABASE_URL)
    # Put before every topic name: lets several exchanges (or test runs) share one cluster.
    topic_prefix: str = Field(
        default="", validation_alias=AliasChoices("NEARHOME_TOPIC_PREFIX", "topic_prefix")
    )


class ServiceSettings(CommonSettings):
    """What every HTTP service needs besides the broker and the database."""

    host: str = "127.0.0.1"
    port: int
    jwt_secret: str = Field(
        default=DEVELOPMENT_SECRET,
        validation_alias=AliasChoices("NEARHOME_JWT_SECRET", "jwt_secret"),
    )

    # Web pages served from these origins may read the service's GET resources with a token
    # (CORS, GET only): the workspaces read alerting's alerts and stream, the dashboard also a
    # council's open referrals. Each page writes only to its own origin.
    # Comma-separated in the environment; empty allows none.
    browser_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=LOCAL_PAGE_ORIGINS,
        validation_alias=AliasChoices("NEARHOME_BROWSER_ORIGINS", "browser_origins"),
    )

    @field_validator("browser_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(
                origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()
            )
        return value

    @property
    def uses_development_secret(self) -> bool:
        return self.jwt_secret == DEVELOPMENT_SECRET
