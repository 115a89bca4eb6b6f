"""How the services reach Kafka and PostgreSQL in production: TLS, and SASL/SCRAM for Kafka.

`KafkaSecurity` and `DatabaseTls` are built from the settings (`CommonSettings.kafka_security`,
`CommonSettings.database_tls`) and handed to every client the services create: FastStream's
brokers (`faststream()`), plain aiokafka producers, consumers and admin clients
(`client_options()`), SQLAlchemy engines and raw asyncpg connections (`connect_args()`).

Their defaults are the local exchange's: Kafka in PLAINTEXT, PostgreSQL as asyncpg connects by
default. A wrong password or an untrusted certificate is a configuration error, not a broker that
is away: `kafka_setup_error` names it (the services stop on it, instead of retrying for ever).
"""

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import asyncpg
from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    IllegalSaslStateError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from sqlalchemy.engine import make_url

KafkaProtocol = Literal["PLAINTEXT", "SSL", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
DatabaseSslMode = Literal["disable", "prefer", "require", "verify-ca", "verify-full"]

_PROBE_TIMEOUT_S = 5.0


def _tls_context(
    ca_file: Path | None, cert_file: Path | None, key_file: Path | None, *, check_hostname: bool
) -> ssl.SSLContext:
    """A client context that trusts `ca_file` (else the system's CAs) and, given a certificate
    and key, presents them (mutual TLS)."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    context.check_hostname = check_hostname
    if cert_file is not None:
        context.load_cert_chain(str(cert_file), str(key_file) if key_file is not None else None)
    return context


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """How to connect to Kafka: PLAINTEXT (local), SSL, or SASL over SSL with a SCRAM user."""

    protocol: KafkaProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def __post_init__(self) -> None:
        if self.protocol == "SASL_SSL" and not (self.username and self.password):
            raise ValueError(
                "KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together")

    @property
    def uses_tls(self) -> bool:
        return self.protocol != "PLAINTEXT"

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.uses_tls:
            return None
        return _tls_context(self.ca_file, self.cert_file, self.key_file, check_hostname=True)

    def client_options(self) -> dict[str, Any]:
        """The keyword arguments of an aiokafka client (producer, consumer, admin, client)."""
        if not self.uses_tls:
            return {}
        options: dict[str, Any] = {
            "security_protocol": self.protocol,
            "ssl_context": self.ssl_context(),
        }
        if self.protocol == "SASL_SSL":
            options |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.username,
                "sasl_plain_password": self.password,
            }
        return options

    def faststream(self) -> BaseSecurity | None:
        """The same, as FastStream's `KafkaBroker(security=...)` takes it."""
        if not self.uses_tls:
            return None
        context = self.ssl_context()
        if self.protocol == "SSL":
            return BaseSecurity(ssl_context=context)
        # Both checked by __post_init__.
        assert self.username is not None
        assert self.password is not None
        kinds: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
            "SCRAM-SHA-512": SASLScram512,
            "SCRAM-SHA-256": SASLScram256,
            "PLAIN": SASLPlaintext,
        }
        return kinds[self.sasl_mechanism](
            username=self.username, password=self.password, ssl_context=context
        )

    def describe(self) -> str:
        if self.protocol == "SASL_SSL":
            return f"SASL_SSL ({self.sasl_mechanism} as {self.username!r})"
        return self.protocol


PLAINTEXT = KafkaSecurity()


class KafkaSetupError(Exception):
    """Kafka answers, but refuses this client as configured: retrying will not help."""


