"""The deployment files against the code: pure functions from parsed objects to findings.

* topics: the chart's Strimzi `KafkaTopic`s (name, partitions, `retention.ms`) against
  `contracts.topics.all_topics()`, under the prefix the services are given;
* ports: each service's container port, its probes (`/ready` and `/health`) and the Service in
  front of it against the port its settings default to (or the one its environment sets);
* settings: every variable a container sets must be one its command reads, and the ones a
  deployment must give must be there.

The same checks run on the compose file's services. Nothing here reads a file or runs a program:
`tools.deploy_check.cli` parses the files and hands over the objects.
"""

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from contracts.topics import TopicSpec
from tools.deploy_check.codebase import RUNTIME_VARIABLES, Command
from tools.deploy_check.findings import Finding

Json = Mapping[str, object]

# A finding that does not fail the check: something that cannot be verified from the files.
NOTE = "note"
READY_PATH = "/ready"
HEALTH_PATH = "/health"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def _map(value: object) -> Json:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Json]:
    if isinstance(value, list):
        return [item for item in value if isinstance(item, Mapping)]
    return []


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


def describe(document: Json) -> str:
    """`Kind name`, as a finding names a rendered object."""
    metadata = _map(document.get("metadata"))
    return f"{document.get('kind', '?')} {metadata.get('name', '?')}"


# --- topics -------------------------------------------------------------------------------


def check_topics(
    documents: Sequence[Json], catalogue: Sequence[TopicSpec], where: str
) -> list[Finding]:
    """The `KafkaTopic`s among `documents` against the catalogue: each topic once, with its
    partitions and retention; none that the catalogue does not declare."""
    findings: list[Finding] = []
    declared: dict[str, Json] = {}
    for document in documents:
        if document.get("kind") != "KafkaTopic":
            continue
        spec = _map(document.get("spec"))
        name = _str(spec.get("topicName")) or _str(_map(document.get("metadata")).get("name"))
        if name is None:
            findings.append(Finding("topics", f"{where}: {describe(document)}", "has no name"))
            continue
        if name in declared:
            findings.append(Finding("topics", f"{where}: KafkaTopic {name}", "declared twice"))
        declared[name] = document
    wanted = {topic.name: topic for topic in catalogue}
    findings += [
        Finding(
            "topics",
            f"{where}: {describe(declared[name])}",
            f"topic {name} is not in contracts/topics.py (all_topics())",
        )
        for name in sorted(set(declared) - set(wanted))
    ]
    for name, topic in wanted.items():
        found = declared.get(name)
        if found is None:
            findings.append(
                Finding(
                    "topics",
                    where,
                    f"no KafkaTopic for {name} ({topic.partitions} partitions, "
                    f"retention.ms {topic.retention_ms}), which contracts/topics.py declares",
                )
            )
            continue
        document = found
        spec = _map(document.get("spec"))
        partitions = _int(spec.get("partitions"))
        if partitions != topic.partitions:
            findings.append(
                Finding(
                    "topics",
                    f"{where}: {describe(document)}",
                    f"{name} has {spec.get('partitions')} partitions, contracts/topics.py "
                    f"declares {topic.partitions}",
                )
            )
        retention = _int(_map(spec.get("config")).get("retention.ms"))
        if retention != topic.retention_ms:
            findings.append(
                Finding(
                    "topics",
                    f"{where}: {describe(document)}",
                    f"{name} has retention.ms {_map(spec.get('config')).get('retention.ms')}, "
                    f"contracts/topics.py declares {topic.retention_ms}",
                )
            )
    return findings


# --- containers: what they run and what they are given ---------------------------------------


@dataclass(frozen=True, slots=True)
class Container:
    """One container that runs the NearHome image, as the checks see it."""

    where: str
    command: str
    # Variables set by name (`env`), with their value where it is written inline.
    env: Mapping[str, str | None]
    # Variables that may come from `envFrom` sources whose keys are not known here.
    opaque_sources: tuple[str, ...] = ()
    ports: Mapping[str, int] = field(default_factory=dict)  # name ("" if unnamed) to port
    probes: Mapping[str, tuple[str | None, int | str | None]] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)


