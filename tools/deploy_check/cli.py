"""`python -m tools.deploy_check` (`make deploy-check`): every check, then one summary.

Exit 0 when nothing was found; 1 with every finding listed; 2 when a tool could not be
installed. Each step says what it checked.
"""

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tools.deploy_check.codebase import Command, catalogue, commands
from tools.deploy_check.consistency import NOTE, Json, check_chart, check_compose
from tools.deploy_check.findings import Finding
from tools.deploy_check.paths import (
    CHART,
    CHECKOV_CONFIG,
    COMPOSE,
    DOCKERFILE,
    HELPER,
    REPOSITORY,
    SCHEMAS,
)
from tools.deploy_check.toolchain import ToolError, ensure_helm, ensure_venv

KUBERNETES_VERSION = "1.34.0"
RELEASE = "nearhome"
NAMESPACE = "nearhome"
# Each rendering the chart must survive: (label, helm --set arguments).
VALUES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("default values", ()),
    ("postgresql.mode=external", ("--set", "postgresql.mode=external")),
)
TOPICS_GENERATOR = REPOSITORY / "tools" / "deploy" / "topics.py"


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _run(arguments: Sequence[str], *, cwd: Path = REPOSITORY) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - the check's own tools, arguments from this module
        list(arguments), cwd=cwd, capture_output=True, text=True, check=False
    )


def _tail(result: subprocess.CompletedProcess[str], lines: int = 40) -> str:
    return "\n".join((result.stdout + result.stderr).strip().splitlines()[-lines:])


