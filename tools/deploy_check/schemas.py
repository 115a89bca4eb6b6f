"""Refresh the vendored CRD schemas: `python -m tools.deploy_check.schemas`.

The chart's custom resources are validated against their CRDs' `openAPIV3Schema`, kept in
`deploy/schemas/<group>/<version>/<Kind>.json` (CI cannot reach the projects' repositories). Each
comes from a package registry, at the release pinned here:

* Strimzi (`kafka.strimzi.io`): generated exactly as Strimzi's own build does, by
  `io.strimzi:crd-generator` from the model classes of `io.strimzi:api` (both from Maven Central,
  resolved by `mvn`; run with Java 21 or later);
* CloudNativePG (`postgresql.cnpg.io`): `config/crd/bases/` of the Go module
  `github.com/cloudnative-pg/cloudnative-pg` (`go mod download`);
* prometheus-operator (`monitoring.coreos.com`): `example/prometheus-operator-crd/` of the Go
  module `github.com/prometheus-operator/prometheus-operator`.

The YAML is read by the check tools' venv (`tools/deploy_check/helper.py`); this writes the JSON
and `deploy/schemas/README.md`.
"""

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from infra.local.keycloak import find_java_home
from tools.deploy_check.paths import HELPER, SCHEMAS
from tools.deploy_check.toolchain import ToolError, ensure_venv, find_go

# The last release that serves both kafka.strimzi.io/v1beta2 (what the chart's resources use) and
# v1 (the only version from Strimzi 1.0 on).
STRIMZI_VERSION = "0.51.0"
# Strimzi published no crd-generator of 0.51.0 to Maven Central; 1.2.0's reads 0.51.0's classes.
STRIMZI_GENERATOR_VERSION = "1.2.0"
STRIMZI_KINDS = {
    "Kafka": "io.strimzi.api.kafka.model.kafka.Kafka",
    "KafkaNodePool": "io.strimzi.api.kafka.model.nodepool.KafkaNodePool",
    "KafkaTopic": "io.strimzi.api.kafka.model.topic.KafkaTopic",
    "KafkaUser": "io.strimzi.api.kafka.model.user.KafkaUser",
}
# The arguments of Strimzi's api/pom.xml (its CRD generation for the cluster operator).
STRIMZI_GENERATOR_OPTIONS = [
    "--label",
    "app:strimzi",
    "--label",
    "strimzi.io/crd-install:true",
    "--target-kube",
    "1.16+",
    "--crd-api-version",
    "v1",
    "--api-versions",
    "v1beta2,v1",
    "--storage-version",
    "v1beta2",
    "--yaml",
]
STRIMZI_POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>nearhome</groupId><artifactId>strimzi-crds</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>io.strimzi</groupId><artifactId>api</artifactId>
      <version>{STRIMZI_VERSION}</version></dependency>
    <dependency><groupId>io.strimzi</groupId><artifactId>crd-generator</artifactId>
      <version>{STRIMZI_GENERATOR_VERSION}</version></dependency>
  </dependencies>
</project>
"""


@dataclass(frozen=True, slots=True)
class GoModuleCrds:
    """CRD files inside a Go module's source zip."""

    module: str
    version: str
    files: tuple[str, ...]
    release: str