def command_of(arguments: Sequence[str], commands: Mapping[str, Command]) -> str | None:
    """Which command `nearhome <arguments>` runs: `serve provider` is `provider`, `migrate ...`
    is `migrate`; None for anything else."""
    words = [word for word in arguments if not word.startswith("-")]
    if "serve" in words:
        index = words.index("serve")
        if index + 1 < len(words) and words[index + 1] in commands:
            return words[index + 1]
    if "migrate" in words:
        return "migrate"
    if words[:2] == ["ledger", "rebuild"] or words[1:3] == ["ledger", "rebuild"]:
        return "ledger-rebuild"
    return None


def check_environment(container: Container, commands: Mapping[str, Command]) -> list[Finding]:
    """Every variable set must be one the command reads; the ones it needs must be set."""
    command = commands.get(container.command)
    if command is None:
        return [
            Finding("settings", container.where, f"runs no known command ({container.command})")
        ]
    findings = [
        Finding(
            "settings",
            container.where,
            f"sets {name}, which `{command.name}` never reads (no settings field or variable "
            "of that name in services/*/settings.py, services/platform)",
        )
        for name in sorted(container.env)
        if name.upper() not in command.reads and name not in RUNTIME_VARIABLES
    ]
    findings += [
        Finding(
            "settings",
            container.where,
            f"sets {name} in lower or mixed case; the code documents {name.upper()}",
        )
        for name in sorted(container.env)
        if name != name.upper() and name.upper() in command.reads
    ]
    development = (container.env.get("NEARHOME_ENV") or "").strip().lower() == "development"
    required = set(command.required)
    if not development:
        required |= command.required_in_production
    if command.name in {"migrate", "ledger-rebuild"} and not (
        {"DATABASE_URL", "NEARHOME_MIGRATE_DATABASE_URL"} & set(container.env)
    ):
        required.add("NEARHOME_MIGRATE_DATABASE_URL")
    missing = sorted(name for name in required if name not in container.env)
    production = "" if development else " (production: NEARHOME_ENV is not development)"
    if missing and not container.opaque_sources:
        findings.append(
            Finding(
                "settings",
                container.where,
                f"`{command.name}` needs {', '.join(missing)}{production}",
            )
        )
    elif missing:
        # They may be keys of a Secret or ConfigMap the operator makes: a note, not a failure.
        findings.append(
            Finding(
                NOTE,
                container.where,
                f"`{command.name}` needs {', '.join(missing)}{production}: not set here, so they "
                f"must come from {' or '.join(container.opaque_sources)} (not rendered)",
            )
        )
    findings += [
        Finding("settings", container.where, f"{name} is set but empty; `{command.name}` needs it")
        for name in sorted(required)
        if container.env.get(name, None) == ""
    ]
    host = container.env.get("HOST")
    if command.port is not None and host is not None and host.strip() in _LOOPBACK:
        findings.append(
            Finding(
                "settings",
                container.where,
                f"HOST={host}: the server would answer only inside its own container",
            )
        )
    return findings


def effective_port(container: Container, command: Command) -> int | None:
    """The port the service listens on: its port variable if the container sets it inline,
    else its settings' default."""
    for name in command.port_variables:
        value = _int(container.env.get(name))
        if value is not None:
            return value
    return command.port


