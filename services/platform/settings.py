"""Settings shared by every service and command, read from the environment (pydantic-settings)."""

from pathlib import Path
from typing import Annotated, Self

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.platform.connections import (
    DatabaseSslMode,
    DatabaseTls,
    KafkaProtocol,
    KafkaSecurity,
    SaslMechanism,
)
from services.platform.identity import IdentitySettings

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
    # Who owns the services' schemas: `nearhome migrate` and `nearhome ledger rebuild` connect as
    # this role (DATABASE_URL if unset); the services themselves only ever use DATABASE_URL, in
    # production a role of their own that reaches only their schema (README, "Production
    # database").
    migrate_database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("NEARHOME_MIGRATE_DATABASE_URL", "migrate_database_url"),
    )
    # Put before every topic name: lets several exchanges (or test runs) share one cluster.
    topic_prefix: str = Field(
        default="", validation_alias=AliasChoices("NEARHOME_TOPIC_PREFIX", "topic_prefix")
    )

    # How every broker, producer, consumer and admin client connects to Kafka (README,
    # "Production"): PLAINTEXT locally; SASL_SSL with a SCRAM user in production.
    kafka_security_protocol: KafkaProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    # The CA that signed the brokers' certificates (else the system's); a client certificate and
    # key only if the brokers ask for one (mutual TLS).
    kafka_ssl_ca_file: Path | None = None
    kafka_ssl_cert_file: Path | None = None
    kafka_ssl_key_file: Path | None = None
    # How asyncpg secures the engines' and the raw connections' TLS, as libpq's sslmode; unset:
    # asyncpg's default (TLS if the server offers it, unverified). verify-ca and verify-full
    # trust DATABASE_SSL_ROOT_CERT (else the system's CAs); verify-full also checks the host name.
    database_ssl_mode: DatabaseSslMode | None = None
    database_ssl_root_cert: Path | None = None

    @model_validator(mode="after")
    def _connections_complete(self) -> Self:
        self.kafka_security  # noqa: B018 - raises if the Kafka settings do not go together
        return self

    @property
    def kafka_security(self) -> KafkaSecurity:
        password = self.kafka_sasl_password
        return KafkaSecurity(
            protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            username=self.kafka_sasl_username,
            password=password.get_secret_value() if password is not None else None,
            ca_file=self.kafka_ssl_ca_file,
            cert_file=self.kafka_ssl_cert_file,
            key_file=self.kafka_ssl_key_file,
        )

    @property
    def owner_database_url(self) -> str:
        """The URL of the schemas' owner: NEARHOME_MIGRATE_DATABASE_URL, else DATABASE_URL."""
        return self.migrate_database_url or self.database_url

    @property
    def database_tls(self) -> DatabaseTls:
        return DatabaseTls(mode=self.database_ssl_mode, root_cert=self.database_ssl_root_cert)


class ServiceSettings(CommonSettings, IdentitySettings):
    """What every HTTP service needs besides the broker and the database: where its bearer
    tokens come from (IdentitySettings), and the rest."""

    host: str = "127.0.0.1"
    port: int

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
