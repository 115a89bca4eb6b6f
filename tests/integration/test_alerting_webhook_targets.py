"""Webhooks go only to public https addresses: a subscription to an internal or plain http URL is
refused naming `url`, and each delivery checks the address its host resolves to then."""

from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
from alerting_fixtures import (
    SEFTON,
    council_headers,
    production_identity,
    publish,
    referral_opened,
    running_alerting,
    setting_registered,
    until,
    vacancy_posted,
)
from common import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

# Nothing trusted by name: the production rules.
STRICT: dict[str, Any] = {"webhook_allowed_hosts": ()}


@pytest.fixture(autouse=True)
def production(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """In production (where development's leniency about webhook targets is off), the services
    trusting a stand-in identity provider: their settings for it."""
    with production_identity(monkeypatch) as identity:
        yield identity


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "https://169.254.169.254/latest/meta-data",
        "http://hooks.sefton.example/nearhome",
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.0.0.7/hook",
        "https://[::1]/hook",
        "https://[fe80::1]/hook",
        "https://224.0.0.1/hook",
        "https://240.0.0.1/hook",
        "https://0.0.0.0/hook",
    ],
)
async def test_a_subscription_to_an_internal_or_plain_http_url_is_refused_naming_the_url(
    fresh_database_url: str, topic_prefix: str, url: str, production: dict[str, Any]
) -> None:
    async with running_alerting(
        fresh_database_url, topic_prefix, **STRICT, **production
    ) as alerting:
        answer = await alerting.client.post(
            "/v1/subscriptions", json={"url": url}, headers=council_headers(SEFTON)
        )
        assert answer.status_code == 422, answer.text
        [error] = answer.json()["detail"]
        assert error["loc"] == ["body", "url"]
        assert "https" in error["msg"] or "address" in error["msg"]
        assert await alerting.subscriptions(SEFTON) == []


async def test_a_delivery_to_a_host_that_now_resolves_inward_is_refused_and_recorded(
    fresh_database_url: str, topic_prefix: str, production: dict[str, Any]
) -> None:
    # Subscribed while `localhost` was trusted (as if its name had pointed outward then) ...
    url = f"https://localhost:{free_port()}/hook"
    trusting = {"webhook_allowed_hosts": ("localhost",), **production}
    async with running_alerting(fresh_database_url, topic_prefix, **trusting) as alerting:
        await alerting.subscribe(SEFTON, url)
    # ... and delivered to once it is not: the address it resolves to is checked, not sent to.
    async with running_alerting(
        fresh_database_url, topic_prefix, **STRICT, **production
    ) as alerting:
        setting_id = uuid4()
        await publish(
            [
                referral_opened(uuid4()),
                setting_registered(setting_id),
                vacancy_posted(setting_id, uuid4()),
            ],
            topic_prefix,
        )

        async def refused() -> bool:
            [status] = await alerting.subscriptions(SEFTON)
            return bool(status["delivery_status"]["failed"] >= 1)

        await until(refused, "the delivery to be refused")
        [status] = await alerting.subscriptions(SEFTON)
        assert status["delivery_status"]["delivered"] == 0
        assert "localhost resolves to" in status["delivery_status"]["last_error"]
        assert "loopback address" in status["delivery_status"]["last_error"]
        [delivery] = await alerting.fetch("SELECT status, last_error FROM alerting.deliveries")
        assert "loopback address" in delivery["last_error"]