def check_ports(container: Container, commands: Mapping[str, Command]) -> list[Finding]:
    """The container's port and its probes against the port the service listens on."""
    command = commands.get(container.command)
    if command is None or command.port is None:
        return []
    port = effective_port(container, command)
    findings: list[Finding] = []
    if port not in container.ports.values():
        findings.append(
            Finding(
                "ports",
                container.where,
                f"declares container ports {sorted(container.ports.values())}; "
                f"`nearhome serve {command.name}` listens on {port}",
            )
        )
    for probe, path in (("readinessProbe", READY_PATH), ("livenessProbe", HEALTH_PATH)):
        if probe not in container.probes:
            findings.append(
                Finding("ports", container.where, f"has no {probe} (GET {path} on {port})")
            )
            continue
        probe_path, probe_port = container.probes[probe]
        resolved = container.ports.get(probe_port) if isinstance(probe_port, str) else probe_port
        if resolved != port:
            findings.append(
                Finding(
                    "ports",
                    container.where,
                    f"{probe} goes to port {probe_port}; the service listens on {port}",
                )
            )
        if probe_path != path:
            findings.append(
                Finding("ports", container.where, f"{probe} asks {probe_path}, expected {path}")
            )
    startup = container.probes.get("startupProbe")
    if startup is not None:
        _, probe_port = startup
        resolved = container.ports.get(probe_port) if isinstance(probe_port, str) else probe_port
        if resolved != port:
            findings.append(
                Finding(
                    "ports",
                    container.where,
                    f"startupProbe goes to port {probe_port}; the service listens on {port}",
                )
            )
    return findings


# --- the rendered chart -------------------------------------------------------------------


def _env_of(
    container: Json, objects: Mapping[tuple[str, str], Json]
) -> tuple[dict[str, str | None], tuple[str, ...]]:
    """The variables a container sets (inline values where written) and the `envFrom` sources
    whose keys are unknown (not rendered with the chart)."""
    env: dict[str, str | None] = {}
    for origin in _list(container.get("envFrom")):
        prefix = _str(origin.get("prefix")) or ""
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            reference = _map(origin.get(key))
            name = _str(reference.get("name"))
            if name is None:
                continue
            found = objects.get((kind, name))
            if found is None:
                # Not rendered: made by the operator (an existing secret); keys unknown.
                continue
            for variable, value in _map(found.get("data")).items():
                env[prefix + variable] = _decoded(kind, value)
            for variable, value in _map(found.get("stringData")).items():
                env[prefix + variable] = _str(value)
    opaque = tuple(
        f"{key} {_map(source.get(key)).get('name')}"
        for source in _list(container.get("envFrom"))
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef"))
        if _map(source.get(key)) and (kind, str(_map(source.get(key)).get("name"))) not in objects
    )
    for entry in _list(container.get("env")):
        name = _str(entry.get("name"))
        if name is not None:
            env[name] = _str(entry.get("value")) if "value" in entry else None
    return env, opaque


