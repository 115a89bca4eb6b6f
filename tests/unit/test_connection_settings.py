"""The connection settings: what each Kafka client and each PostgreSQL connection is given."""

import ssl
from pathlib import Path

import pytest
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLScram512
from pydantic import ValidationError

from services.platform.connections import (
    DatabaseTls,
    KafkaSecurity,
    database_setup_error,
)
from services.platform.settings import CommonSettings

DATABASE_URL = "postgresql+asyncpg://nearhome:secret@db.example:6432/nearhome"


@pytest.fixture(autouse=True)
def _no_connection_settings_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "KAFKA_SECURITY_PROTOCOL",
        "KAFKA_SASL_MECHANISM",
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
        "KAFKA_SSL_CA_FILE",
        "KAFKA_SSL_CERT_FILE",
        "KAFKA_SSL_KEY_FILE",
        "DATABASE_SSL_MODE",
        "DATABASE_SSL_ROOT_CERT",
    ):
        monkeypatch.delenv(name, raising=False)


def test_by_default_every_client_connects_as_before() -> None:
    settings = CommonSettings()
    assert settings.kafka_security.client_options() == {}
    assert settings.kafka_security.faststream() is None
    assert settings.database_tls.connect_args() == {}


def test_sasl_ssl_settings_give_every_aiokafka_client_scram_over_tls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "pw")
    security = CommonSettings().kafka_security
    options = security.client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("svc", "pw")
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert "pw" not in repr(security)


def test_faststream_is_given_the_same_as_the_plain_clients() -> None:
    security = KafkaSecurity(protocol="SASL_SSL", username="svc", password="pw")
    faststream = security.faststream()
    assert isinstance(faststream, SASLScram512)
    parsed = parse_security(faststream)
    plain = security.client_options()
    assert {key: parsed[key] for key in plain if key != "ssl_context"} == {
        key: value for key, value in plain.items() if key != "ssl_context"
    }
    ssl_only = KafkaSecurity(protocol="SSL").faststream()
    assert isinstance(ssl_only, BaseSecurity)
    assert parse_security(ssl_only)["security_protocol"] == "SSL"


def test_sasl_ssl_without_credentials_is_refused_when_the_settings_are_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "svc")
    with pytest.raises(ValidationError, match="KAFKA_SASL_PASSWORD"):
        CommonSettings()


def test_an_unknown_protocol_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    with pytest.raises(ValidationError):
        CommonSettings()


@pytest.mark.parametrize("mode", ["disable", "prefer", "require"])
def test_modes_that_verify_nothing_are_passed_to_asyncpg_as_they_are(mode: str) -> None:
    assert DatabaseTls(mode=mode).connect_args() == {"ssl": mode}  # type: ignore[arg-type]


def test_verify_full_checks_the_certificate_and_the_host_name(tmp_path: Path) -> None:
    full = DatabaseTls(mode="verify-full").ssl()
    ca_only = DatabaseTls(mode="verify-ca").ssl()
    assert isinstance(full, ssl.SSLContext)
    assert isinstance(ca_only, ssl.SSLContext)
    assert full.verify_mode == ca_only.verify_mode == ssl.CERT_REQUIRED
    assert full.check_hostname
    assert not ca_only.check_hostname
    with pytest.raises(FileNotFoundError):
        DatabaseTls(mode="verify-full", root_cert=tmp_path / "missing.pem").ssl()


def test_a_database_certificate_failure_is_named_and_an_absent_server_is_not() -> None:
    tls = DatabaseTls(mode="verify-full")
    failure = ssl.SSLCertVerificationError(1, "certificate verify failed")
    failure.verify_message = "self-signed certificate in certificate chain"
    wrapped = RuntimeError("could not connect")
    wrapped.__cause__ = failure
    cause = database_setup_error(wrapped, DATABASE_URL, tls)
    assert cause is not None
    assert "db.example:6432" in str(cause)
    assert "certificate verify failed: self-signed" in str(cause)
    assert "secret" not in str(cause)
    refused = ConnectionRefusedError(111, "Connect call failed")
    assert database_setup_error(refused, DATABASE_URL, tls) is None
