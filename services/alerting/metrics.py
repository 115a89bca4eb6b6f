"""The alerting service's own Prometheus metrics (the platform adds HTTP, outbox and consumer)."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.platform.outbox import pipeline_stage_histogram


class AlertingMetrics:
    """`stages`: the registry's `nearhome_pipeline_stage_seconds` where the outbox's metrics made
    it already (a registry takes each name once); a new one in `registry` otherwise."""

    def __init__(self, registry: CollectorRegistry, *, stages: Histogram | None = None) -> None:
        self.stages = stages if stages is not None else pipeline_stage_histogram(registry)
        self.alerts_raised = Counter(
            "nearhome_alerts_raised",
            "Alerts raised (committed), by whether the fit is local",
            ["local"],
            registry=registry,
        )
        self.alerts_retracted = Counter(
            "nearhome_alerts_retracted",
            "Alerts retracted (committed), by reason",
            ["reason"],
            registry=registry,
        )
        self.deliveries = Counter(
            "nearhome_webhook_deliveries",
            "Webhook tries by outcome: delivered, failed (to be tried again) or dead",
            ["outcome"],
            registry=registry,
        )
        self.delivery_latency = Histogram(
            "nearhome_alert_delivery_latency_seconds",
            "Time from the source event's occurred_at to its webhook being delivered",
            ["kind"],
            registry=registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 2, 5, 10, 30, 60, 300, 3600, float("inf")),
        )
        self.book_loads = Counter(
            "nearhome_alerting_book_loads",
            "Loads of the in-memory index from the database (start-up, or after a rollback)",
            registry=registry,
        )
        self.open_referrals = Gauge(
            "nearhome_alerting_open_referrals", "Open referrals in the index", registry=registry
        )
        self.open_vacancies = Gauge(
            "nearhome_alerting_open_vacancies",
            "Open vacancies in the index (of known, open settings)",
            registry=registry,
        )
        self.open_alerts = Gauge(
            "nearhome_alerting_open_alerts", "Alerts open now", registry=registry
        )
        self.stream_clients = Gauge(
            "nearhome_alert_stream_clients",
            "Clients connected to GET /v1/alerts/stream",
            registry=registry,
        )