def _decoded(kind: str, value: object) -> str | None:
    """A ConfigMap's value as written; a Secret's `data` value decoded from base64."""
    text = _str(value)
    if text is None or kind != "Secret":
        return text
    try:
        return base64.b64decode(text, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def _probes(container: Json) -> dict[str, tuple[str | None, int | str | None]]:
    probes: dict[str, tuple[str | None, int | str | None]] = {}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        get = _map(_map(container.get(probe)).get("httpGet"))
        if probe in container:
            port = get.get("port")
            probes[probe] = (
                _str(get.get("path")),
                port if isinstance(port, (int, str)) and not isinstance(port, bool) else None,
            )
    return probes


def pod_spec(document: Json) -> Json | None:
    """The pod template's spec of a Deployment, StatefulSet, Job or CronJob."""
    kind = document.get("kind")
    spec = _map(document.get("spec"))
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        return _map(_map(spec.get("template")).get("spec"))
    if kind == "CronJob":
        job = _map(_map(spec.get("jobTemplate")).get("spec"))
        return _map(_map(job.get("template")).get("spec"))
    return None


def chart_containers(
    documents: Sequence[Json], commands: Mapping[str, Command], where: str
) -> list[Container]:
    """The containers of the rendered chart that run `nearhome` (serve or migrate)."""
    objects = {
        (str(document.get("kind")), str(_map(document.get("metadata")).get("name"))): document
        for document in documents
    }
    found: list[Container] = []
    for document in documents:
        spec = pod_spec(document)
        if spec is None:
            continue
        template = _map(_map(document.get("spec")).get("template"))
        labels = {
            str(key): str(value)
            for key, value in _map(_map(template.get("metadata")).get("labels")).items()
        }
        for container in _list(spec.get("containers")) + _list(spec.get("initContainers")):
            words = [word for key in ("command", "args") for word in _words(container.get(key))]
            command = command_of(words, commands)
            if command is None:
                continue
            env, opaque = _env_of(container, objects)
            ports = {
                str(port.get("name") or ""): value
                for port in _list(container.get("ports"))
                if (value := _int(port.get("containerPort"))) is not None
            }
            found.append(
                Container(
                    where=f"{where}: {describe(document)}, container {container.get('name')}",
                    command=command,
                    env=env,
                    opaque_sources=opaque,
                    ports=ports,
                    probes=_probes(container),
                    labels=labels,
                )
            )
    return found


def check_services(
    documents: Sequence[Json],
    containers: Sequence[Container],
    commands: Mapping[str, Command],
    where: str,
) -> list[Finding]:
    """Each Service whose selector picks a NearHome service's pods must send its ports to the
    port that service listens on (by number or by the container port's name)."""
    findings: list[Finding] = []
    served = [c for c in containers if (cmd := commands.get(c.command)) and cmd.port is not None]
    covered: set[str] = set()
    for document in documents:
        if document.get("kind") != "Service":
            continue
        selector = {
            str(k): str(v) for k, v in _map(_map(document.get("spec")).get("selector")).items()
        }
        if not selector:
            continue
        for container in served:
            if any(container.labels.get(key) != value for key, value in selector.items()):
                continue
            covered.add(container.where)
            command = commands[container.command]
            port = effective_port(container, command)
            for service_port in _list(_map(document.get("spec")).get("ports")):
                target = service_port.get("targetPort", service_port.get("port"))
                resolved = container.ports.get(target) if isinstance(target, str) else _int(target)
                if resolved != port:
                    findings.append(
                        Finding(
                            "ports",
                            f"{where}: {describe(document)}",
                            f"port {service_port.get('name') or service_port.get('port')} "
                            f"targets {target}; `nearhome serve {command.name}` listens on {port}",
                        )
                    )
    findings += [
        Finding("ports", container.where, "no Service selects this service's pods")
        for container in served
        if container.where not in covered
    ]
    return findings


def check_service_monitors(documents: Sequence[Json], where: str) -> list[Finding]:
    """A ServiceMonitor's endpoints must name ports that the Services it selects have."""
    findings: list[Finding] = []
    services = [d for d in documents if d.get("kind") == "Service"]
    for document in documents:
        if document.get("kind") != "ServiceMonitor":
            continue
        spec = _map(document.get("spec"))
        match = {
            str(k): str(v) for k, v in _map(_map(spec.get("selector")).get("matchLabels")).items()
        }
        selected = [
            service
            for service in services
            if all(
                _map(_map(service.get("metadata")).get("labels")).get(key) == value
                for key, value in match.items()
            )
        ]
        if not selected:
            findings.append(
                Finding(
                    "ports", f"{where}: {describe(document)}", "selects no Service of the chart"
                )
            )
            continue
        names = {
            str(port.get("name"))
            for service in selected
            for port in _list(_map(service.get("spec")).get("ports"))
        }
        for endpoint in _list(spec.get("endpoints")):
            port = endpoint.get("port")
            if port is not None and str(port) not in names:
                findings.append(
                    Finding(
                        "ports",
                        f"{where}: {describe(document)}",
                        f"endpoint port {port} is not a port of the Services it selects "
                        f"({', '.join(sorted(names))})",
                    )
                )
            path = endpoint.get("path")
            if path not in (None, "/metrics"):
                findings.append(
                    Finding(
                        "ports",
                        f"{where}: {describe(document)}",
                        f"endpoint path {path}: the services serve /metrics",
                    )
                )
    return findings


def check_scaling(documents: Sequence[Json], where: str) -> list[Finding]:
    """Each HorizontalPodAutoscaler must scale a Deployment of the chart, and each
    PodDisruptionBudget must select the pods of one."""
    findings: list[Finding] = []
    deployments = [d for d in documents if d.get("kind") == "Deployment"]
    names = {str(_map(d.get("metadata")).get("name")) for d in deployments}
    pod_labels = [
        {
            str(k): str(v)
            for k, v in _map(
                _map(_map(_map(d.get("spec")).get("template")).get("metadata")).get("labels")
            ).items()
        }
        for d in deployments
    ]
    for document in documents:
        spec = _map(document.get("spec"))
        if document.get("kind") == "HorizontalPodAutoscaler":
            target = _map(spec.get("scaleTargetRef"))
            if target.get("kind") != "Deployment" or str(target.get("name")) not in names:
                findings.append(
                    Finding(
                        "chart",
                        f"{where}: {describe(document)}",
                        f"scales {target.get('kind')} {target.get('name')}, not a Deployment of "
                        "the chart",
                    )
                )
        if document.get("kind") == "PodDisruptionBudget":
            match = {
                str(k): str(v)
                for k, v in _map(_map(spec.get("selector")).get("matchLabels")).items()
            }
            if not any(all(labels.get(k) == v for k, v in match.items()) for labels in pod_labels):
                findings.append(
                    Finding(
                        "chart", f"{where}: {describe(document)}", "selects no Deployment's pods"
                    )
                )
    return findings


def topic_prefix(containers: Iterable[Container]) -> str:
    """The topic prefix the chart gives its services (the first one set; '' if none)."""
    for container in containers:
        value = container.env.get("NEARHOME_TOPIC_PREFIX")
        if value:
            return value
    return ""


def check_chart(
    documents: Sequence[Json],
    commands: Mapping[str, Command],
    catalogue: Sequence[TopicSpec],
    where: str,
    *,
    expect_topics: bool = True,
) -> list[Finding]:
    """Every consistency check on one rendering of the chart."""
    containers = chart_containers(documents, commands, where)
    findings: list[Finding] = []
    running = {container.command for container in containers}
    findings += [
        Finding("chart", where, f"no Deployment runs `nearhome serve {name}`")
        for name, command in commands.items()
        if command.port is not None and name not in running
    ]
    if "migrate" not in running:
        findings.append(Finding("chart", where, "no Job runs `nearhome migrate`"))
    for container in containers:
        findings += check_environment(container, commands)
        findings += check_ports(container, commands)
    findings += check_services(documents, containers, commands, where)
    findings += check_service_monitors(documents, where)
    findings += check_scaling(documents, where)
    if expect_topics:
        prefix = topic_prefix(containers)
        findings += check_topics(documents, [t.prefixed(prefix) for t in catalogue], where)
    return findings


# --- the compose file ---------------------------------------------------------------------


def _compose_env(service: Json) -> dict[str, str | None]:
    environment = service.get("environment")
    if isinstance(environment, Mapping):
        return {str(k): (None if v is None else str(v)) for k, v in environment.items()}
    if isinstance(environment, list):
        pairs = [str(item).partition("=") for item in environment]
        return {name: (value if equals else None) for name, equals, value in pairs}
    return {}


def _words(value: object) -> list[str]:
    if isinstance(value, list):
        return [str(word) for word in value]
    if isinstance(value, str):
        return value.split()
    return []


def compose_containers(
    compose: Json, commands: Mapping[str, Command], image_marker: str = "nearhome"
) -> list[Container]:
    """The compose services that run the NearHome image (built from deploy/Dockerfile or named
    `image_marker`), with what each runs."""
    found: list[Container] = []
    for name, value in _map(compose.get("services")).items():
        service = _map(value)
        image = str(service.get("image") or "")
        if not ("build" in service or image_marker in image.split(":", maxsplit=1)[0]):
            continue
        words = _words(service.get("entrypoint")) + _words(service.get("command"))
        command = command_of(words, commands)
        if command is None and any("all_topics" in word for word in words):
            command = "topics"
        ports: dict[str, int] = {}
        published = service.get("ports")
        for index, mapping in enumerate(published if isinstance(published, list) else []):
            if isinstance(mapping, Mapping):
                target = _int(mapping.get("target"))
            else:
                target = _int(str(mapping).split("/")[0].rsplit(":", 1)[-1])
            if target is not None:
                ports[str(index)] = target
        probes: dict[str, tuple[str | None, int | str | None]] = {}
        test = " ".join(_words(_map(service.get("healthcheck")).get("test")))
        for probe, path in (("readinessProbe", READY_PATH), ("livenessProbe", HEALTH_PATH)):
            for port in set(ports.values()) | {
                c.port for c in commands.values() if c.port is not None
            }:
                if f":{port}{path}" in test:
                    probes[probe] = (path, port)
        found.append(
            Container(
                where=f"compose: service {name}",
                command=command or "(none)",
                env=_compose_env(service),
                ports=ports,
                probes=probes,
            )
        )
    return found


def check_compose(
    compose: Json, commands: Mapping[str, Command], catalogue: Sequence[TopicSpec]
) -> list[Finding]:
    """The compose file's NearHome services: settings and ports as in the chart, a service for
    each command, the migration and topic steps before the services, and topics made from the
    catalogue (by `infra.local.topics.declare_topics` over `all_topics()`, or named literally
    with `--partitions`)."""
    containers = compose_containers(compose, commands)
    findings: list[Finding] = []
    running = {container.command for container in containers}
    expected = [*(n for n, c in commands.items() if c.port is not None), "migrate", "topics"]
    findings += [
        Finding("compose", "compose", f"no service runs `{name}`")
        for name in expected
        if name not in running
    ]
    services = _map(compose.get("services"))
    for container in containers:
        findings += check_environment(container, commands)
        command = commands.get(container.command)
        if command is not None and command.port is not None:
            port = effective_port(container, command)
            if port not in container.ports.values():
                findings.append(
                    Finding(
                        "ports",
                        container.where,
                        f"publishes {sorted(container.ports.values())}; "
                        f"`nearhome serve {command.name}` listens on {port}",
                    )
                )
            if set(container.probes) != {"readinessProbe", "livenessProbe"}:
                findings.append(
                    Finding(
                        "ports",
                        container.where,
                        f"its healthcheck must ask both :{port}{READY_PATH} and "
                        f":{port}{HEALTH_PATH}",
                    )
                )
            name = container.where.rsplit(" ", 1)[-1]
            depends = _map(services.get(name)).get("depends_on")
            conditions = {str(k): str(_map(v).get("condition")) for k, v in _map(depends).items()}
            for step, condition in (
                ("migrate", "service_completed_successfully"),
                ("topics", "service_completed_successfully"),
            ):
                step_names = [c.where.rsplit(" ", 1)[-1] for c in containers if c.command == step]
                if not any(conditions.get(s) == condition for s in step_names):
                    findings.append(
                        Finding(
                            "compose",
                            container.where,
                            f"does not wait for the {step} step ({condition})",
                        )
                    )
    findings += _compose_topics(compose, catalogue)
    return findings


def _compose_topics(compose: Json, catalogue: Sequence[TopicSpec]) -> list[Finding]:
    """Topics named literally (`--topic X ... --partitions N`) against the catalogue."""
    findings: list[Finding] = []
    wanted = {topic.name: topic for topic in catalogue}
    for name, value in _map(compose.get("services")).items():
        words = _words(_map(value).get("command")) + _words(_map(value).get("entrypoint"))
        text = " ".join(words).split()
        for index, word in enumerate(text):
            if word != "--topic" or index + 1 >= len(text):
                continue
            topic = text[index + 1]
            rest = text[index + 2 :]
            spec = wanted.get(topic)
            if spec is None:
                findings.append(
                    Finding(
                        "topics", f"compose: service {name}", f"{topic} is not in the catalogue"
                    )
                )
                continue
            if "--partitions" in rest:
                partitions = _int(rest[rest.index("--partitions") + 1])
                if partitions != spec.partitions:
                    findings.append(
                        Finding(
                            "topics",
                            f"compose: service {name}",
                            f"{topic} gets {partitions} partitions, contracts/topics.py "
                            f"declares {spec.partitions}",
                        )
                    )
    return findings
