"""The consistency checks of `make deploy-check` (tools/deploy_check/consistency.py): a chart or
compose file that agrees with the code has no findings, and each kind of disagreement is named."""

import copy
from pathlib import Path
from typing import Any

import pytest

from contracts.topics import all_topics
from services.platform.limits import InputLimitSettings
from tools.deploy_check.codebase import commands, env_names
from tools.deploy_check.consistency import (
    check_chart,
    check_compose,
    check_topics,
    command_of,
)
from tools.deploy_check.findings import Finding
from tools.deploy_check.helper import strict

COMMANDS = commands()
PORTS = {"provider": 8001, "authority": 8002, "ledger": 8003, "alerting": 8004}
WHERE = "chart"


def deployment(service: str, port: int | None = None) -> dict[str, Any]:
    port = PORTS[service] if port is None else port
    env = [
        {"name": "HOST", "value": "0.0.0.0"},
        {"name": "KAFKA_BOOTSTRAP_SERVERS", "value": "kafka:9092"},
        {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}},
        {"name": "NEARHOME_OIDC_ISSUER", "value": "https://id.example.org/realms/nearhome"},
        {"name": "NEARHOME_OIDC_AUDIENCE", "value": "nearhome-api"},
    ]
    if service != "alerting":
        env.append({"name": "NEARHOME_OIDC_PAGES_CLIENT_ID", "value": "nearhome-pages"})
    else:
        env.append({"name": "NEARHOME_SECRET_KEYS", "valueFrom": {"secretKeyRef": {}}})
    labels = {"app.kubernetes.io/name": "nearhome", "app.kubernetes.io/component": service}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"nearhome-{service}"},
        "spec": {
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": service,
                            "image": "nearhome:1",
                            "args": ["serve", service],
                            "env": env,
                            "ports": [{"name": "http", "containerPort": port}],
                            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
                            "livenessProbe": {"httpGet": {"path": "/health", "port": "http"}},
                        }
                    ]
                },
            }
        },
    }


def service_object(service: str, target: object = "http") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"nearhome-{service}", "labels": {"service": service}},
        "spec": {
            "selector": {"app.kubernetes.io/component": service},
            "ports": [{"name": "http", "port": 80, "targetPort": target}],
        },
    }


def migration_job() -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "nearhome-migrate"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "migrate",
                            "args": ["migrate", "--all"],
                            "env": [{"name": "NEARHOME_MIGRATE_DATABASE_URL", "value": "x"}],
                        }
                    ]
                }
            }
        },
    }


def kafka_topics() -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "kafka.strimzi.io/v1",
            "kind": "KafkaTopic",
            "metadata": {"name": topic.name.replace(".", "-")},
            "spec": {
                "topicName": topic.name,
                "partitions": topic.partitions,
                "replicas": 3,
                "config": {"retention.ms": str(topic.retention_ms)},
            },
        }
        for topic in all_topics()
    ]


def chart() -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for service in PORTS:
        documents += [deployment(service), service_object(service)]
    return [*documents, migration_job(), *kafka_topics()]


def findings_of(documents: list[dict[str, Any]]) -> list[Finding]:
    return check_chart(documents, COMMANDS, all_topics(), WHERE)


def test_a_chart_that_agrees_with_the_code_has_no_findings() -> None:
    assert findings_of(chart()) == []


def test_a_wrong_partition_count_is_named() -> None:
    documents = chart()
    topic = next(d for d in documents if d.get("spec", {}).get("topicName") == "referral.events")
    topic["spec"]["partitions"] = 3

    found = findings_of(documents)

    assert [(f.check, f.what) for f in found] == [
        ("topics", "referral.events has 3 partitions, contracts/topics.py declares 6")
    ]


def test_a_wrong_retention_a_missing_and_an_unknown_topic_are_named() -> None:
    topics = kafka_topics()
    topics[1]["spec"]["config"]["retention.ms"] = "604800000"  # provider.events.dlq: 30 days
    missing = topics.pop(2)["spec"]["topicName"]
    extra = copy.deepcopy(topics[0])
    extra["spec"]["topicName"] = "provider.evnets"
    topics.append(extra)

    whats = [f.what for f in check_topics(topics, all_topics(), WHERE)]

    assert (
        "provider.events.dlq has retention.ms 604800000, contracts/topics.py declares "
        + str(30 * 24 * 3600 * 1000)
        in whats
    )
    assert any(what.startswith(f"no KafkaTopic for {missing}") for what in whats)
    assert "topic provider.evnets is not in contracts/topics.py (all_topics())" in whats


def test_topics_are_compared_under_the_prefix_the_services_are_given() -> None:
    documents = chart()
    for document in documents:
        if document["kind"] == "Deployment":
            container = document["spec"]["template"]["spec"]["containers"][0]
            container["env"].append({"name": "NEARHOME_TOPIC_PREFIX", "value": "prod."})

    whats = [f.what for f in findings_of(documents)]

    assert any(w.startswith("no KafkaTopic for prod.provider.events ") for w in whats)
    assert "topic provider.events is not in contracts/topics.py (all_topics())" in whats


