"""deploy/: the Prometheus scrape config and the Grafana dashboard match the services' code.

Every metric and label the dashboard queries is defined in `services/`, and every metric the
services define is on the dashboard, so neither can drift from the other unnoticed.
"""

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.alerting.settings import Settings as AlertingSettings
from services.authority.settings import Settings as AuthoritySettings
from services.ledger.settings import Settings as LedgerSettings
from services.platform.settings import ServiceSettings
from services.provider.settings import Settings as ProviderSettings

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "nearhome-dashboard.json"
SERVICE_SETTINGS: dict[str, type[ServiceSettings]] = {
    "provider": ProviderSettings,
    "authority": AuthoritySettings,
    "ledger": LedgerSettings,
    "alerting": AlertingSettings,
}
# What prometheus_client exposes for each kind of metric, after the name given in the code.
EXPOSED_SUFFIXES = {
    "Counter": ("_total",),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count"),
    "Summary": ("_sum", "_count"),
}
# Labels Prometheus adds when it scrapes (the job is the service; see prometheus.yml).
SCRAPE_LABELS = {"job", "instance", "service"}


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str
    labels: frozenset[str]

    def exposed(self) -> set[str]:
        return {self.name + suffix for suffix in EXPOSED_SUFFIXES[self.kind]}


def metrics_in_code() -> dict[str, Metric]:
    """Every `Counter("nearhome_…", …)` (and Gauge, Histogram, Summary) under services/."""
    found: dict[str, Metric] = {}
    for path in sorted((ROOT / "services").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            metric = _metric_defined_by(node)
            if metric is not None:
                found[metric.name] = metric
    return found


def _metric_defined_by(node: ast.AST) -> Metric | None:
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    kind = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
    first = node.args[0]
    if kind not in EXPOSED_SUFFIXES or not isinstance(first, ast.Constant):
        return None
    if not isinstance(first.value, str) or not first.value.startswith("nearhome_"):
        return None
    labels_node = node.args[2] if len(node.args) > 2 else None
    for keyword in node.keywords:
        if keyword.arg == "labelnames":
            labels_node = keyword.value
    labels: set[str] = set()
    if isinstance(labels_node, ast.List | ast.Tuple):
        labels = {
            element.value
            for element in labels_node.elts
            if isinstance(element, ast.Constant) and isinstance(element.value, str)
        }
    return Metric(first.value, kind, frozenset(labels))


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def queries() -> Iterator[tuple[str, dict[str, Any]]]:
    """(panel title, target) for every query on the dashboard."""
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target


def referenced_metrics(expr: str) -> set[str]:
    return set(re.findall(r"\b(nearhome_[a-z0-9_]+)\b", expr))


def referenced_labels(expr: str, legend: str) -> set[str]:
    grouped = re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr)
    labels = {label.strip() for group in grouped for label in group.split(",") if label.strip()}
    labels |= set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"", expr))
    labels |= set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
    return labels


def test_prometheus_scrapes_each_service_every_5_seconds_on_its_port() -> None:
    text = PROMETHEUS.read_text()
    assert re.search(r"^  scrape_interval: 5s$", text, re.MULTILINE)
    jobs = re.split(r"^  - job_name: ", text, flags=re.MULTILINE)[1:]
    by_name = {job.split("\n", 1)[0].strip(): job for job in jobs}

    assert sorted(by_name) == sorted(SERVICE_SETTINGS)
    for name, settings in SERVICE_SETTINGS.items():
        port = settings.model_fields["port"].default
        assert "    metrics_path: /metrics\n" in by_name[name]
        assert f'      - targets: ["127.0.0.1:{port}"]\n' in by_name[name]


def test_the_dashboard_is_a_grafana_dashboard_on_a_prometheus_datasource_variable() -> None:
    board = dashboard()
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}

    assert 39 <= board["schemaVersion"] < 45
    assert board["uid"] == "nearhome"
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"], panel["title"]


def test_every_variable_a_query_uses_is_defined() -> None:
    defined = {variable["name"] for variable in dashboard()["templating"]["list"]}
    for title, target in queries():
        used = set(re.findall(r"\$(\w+)", target["expr"])) - {"__rate_interval", "__interval"}
        assert used <= defined, f"{title}: {target['expr']}"


def test_every_metric_the_dashboard_queries_is_defined_in_the_services() -> None:
    exposed = {name for metric in metrics_in_code().values() for name in metric.exposed()}
    for title, target in queries():
        unknown = referenced_metrics(target["expr"]) - exposed
        assert not unknown, f"panel {title!r} queries {sorted(unknown)}, which no service defines"


def test_every_label_the_dashboard_uses_belongs_to_the_metrics_it_queries() -> None:
    metrics = metrics_in_code()
    by_exposed = {name: metric for metric in metrics.values() for name in metric.exposed()}
    for title, target in queries():
        # A metric the services lack is the other test's failure; here only the labels count.
        names = referenced_metrics(target["expr"]) & by_exposed.keys()
        queried = [by_exposed[name] for name in names]
        allowed = SCRAPE_LABELS.union(*(metric.labels for metric in queried))
        if any(metric.kind == "Histogram" for metric in queried):
            allowed.add("le")
        unknown = referenced_labels(target["expr"], target.get("legendFormat", "")) - allowed
        assert not unknown, f"panel {title!r} uses labels {sorted(unknown)} its metrics lack"


def test_every_metric_the_services_define_is_on_the_dashboard() -> None:
    on_dashboard = {name for _, target in queries() for name in referenced_metrics(target["expr"])}
    missing = [
        metric.name for metric in metrics_in_code().values() if not metric.exposed() & on_dashboard
    ]
    assert not missing, f"add panels for {missing} to {DASHBOARD.relative_to(ROOT)}"


@pytest.mark.parametrize(
    ("name", "kind", "labels"),
    [
        ("nearhome_http_requests", "Counter", {"method", "route", "status"}),
        ("nearhome_http_request_duration_seconds", "Histogram", {"method", "route"}),
        ("nearhome_outbox_backlog", "Gauge", set()),
        ("nearhome_consumer_events", "Counter", {"outcome"}),
    ],
)
def test_the_metric_scan_reads_names_kinds_and_labels_from_the_code(
    name: str, kind: str, labels: set[str]
) -> None:
    assert metrics_in_code()[name] == Metric(name, kind, frozenset(labels))
