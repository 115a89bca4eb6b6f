"""The provider service's operational edges: probes, metrics and its OpenAPI document."""

import asyncio
import time

import pytest
from provider_fixtures import (
    RunningProvider,
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def _metrics(service: RunningProvider) -> str:
    response = await service.client.get("/metrics")
    assert response.status_code == 200
    return response.text


async def test_health_ready_and_metrics_answer_with_live_figures(
    provider, provider_events, provider_id
) -> None:
    health = await provider.client.get("/health")
    ready = await provider.client.get("/ready")
    await provider.register_setting(provider_id)
    await provider_events.settled_of(provider_id, count=1)
    deadline = time.monotonic() + 10
    while "nearhome_outbox_backlog 0.0" not in (metrics := await _metrics(provider)):
        assert time.monotonic() < deadline, metrics
        await asyncio.sleep(0.05)

    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "database": True, "broker": True}
    assert (
        'nearhome_http_requests_total{method="POST",route="/v1/settings",status="201"} 1.0'
        in metrics
    )
    assert (
        "nearhome_events_published_total"
        '{event_type="SettingRegistered",topic="provider.events"} 1.0' in metrics
    )
    assert "nearhome_outbox_oldest_unsent_age_seconds 0.0" in metrics


async def test_openapi_lists_every_resource_with_its_models_and_bearer_security(provider) -> None:
    document = (await provider.client.get("/openapi.json")).json()

    operations = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if path.startswith("/v1/")
    }
    assert operations >= {
        ("POST", "/v1/settings"),
        ("PATCH", "/v1/settings/{setting_id}"),
        ("POST", "/v1/settings/{setting_id}/close"),
        ("GET", "/v1/settings"),
        ("POST", "/v1/vacancies"),
        ("POST", "/v1/vacancies/{vacancy_id}/confirm"),
        ("POST", "/v1/vacancies/{vacancy_id}/withdraw"),
        ("GET", "/v1/vacancies"),
        ("POST", "/v1/placements"),
        ("POST", "/v1/placements/{placement_id}/end"),
        ("GET", "/v1/placements"),
    }
    register = document["paths"]["/v1/settings"]["post"]
    assert register["tags"] == ["settings"]
    assert register["security"] == [{"HTTPBearer": []}]
    assert "201" in register["responses"]
    assert register["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SettingView"
    }
    assert any(p["name"] == "Idempotency-Key" for p in register["parameters"])
    schemas = document["components"]["schemas"]
    assert {"RegisterSetting", "PostVacancy", "StartPlacement", "VacancyView"} <= set(schemas)
    assert "expires_at" in schemas["VacancyView"]["properties"]
    assert schemas["RegisterSetting"]["additionalProperties"] is False