class Check:
    """One run: the tools, and the findings gathered so far."""

    def __init__(self, helm: Path, venv: Path) -> None:
        self.helm = helm
        self.python = venv / "bin" / "python"
        self.bin = venv / "bin"
        self.findings: list[Finding] = []
        self.commands: Mapping[str, Command] = commands()

    def yaml(self, paths: Sequence[Path]) -> dict[str, list[Json]]:
        result = _run([str(self.python), str(HELPER), "yaml", *map(str, paths)])
        if result.returncode != 0:
            raise ToolError(f"could not read YAML: {_tail(result)}")
        documents: dict[str, list[Json]] = json.loads(result.stdout)
        return documents

    def topics_generator(self) -> None:
        if not TOPICS_GENERATOR.exists():
            say("== tools/deploy/topics.py is not there yet: skipped")
            return
        say("== python -m tools.deploy.topics --check (the chart's topic list vs the catalogue)")
        result = _run([sys.executable, "-m", "tools.deploy.topics", "--check"])
        if result.returncode != 0:
            self.findings.append(Finding("topics", "tools.deploy.topics --check", _tail(result)))

    def chart(self, work: Path) -> list[Path]:
        """Lint and render the chart with each set of values; validate and compare each
        rendering. The rendered files, for checkov."""
        if not (CHART / "Chart.yaml").exists():
            self.findings.append(
                Finding("chart", str(CHART.relative_to(REPOSITORY)), "no Chart.yaml")
            )
            return []
        rendered: list[Path] = []
        for label, values in VALUES:
            where = f"chart ({label})"
            say(f"== helm lint and helm template, {label}")
            lint = _run([str(self.helm), "lint", "--strict", str(CHART), *values])
            if lint.returncode != 0:
                self.findings.append(Finding("helm", f"helm lint ({label})", _tail(lint)))
            template = _run(
                [
                    str(self.helm),
                    "template",
                    RELEASE,
                    str(CHART),
                    "--namespace",
                    NAMESPACE,
                    "--kube-version",
                    KUBERNETES_VERSION,
                    *values,
                ]
            )
            if template.returncode != 0:
                self.findings.append(Finding("helm", f"helm template ({label})", _tail(template)))
                continue
            path = work / f"rendered-{len(rendered)}.yaml"
            path.write_text(template.stdout, encoding="utf-8")
            rendered.append(path)
            documents = self.yaml([path])[str(path)]
            kinds = sorted({str(d.get("kind")) for d in documents})
            say(f"   {len(documents)} objects: {', '.join(kinds)}")
            self.validate(documents, where, work)
            say("   comparing topics, ports and settings with the code")
            self.findings += check_chart(documents, self.commands, catalogue(), where)
        return rendered

    def validate(self, documents: Sequence[Json], where: str, work: Path) -> None:
        say(
            f"   validating against Kubernetes {KUBERNETES_VERSION} (kubernetes-validate) and "
            f"the CRD schemas in {SCHEMAS.relative_to(REPOSITORY)}"
        )
        objects = work / "objects.json"
        objects.write_text(json.dumps(list(documents)), encoding="utf-8")
        result = _run(
            [
                str(self.python),
                str(HELPER),
                "validate",
                KUBERNETES_VERSION,
                str(SCHEMAS),
                str(objects),
            ]
        )
        if result.returncode != 0:
            self.findings.append(Finding("schema", where, _tail(result)))
            return
        for problem in json.loads(result.stdout):
            self.findings.append(
                Finding("schema", f"{where}: {problem['object']}", str(problem["error"]))
            )

    def compose(self) -> None:
        if not COMPOSE.exists():
            self.findings.append(Finding("compose", "deploy/compose.yaml", "missing"))
            return
        say(
            "== deploy/compose.yaml: services, ports, healthchecks, settings and topics vs the code"
        )
        compose = self.yaml([COMPOSE])[str(COMPOSE)]
        if len(compose) != 1:
            self.findings.append(Finding("compose", "deploy/compose.yaml", "not one YAML document"))
            return
        self.findings += check_compose(compose[0], self.commands, catalogue())

    def hadolint(self) -> None:
        say("== hadolint deploy/Dockerfile")
        result = _run([str(self.bin / "hadolint"), "--no-color", str(DOCKERFILE)])
        if result.returncode != 0:
            for line in (result.stdout + result.stderr).strip().splitlines():
                self.findings.append(Finding("hadolint", "deploy/Dockerfile", line))

    def checkov(self, rendered: Sequence[Path]) -> None:
        say(
            "== checkov: the rendered chart (kubernetes) and deploy/Dockerfile (dockerfile), "
            f"skips explained in {CHECKOV_CONFIG.relative_to(REPOSITORY)}"
        )
        arguments = [
            str(self.bin / "checkov"),
            "--config-file",
            str(CHECKOV_CONFIG),
            "--output",
            "json",
            "--skip-download",
            "--file",
            str(DOCKERFILE),
        ]
        for path in rendered:
            arguments += ["--file", str(path)]
        result = _run(arguments)
        try:
            report = json.loads(result.stdout)
        except json.JSONDecodeError:
            self.findings.append(Finding("checkov", "checkov", _tail(result)))
            return
        reports = report if isinstance(report, list) else [report]
        seen: set[tuple[str, str]] = set()
        for framework in reports:
            for failed in framework.get("results", {}).get("failed_checks", []):
                key = (str(failed.get("check_id")), str(failed.get("resource")))
                if key in seen:
                    continue
                seen.add(key)
                where = Path(str(failed.get("file_path", ""))).name
                place = "deploy/Dockerfile" if where == "Dockerfile" else "chart"
                self.findings.append(
                    Finding(
                        "checkov",
                        f"{place}: {failed.get('resource')}",
                        f"{failed.get('check_id')} {failed.get('check_name')}",
                    )
                )


def main() -> int:
    started = time.monotonic()
    say("== make deploy-check: the image, the compose file and the Helm chart against the code")
    try:
        # Independent: the venv mostly waits on the network, the Helm build on the CPU.
        with ThreadPoolExecutor(max_workers=2) as pool:
            installing = pool.submit(ensure_venv, say)
            helm = ensure_helm(say)
            venv = installing.result()
    except ToolError as error:
        say(f"deploy-check: cannot install its tools: {error}")
        return 2
    check = Check(helm, venv)
    with tempfile.TemporaryDirectory(prefix="nearhome-deploy-check-") as folder:
        work = Path(folder)
        check.topics_generator()
        rendered = check.chart(work)
        check.compose()
        check.hadolint()
        check.checkov(rendered)
    elapsed = time.monotonic() - started
    notes = sorted({finding for finding in check.findings if finding.check == NOTE})
    findings = sorted({finding for finding in check.findings if finding.check != NOTE})
    if notes:
        say(f"\ndeploy-check: {len(notes)} note(s), not failures (what the files cannot show):")
        for note in notes:
            say(f"  {note}")
    if not findings:
        say(f"deploy-check: no findings ({elapsed:.0f} s)")
        return 0
    say(f"\ndeploy-check: {len(findings)} finding(s) ({elapsed:.0f} s):")
    for finding in findings:
        say(f"  {finding}")
    return 1
