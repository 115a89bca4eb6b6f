"""`nearhome infra` brings up a real broker and database, idempotently, and stops only its own."""

import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from contracts.topics import all_topics
from infra.local import InfraStatus, Origin, lifecycle
from infra.local.processes import is_running
from infra.local.topics import partition_counts
from services.platform.settings import SERVICE_SCHEMAS, CommonSettings

NEARHOME = Path(sys.executable).with_name("nearhome")
_COMMAND_TIMEOUT_S = 300
# Words `up` prints only when it changes something.
_CHANGE_WORDS = ("starting", "creating", "formatting", "initialising", "resolving", "installing")


def nearhome_infra(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(NEARHOME), "infra", command],
        capture_output=True,
        text=True,
        timeout=_COMMAND_TIMEOUT_S,
        check=False,
    )


def assert_succeeded(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{result.args} failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module", autouse=True)
def infra_is_up() -> None:
    assert_succeeded(nearhome_infra("up"))


def pids(infra: InfraStatus) -> tuple[int | None, int | None]:
    return (infra.broker.pid, infra.database.pid)


@pytest.mark.kafka
@pytest.mark.postgres
def test_status_reports_both_up_with_exit_code_zero() -> None:
    result = nearhome_infra("status")

    assert_succeeded(result)
    lines = result.stdout.splitlines()
    assert any(line.startswith("broker") and " up " in line for line in lines), result.stdout
    assert any(line.startswith("database") and " up " in line for line in lines), result.stdout


@pytest.mark.kafka
@pytest.mark.postgres
async def test_a_second_up_changes_nothing() -> None:
    before = await lifecycle.status()

    result = nearhome_infra("up")

    assert_succeeded(result)
    assert not [word for word in _CHANGE_WORDS if word in result.stdout.lower()], result.stdout
    after = await lifecycle.status()
    assert after.all_up
    assert pids(after) == pids(before)


@pytest.mark.kafka
async def test_every_catalogue_topic_exists_with_its_partitions_and_retention() -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=CommonSettings().kafka_bootstrap_servers)
    await admin.start()
    try:
        present = await partition_counts(admin)
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, spec.name) for spec in all_topics()]
        )
    finally:
        await admin.close()
    retention = {
        resource["resource_name"]: value
        for response in described
        for resource in response.to_object()["resources"]
        for config in resource["config_entries"]
        if config["config_names"] == "retention.ms"
        for value in [int(config["config_value"])]
    }

    assert {spec.name: present.get(spec.name) for spec in all_topics()} == {
        spec.name: spec.partitions for spec in all_topics()
    }
    assert retention == {spec.name: spec.retention_ms for spec in all_topics()}


@pytest.mark.postgres
async def test_each_service_has_its_own_schema_owned_by_the_services_role() -> None:
    url = CommonSettings().database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT nspname, pg_get_userbyid(nspowner) AS owner FROM pg_namespace"
            " WHERE nspname = any($1::text[])",
            list(SERVICE_SCHEMAS),
        )
        role = await connection.fetchval("SELECT current_user")
    finally:
        await connection.close()

    assert {row["nspname"]: row["owner"] for row in rows} == dict.fromkeys(SERVICE_SCHEMAS, role)


@pytest.mark.kafka
@pytest.mark.postgres
async def test_down_stops_only_what_up_started_and_up_brings_it_back() -> None:
    before = await lifecycle.status()
    started_here = [c for c in (before.broker, before.database) if c.origin is Origin.STARTED_HERE]

    assert_succeeded(nearhome_infra("down"))
    stopped = await lifecycle.status()
    assert_succeeded(nearhome_infra("up"))

    for component in started_here:
        assert component.pid is not None
        assert not is_running(component.pid), f"{component.name} still runs after down"
    assert (stopped.broker.up, stopped.database.up) == (
        before.broker.origin is not Origin.STARTED_HERE,
        before.database.origin is not Origin.STARTED_HERE,
    )
    assert nearhome_infra("status").returncode == 0
    assert (await lifecycle.status()).all_up