def test_an_unknown_environment_variable_is_named() -> None:
    documents = chart()
    container = documents[0]["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"name": "NEARHOME_OIDC_ISSUER_URL", "value": "https://x"})
    container["env"].append({"name": "WEBHOOK_TIMEOUT", "value": "5"})  # alerting's, not provider's

    found = findings_of(documents)

    assert {(f.where, f.what.split(",")[0]) for f in found} == {
        (
            "chart: Deployment nearhome-provider, container provider",
            "sets NEARHOME_OIDC_ISSUER_URL",
        ),
        ("chart: Deployment nearhome-provider, container provider", "sets WEBHOOK_TIMEOUT"),
    }


def test_missing_required_settings_are_named_in_production_only() -> None:
    documents = chart()
    container = documents[0]["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [e for e in container["env"] if not e["name"].startswith("NEARHOME_OIDC")]

    found = findings_of(documents)

    needs = "NEARHOME_OIDC_AUDIENCE, NEARHOME_OIDC_ISSUER, NEARHOME_OIDC_PAGES_CLIENT_ID"
    assert [f.what for f in found] == [
        f"`provider` needs {needs} (production: NEARHOME_ENV is not development)"
    ]
    container["env"].append({"name": "NEARHOME_ENV", "value": "development"})
    assert findings_of(documents) == []


def test_a_loopback_host_is_named() -> None:
    documents = chart()
    container = documents[2]["spec"]["template"]["spec"]["containers"][0]
    container["env"][0]["value"] = "127.0.0.1"

    assert [f.what for f in findings_of(documents)] == [
        "HOST=127.0.0.1: the server would answer only inside its own container"
    ]


def test_a_wrong_container_port_is_named() -> None:
    documents = chart()
    documents[2] = deployment("authority", port=8001)

    whats = [f.what for f in findings_of(documents) if f.check == "ports"]

    assert "declares container ports [8001]; `nearhome serve authority` listens on 8002" in whats
    assert "readinessProbe goes to port http; the service listens on 8002" in whats
    assert "livenessProbe goes to port http; the service listens on 8002" in whats


def test_a_port_set_through_the_environment_is_the_one_expected() -> None:
    documents = chart()
    documents[0] = deployment("provider", port=9000)
    container = documents[0]["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"name": "PROVIDER_PORT", "value": "9000"})

    assert findings_of(documents) == []


def test_probes_on_the_wrong_path_and_a_service_to_the_wrong_port_are_named() -> None:
    documents = chart()
    container = documents[4]["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["httpGet"]["path"] = "/health"
    documents[5] = service_object("ledger", target=8080)

    found = findings_of(documents)

    assert sorted((f.where, f.what) for f in found) == [
        (
            "chart: Deployment nearhome-ledger, container ledger",
            "readinessProbe asks /health, expected /ready",
        ),
        (
            "chart: Service nearhome-ledger",
            "port http targets 8080; `nearhome serve ledger` listens on 8003",
        ),
    ]


def test_a_service_without_its_deployment_or_the_migration_job_is_named() -> None:
    documents = [
        d for d in chart() if d["metadata"]["name"] not in {"nearhome-alerting", "nearhome-migrate"}
    ]

    whats = {f.what for f in findings_of(documents)}

    assert whats == {
        "no Deployment runs `nearhome serve alerting`",
        "no Job runs `nearhome migrate`",
    }


def test_variables_from_a_rendered_secret_count_and_are_checked() -> None:
    documents = chart()
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "nearhome-oidc"},
        "stringData": {"NEARHOME_OIDC_ISUER": "https://x"},
    }
    container = documents[0]["spec"]["template"]["spec"]["containers"][0]
    container["envFrom"] = [{"secretRef": {"name": "nearhome-oidc"}}]

    found = findings_of([*documents, secret])

    assert [f.what.split(",")[0] for f in found] == ["sets NEARHOME_OIDC_ISUER"]


@pytest.mark.parametrize(
    ("arguments", "command"),
    [
        (["serve", "provider"], "provider"),
        (["nearhome", "serve", "alerting"], "alerting"),
        (["migrate", "--all"], "migrate"),
        (["run"], None),
    ],
)
def test_the_command_a_container_runs(arguments: list[str], command: str | None) -> None:
    assert command_of(arguments, COMMANDS) == command


def test_the_settings_variables_are_the_documented_names() -> None:
    names = env_names(InputLimitSettings)

    assert names == {"NEARHOME_MAX_BODY_BYTES", "NEARHOME_RATE_LIMIT_PER_MINUTE"}
    assert "PROVIDER_PORT" in COMMANDS["provider"].reads
    assert "WEBHOOK_BACKOFF" in COMMANDS["alerting"].reads
    assert "WEBHOOK_BACKOFF" not in COMMANDS["provider"].reads
    assert "PROVIDER_DATABASE_ROLE" in COMMANDS["migrate"].reads


def compose() -> dict[str, Any]:
    nearhome = {"build": {"context": ".."}, "image": "nearhome:dev"}
    steps = {
        "topics": {"condition": "service_completed_successfully"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    services: dict[str, Any] = {
        "kafka": {"image": "apache/kafka:4.1.0", "environment": {"KAFKA_NODE_ID": 1}},
        "topics": {
            **nearhome,
            "entrypoint": ["python", "-c"],
            "command": ["declare_topics(..., all_topics(s.topic_prefix))"],
            "environment": {"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092"},
        },
        "migrate": {
            **nearhome,
            "command": ["migrate", "--all"],
            "environment": {"NEARHOME_MIGRATE_DATABASE_URL": "postgresql+asyncpg://x"},
        },
    }
    for service, port in PORTS.items():
        services[service] = {
            **nearhome,
            "command": ["serve", service],
            "environment": {
                "NEARHOME_ENV": "development",
                "HOST": "0.0.0.0",
                "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
                "DATABASE_URL": "postgresql+asyncpg://y",
            },
            "ports": [f"{port}:{port}"],
            "healthcheck": {
                "test": [
                    "CMD",
                    "python",
                    "-c",
                    f"http://127.0.0.1:{port}/health http://127.0.0.1:{port}/ready",
                ]
            },
            "depends_on": copy.deepcopy(steps),
        }
    return {"services": services}


def test_a_compose_file_that_agrees_with_the_code_has_no_findings() -> None:
    assert check_compose(compose(), COMMANDS, all_topics()) == []


def test_compose_a_wrong_port_an_unknown_variable_and_a_literal_topic_are_named() -> None:
    document = compose()
    document["services"]["ledger"]["ports"] = ["8003:8004"]
    document["services"]["alerting"]["environment"]["ALERTING_WEBHOOK_HOSTS"] = "x"
    document["services"]["kafka"]["command"] = (
        "kafka-topics.sh --create --topic alert.events --partitions 3"
    )
    del document["services"]["provider"]["depends_on"]["migrate"]

    found = {
        (f.where, f.what.split(",")[0]) for f in check_compose(document, COMMANDS, all_topics())
    }

    assert found == {
        ("compose: service ledger", "publishes [8004]; `nearhome serve ledger` listens on 8003"),
        ("compose: service alerting", "sets ALERTING_WEBHOOK_HOSTS"),
        ("compose: service kafka", "alert.events gets 3 partitions"),
        (
            "compose: service provider",
            "does not wait for the migrate step (service_completed_successfully)",
        ),
    }


def test_crd_schemas_are_made_strict_where_the_api_server_would_prune() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": {"partitions": {"type": "integer"}}},
            "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }

    made = strict(schema)

    assert isinstance(made, dict)
    assert made["additionalProperties"] is False
    assert made["properties"]["spec"]["additionalProperties"] is False
    assert "additionalProperties" not in made["properties"]["config"]
    assert made["properties"]["labels"]["additionalProperties"] == {"type": "string"}


def test_a_required_setting_set_empty_is_named() -> None:
    documents = chart()
    container = documents[0]["spec"]["template"]["spec"]["containers"][0]
    issuer = next(e for e in container["env"] if e["name"] == "NEARHOME_OIDC_ISSUER")
    issuer["value"] = ""

    assert [f.what for f in findings_of(documents)] == [
        "NEARHOME_OIDC_ISSUER is set but empty; `provider` needs it"
    ]


def test_settings_that_may_come_from_a_secret_not_rendered_are_a_note() -> None:
    documents = chart()
    container = documents[6]["spec"]["template"]["spec"]["containers"][0]  # alerting
    container["env"] = [e for e in container["env"] if e["name"] != "NEARHOME_SECRET_KEYS"]
    container["envFrom"] = [{"secretRef": {"name": "made-by-the-operator"}}]

    found = findings_of(documents)

    note = (
        "`alerting` needs NEARHOME_SECRET_KEYS (production: NEARHOME_ENV is not development): "
        "not set here, so they must come from secretRef made-by-the-operator (not rendered)"
    )
    assert [(f.check, f.what) for f in found] == [("note", note)]


def test_variables_asyncpg_reads_are_allowed() -> None:
    documents = chart()
    container = documents[0]["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {}}})

    assert findings_of(documents) == []


def test_the_committed_compose_file_agrees_with_the_code() -> None:
    yaml = pytest.importorskip("yaml")
    compose_file = Path(__file__).resolve().parents[2] / "deploy" / "compose.yaml"
    document = yaml.safe_load(compose_file.read_text(encoding="utf-8"))

    assert check_compose(document, COMMANDS, all_topics()) == []


def test_an_autoscaler_or_disruption_budget_for_nothing_is_named() -> None:
    autoscaler = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "nearhome-ledger"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "nearhome-leger"}},
    }
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "nearhome-provider"},
        "spec": {"selector": {"matchLabels": {"app.kubernetes.io/component": "providers"}}},
    }

    found = findings_of([*chart(), autoscaler, budget])

    assert sorted((f.where, f.what) for f in found) == [
        (
            "chart: HorizontalPodAutoscaler nearhome-ledger",
            "scales Deployment nearhome-leger, not a Deployment of the chart",
        ),
        ("chart: PodDisruptionBudget nearhome-provider", "selects no Deployment's pods"),
    ]