async def kafka_setup_error(
    bootstrap_servers: str, security: KafkaSecurity, timeout_s: float = _PROBE_TIMEOUT_S
) -> KafkaSetupError | None:
    """Why a connection to the first broker of `bootstrap_servers` fails for a reason of the
    configuration (SASL authentication, the broker's certificate, the TLS handshake), or None if
    it connects, or fails for a reason that may pass (the broker is away or still starting).

    aiokafka's clients log such a cause and raise only "Unable to bootstrap": this connects once
    more, the way they do, to find it."""
    address = bootstrap_servers.split(",", maxsplit=1)[0].strip()
    host, _, port = address.rpartition(":")
    where = f"Kafka at {address} ({security.describe()})"
    try:
        async with asyncio.timeout(timeout_s):
            connection = await create_conn(
                host.strip("[]"),
                int(port),
                client_id="nearhome-diagnosis",
                request_timeout_ms=int(timeout_s * 1000),
                **security.client_options(),
            )
    except (SaslAuthenticationFailed, AuthenticationFailedError, IllegalSaslStateError) as error:
        return KafkaSetupError(
            f"{where}: SASL authentication failed: {error} (check KAFKA_SASL_USERNAME, "
            "KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM)"
        )
    except UnsupportedSaslMechanismError as error:
        return KafkaSetupError(f"{where}: {error} (check KAFKA_SASL_MECHANISM)")
    except ssl.SSLCertVerificationError as error:
        return KafkaSetupError(
            f"{where}: certificate verify failed: {error.verify_message} (check "
            "KAFKA_SSL_CA_FILE, and that the broker's certificate names the host in "
            "KAFKA_BOOTSTRAP_SERVERS)"
        )
    except ssl.SSLError as error:
        return KafkaSetupError(
            f"{where}: TLS handshake failed: {error} (is the listener "
            f"{security.protocol}? check KAFKA_SECURITY_PROTOCOL)"
        )
    except Exception:  # noqa: BLE001 - away, still starting, or not ours to judge
        return None
    with contextlib.suppress(Exception):
        connection.close()
    return None


@dataclass(frozen=True, slots=True)
class DatabaseTls:
    """How asyncpg secures its connections: `mode` as libpq's sslmode (None: asyncpg's default,
    which tries TLS and falls back to plain)."""

    mode: DatabaseSslMode | None = None
    root_cert: Path | None = None

    def ssl(self) -> ssl.SSLContext | str | None:
        """asyncpg's `ssl` argument: a mode for the modes that verify nothing, else a context
        that trusts `root_cert` (verify-ca), and checks the server's name too (verify-full)."""
        if self.mode is None:
            return None
        if self.mode in ("disable", "prefer", "require"):
            return self.mode
        return _tls_context(self.root_cert, None, None, check_hostname=self.mode == "verify-full")

    def connect_args(self) -> dict[str, Any]:
        """For `create_async_engine(connect_args=...)` and `asyncpg.connect(**...)`."""
        value = self.ssl()
        return {} if value is None else {"ssl": value}


NO_DATABASE_TLS = DatabaseTls()


class DatabaseSetupError(Exception):
    """PostgreSQL answers, but refuses this client as configured: retrying will not help."""


def _causes(error: BaseException) -> list[BaseException]:
    """`error` and what it wraps (SQLAlchemy's `orig`, chained causes), outermost first."""
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop(0)
        if current is None or any(current is known for known in seen):
            continue
        seen.append(current)
        pending += [getattr(current, "orig", None), current.__cause__, current.__context__]
    return seen


def database_setup_error(
    error: BaseException, database_url: str, tls: DatabaseTls
) -> DatabaseSetupError | None:
    """Why connecting to `database_url` failed, if for a reason of the configuration (the
    server's certificate, TLS refused or required, the password): None for any other reason
    (the server is away or starting, say)."""
    url = make_url(database_url)
    where = f"PostgreSQL at {url.host}:{url.port or 5432} (DATABASE_SSL_MODE={tls.mode or 'unset'})"
    for cause in _causes(error):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return DatabaseSetupError(
                f"{where}: certificate verify failed: {cause.verify_message} (check "
                "DATABASE_SSL_ROOT_CERT, and that the server's certificate names the host in "
                "DATABASE_URL)"
            )
        if isinstance(cause, ssl.SSLError):
            return DatabaseSetupError(f"{where}: TLS handshake failed: {cause}")
        if isinstance(cause, asyncpg.InvalidPasswordError):
            return DatabaseSetupError(f"{where}: {cause} (check the password in DATABASE_URL)")
        if isinstance(cause, asyncpg.InvalidAuthorizationSpecificationError):
            return DatabaseSetupError(
                f"{where}: {cause} (the server may require TLS: check DATABASE_SSL_MODE)"
            )
        if isinstance(cause, ConnectionError) and "SSL" in str(cause):
            return DatabaseSetupError(
                f"{where}: {cause} (the server does not offer TLS: check DATABASE_SSL_MODE)"
            )
    return None
