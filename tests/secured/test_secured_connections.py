"""The services on a broker that takes clients only over SASL_SSL (SCRAM-SHA-512) and a
PostgreSQL that takes TCP connections only over TLS, configured through their settings alone
(`KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_*`, `KAFKA_SSL_CA_FILE`, `DATABASE_SSL_MODE`,
`DATABASE_SSL_ROOT_CERT`): a provider's vacancy reaches the ledger's figures; a wrong password
or an untrusted certificate stops a service at start-up, saying why, instead of a retry loop."""

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import asyncpg
import httpx
import pytest
from builders import CHILD, SETTING_DETAILS, WESTMORLAND_AND_FURNESS
from faults.fault_exchange import NEARHOME, ExitedWhileStartingError, ServiceProcess
from faults.fault_infra import free_port

from contracts.topics import all_topics
from infra.local.status import quiet
from infra.local.topics import declare_topics
from secured.certificates import CertificateAuthority
from secured.secured_infra import SCRAM_PASSWORD, SCRAM_USER, SecuredInfra
from services.platform.auth import Principal, Role, issue_token, principal_for
from services.platform.connections import DatabaseTls

pytestmark = [pytest.mark.secured]

SECRET = "secured-suite-secret-of-at-least-32-bytes"
# A service refused by the broker stops after its bounded retries (3 at 0.3 s, each diagnosed).
STOPS_WITHIN_S = 45.0
FIGURES_WITHIN_S = 60.0


def _bearer(principal: Principal) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(principal, SECRET)}"}


class Namespace:
    """A fresh database on the TLS server and a fresh topic prefix on the secured broker."""

    def __init__(self, infra: SecuredInfra, database: str, prefix: str) -> None:
        self.infra = infra
        self.database_url = infra.database.url.rsplit("/", 1)[0] + f"/{database}"
        self.prefix = prefix

    def environment(self, **changes: str) -> dict[str, str]:
        """What a service is started with: every connection setting, secured; then `changes`."""
        infra = self.infra
        return {
            "DATABASE_URL": self.database_url,
            "DATABASE_SSL_MODE": "verify-full",
            "DATABASE_SSL_ROOT_CERT": str(infra.authority.certificate),
            "KAFKA_BOOTSTRAP_SERVERS": infra.broker.bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": SCRAM_USER,
            "KAFKA_SASL_PASSWORD": SCRAM_PASSWORD,
            "KAFKA_SSL_CA_FILE": str(infra.authority.certificate),
            "NEARHOME_TOPIC_PREFIX": self.prefix,
            "NEARHOME_JWT_SECRET": SECRET,
            "NEARHOME_ENV": "development",
            "NEARHOME_RATE_LIMIT_PER_MINUTE": "0",
            "BROKER_RETRY_INTERVAL": "0.3",
            "RELAY_RETRY_INTERVAL": "0.3",
            "KAFKA_REQUEST_TIMEOUT_MS": "5000",
            **{
                f"{name.upper()}_CONSUMER_GROUP": f"{name}-{self.prefix}"
                for name in ("provider", "authority", "ledger", "alerting")
            },
            **changes,
        }

    def service(self, name: str, logs: Path, **changes: str) -> ServiceProcess:
        port = free_port()
        env = self.environment(**changes) | {f"{name.upper()}_PORT": str(port)}
        return ServiceProcess(name, port, env, logs / f"{name}-{uuid4().hex[:6]}.log")


async def _tls_connection(infra: SecuredInfra, url: str) -> asyncpg.Connection:
    tls = DatabaseTls(mode="verify-full", root_cert=infra.authority.certificate)
    return await asyncpg.connect(url.replace("+asyncpg", ""), **tls.connect_args())


@pytest.fixture
async def namespace(infra: SecuredInfra) -> Namespace:
    database = f"nearhome_secured_{uuid4().hex[:8]}"
    admin = await _tls_connection(infra, infra.database.url)
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    prefix = f"secured-{uuid4().hex[:8]}."
    # Declared as `nearhome infra up` does against a configured broker: over SASL_SSL.
    await declare_topics(
        infra.broker.bootstrap, all_topics(prefix), quiet, security=infra.broker.security()
    )
    # Both stay until the package's broker and database are thrown away.
    return Namespace(infra, database, prefix)


@pytest.fixture
async def running() -> AsyncIterator[list[ServiceProcess]]:
    """The service processes a test starts, SIGKILLed after it."""
    started: list[ServiceProcess] = []
    yield started
    await asyncio.gather(*(service.kill() for service in started))


async def _post(client: httpx.AsyncClient, path: str, body: dict[str, object]) -> dict[str, str]:
    answer = await client.post(path, json=body, headers={"Idempotency-Key": uuid4().hex})
    assert answer.is_success, f"POST {path}: {answer.status_code} {answer.text}"
    result: dict[str, str] = answer.json()
    return result