GO_SOURCES = (
    GoModuleCrds(
        module="github.com/cloudnative-pg/cloudnative-pg",
        version="v1.27.1",
        files=(
            "config/crd/bases/postgresql.cnpg.io_clusters.yaml",
            "config/crd/bases/postgresql.cnpg.io_scheduledbackups.yaml",
            "config/crd/bases/postgresql.cnpg.io_databases.yaml",
        ),
        release="CloudNativePG v1.27.1",
    ),
    GoModuleCrds(
        module="github.com/prometheus-operator/prometheus-operator",
        version="v0.85.0",
        files=(
            "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
            "example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml",
            "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
        ),
        release="prometheus-operator v0.85.0",
    ),
)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _run(arguments: list[str], cwd: Path, env: Mapping[str, str] | None = None) -> str:
    result = subprocess.run(  # noqa: S603 - mvn, java and go with arguments from this module
        arguments, cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ToolError(f"`{' '.join(arguments[:4])} ...` failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def _read_yaml(python: Path, paths: list[Path]) -> dict[str, list[object]]:
    output = _run([str(python), str(HELPER), "yaml", *map(str, paths)], cwd=SCHEMAS)
    documents: dict[str, list[object]] = json.loads(output)
    return documents


def _strimzi(work: Path) -> list[Path]:
    _say(f"== Strimzi {STRIMZI_VERSION}: resolving io.strimzi:api and crd-generator with mvn")
    (work / "pom.xml").write_text(STRIMZI_POM, encoding="utf-8")
    _run(["mvn", "-q", "-B", "dependency:build-classpath", "-Dmdep.outputFile=cp.txt"], work)
    classpath = (work / "cp.txt").read_text(encoding="utf-8").strip()
    java = find_java_home(21) / "bin" / "java"
    outputs = [work / f"strimzi-{kind}.yaml" for kind in STRIMZI_KINDS]
    _run(
        [
            str(java),
            "-cp",
            classpath,
            "io.strimzi.crdgenerator.CrdGenerator",
            *STRIMZI_GENERATOR_OPTIONS,
            *(f"{cls}={out}" for cls, out in zip(STRIMZI_KINDS.values(), outputs, strict=True)),
        ],
        work,
    )
    return outputs


def _go_module(source: GoModuleCrds, work: Path) -> list[Path]:
    _say(f"== {source.release}: go mod download {source.module}@{source.version}")
    env = {
        **os.environ,
        "GOMODCACHE": str(work / "gomod"),
        "GOFLAGS": "-modcacherw",
        "GOTOOLCHAIN": "local",
    }
    output = _run(
        [find_go(), "mod", "download", "-json", f"{source.module}@{source.version}"], work, env
    )
    directory = Path(json.loads(output)["Dir"])
    return [directory / file for file in source.files]


def _write(crd: Mapping[str, object], release: str, written: list[str]) -> None:
    spec = crd.get("spec")
    assert isinstance(spec, Mapping), "a CRD has a spec"
    group = str(spec["group"])
    names = spec["names"]
    assert isinstance(names, Mapping)
    kind = str(names["kind"])
    versions = spec["versions"]
    assert isinstance(versions, list)
    for version in versions:
        if not version.get("served", True):
            continue
        schema = version["schema"]["openAPIV3Schema"]
        path = SCHEMAS / group / str(version["name"]) / f"{kind}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        written.append(f"| `{group}/{version['name']}` | {kind} | {release} |")


README = """# Vendored CRD schemas

The `openAPIV3Schema` of each custom resource the Helm chart may render, one file per
`<group>/<version>/<Kind>.json`, for `make deploy-check` (tools/deploy_check): CI cannot reach
the projects' repositories, so the schemas live here. Written by
`python -m tools.deploy_check.schemas` (do not edit by hand); to move to another release, change
the versions in `tools/deploy_check/schemas.py` and run it again.

Where each came from (all through package registries):

- Strimzi: generated by `io.strimzi:crd-generator` (1.2.0: no generator of 0.51.0 was published)
  from the model classes of `io.strimzi:api` 0.51.0 (Maven Central) with the options of Strimzi's
  own build, as its `packaging/install/cluster-operator/04x-Crd-*.yaml`: both
  `kafka.strimzi.io/v1beta2` (what the chart uses; Strimzi 1.0 and later serve only `v1`) and
  `v1`;
- CloudNativePG: `config/crd/bases/` of the Go module `github.com/cloudnative-pg/cloudnative-pg`;
- prometheus-operator: `example/prometheus-operator-crd/` of the Go module
  `github.com/prometheus-operator/prometheus-operator`.

| group/version | kind | release |
|---|---|---|
"""


def main() -> int:
    python = ensure_venv(_say) / "bin" / "python"
    SCHEMAS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="nearhome-crds-") as folder:
        work = Path(folder)
        sources: list[tuple[list[Path], str]] = [(_strimzi(work), f"Strimzi {STRIMZI_VERSION}")]
        sources += [(_go_module(source, work), source.release) for source in GO_SOURCES]
        written: list[str] = []
        for paths, release in sources:
            for documents in _read_yaml(python, paths).values():
                for crd in documents:
                    assert isinstance(crd, Mapping), "a CRD is a mapping"
                    _write(crd, release, written)
    (SCHEMAS / "README.md").write_text(README + "\n".join(sorted(written)) + "\n", encoding="utf-8")
    _say(f"wrote {len(written)} schemas under {SCHEMAS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