async def test_a_vacancy_posted_to_the_provider_reaches_the_ledgers_figures_over_sasl_ssl_and_tls(
    infra: SecuredInfra,
    namespace: Namespace,
    running: list[ServiceProcess],
    tmp_path: Path,
) -> None:
    provider = namespace.service("provider", tmp_path)
    ledger = namespace.service("ledger", tmp_path)
    # Alerting too: its alert stream listens on a raw asyncpg connection of its own.
    alerting = namespace.service("alerting", tmp_path)
    running += [provider, ledger, alerting]
    await asyncio.gather(provider.start(), ledger.start(), alerting.start())

    provider_id = f"secured-{uuid4().hex[:8]}"
    provider_headers = _bearer(principal_for(Role.PROVIDER, provider_id=provider_id))
    async with httpx.AsyncClient(
        base_url=provider.url, headers=provider_headers, timeout=15, trust_env=False
    ) as client:
        setting = await _post(
            client,
            "/v1/settings",
            {
                **SETTING_DETAILS,
                "name": "Secured House",
                "ofsted_urn": "SC700001",
                "referrals_email": "referrals@secured.example",
                "referrals_phone": "01539 000 000",
                "description": "A home registered over a secured broker.",
            },
        )
        await _post(
            client,
            "/v1/vacancies",
            {"setting_id": setting["setting_id"], "beds": 2, "available_from": CHILD["needed_by"]},
        )

    reader = _bearer(principal_for(Role.AUTHORITY, authority_code=WESTMORLAND_AND_FURNESS))
    deadline = time.monotonic() + FIGURES_WITHIN_S
    async with httpx.AsyncClient(
        base_url=ledger.url, headers=reader, timeout=15, trust_env=False
    ) as client:
        while True:
            answer = await client.get(f"/v1/capacity/{WESTMORLAND_AND_FURNESS}")
            assert answer.status_code == 200, answer.text
            totals = answer.json()["totals"]
            if totals["registered_places"] == SETTING_DETAILS["registered_places"] and (
                totals["offered"] == 2
            ):
                break
            assert time.monotonic() < deadline, (
                f"the ledger's figures after {FIGURES_WITHIN_S:g} s: {totals}\n"
                f"provider:\n{provider.tail()}\nledger:\n{ledger.tail()}"
            )
            await asyncio.sleep(0.5)

    # Every connection the services hold to the database is TLS (the server refuses others),
    # the alert stream's listener among them.
    check = await _tls_connection(infra, namespace.database_url)
    try:
        connections = await check.fetch(
            "SELECT a.query, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)"
            " WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()"
        )
    finally:
        await check.close()
    assert all(row["ssl"] for row in connections)
    assert any(row["query"].startswith("LISTEN") for row in connections), connections


@pytest.mark.parametrize(
    ("changes", "cause"),
    [
        ({"KAFKA_SASL_PASSWORD": "not-the-password"}, "SASL authentication failed"),
        ({"KAFKA_SASL_USERNAME": "nobody"}, "SASL authentication failed"),
        ({"KAFKA_SSL_CA_FILE": "<another CA>"}, "certificate verify failed"),
        ({"DATABASE_SSL_ROOT_CERT": "<another CA>"}, "certificate verify failed"),
        ({"DATABASE_SSL_MODE": "disable"}, "check DATABASE_SSL_MODE"),
    ],
    ids=[
        "wrong-kafka-password",
        "unknown-kafka-user",
        "untrusted-broker",
        "untrusted-database",
        "database-without-tls",
    ],
)
async def test_a_refused_connection_stops_the_service_at_start_up_naming_the_cause(
    namespace: Namespace,
    running: list[ServiceProcess],
    tmp_path: Path,
    changes: dict[str, str],
    cause: str,
) -> None:
    other_ca = CertificateAuthority.create(tmp_path / "other-pki", "not-trusted")
    changes = {
        name: str(other_ca.certificate) if value == "<another CA>" else value
        for name, value in changes.items()
    }
    ledger = namespace.service("ledger", tmp_path, **changes)
    running.append(ledger)
    started = time.monotonic()
    with pytest.raises(ExitedWhileStartingError):
        await ledger.start()
    took = time.monotonic() - started
    assert ledger.process is not None
    assert ledger.process.returncode not in (None, 0), ledger.tail()
    assert took < STOPS_WITHIN_S, f"took {took:.1f} s to stop"
    assert cause in ledger.output(), ledger.tail()


@pytest.mark.parametrize(
    ("password", "outcome"),
    [(SCRAM_PASSWORD, "using the configured broker"), ("not-the-password", "SASL authentication")],
    ids=["right-password", "wrong-password"],
)
async def test_infra_up_declares_topics_and_schemas_on_a_configured_secured_exchange(
    namespace: Namespace, tmp_path: Path, password: str, outcome: str
) -> None:
    env = namespace.environment(
        KAFKA_SASL_PASSWORD=password,
        NEARHOME_TOPIC_PREFIX=f"secured-up-{uuid4().hex[:8]}.",
        # Its lock file only: a configured broker and database are never started here.
        NEARHOME_STATE_DIR=str(tmp_path / "state"),
    )
    process = await asyncio.create_subprocess_exec(
        NEARHOME,
        "infra",
        "up",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **env},
    )
    async with asyncio.timeout(STOPS_WITHIN_S):
        output, _ = await process.communicate()
    text = output.decode(errors="replace")
    assert outcome in text, text
    assert (process.returncode == 0) == (password == SCRAM_PASSWORD), text
    if process.returncode == 0:
        assert "using the configured database" in text, text
