"""Subscription secrets are stored only encrypted, under a key id, and keys rotate: what was sealed
under an old key still signs, a plain-text secret from before is sealed on start, and without a
key a production service makes no subscription."""

import base64
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from alerting_fixtures import (
    SECRET_KEYS,
    SEFTON,
    council_headers,
    production_identity,
    publish,
    referral_opened,
    running_alerting,
    setting_registered,
    vacancy_posted,
    webhook_receiver,
)
from standardwebhooks import Webhook

from services.alerting.webhooks import new_secret

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

NEW_KEY = "test-2:" + base64.b64encode(b"the-rotated-alerting-key-32bytes").decode()


async def test_secrets_are_stored_sealed_and_still_sign_after_the_key_rotates(
    fresh_database_url: str, topic_prefix: str
) -> None:
    async with webhook_receiver() as receiver:
        async with running_alerting(fresh_database_url, topic_prefix) as alerting:
            before = await alerting.subscribe(SEFTON, receiver.url("/before"))
            [row] = await alerting.fetch(
                "SELECT secret, secret_key_id, secret_ciphertext FROM alerting.subscriptions"
            )
            assert row["secret"] is None
            assert row["secret_key_id"] == "test-1"
            assert before["secret"].encode() not in row["secret_ciphertext"]
            key = before["secret"].removeprefix("whsec_")
            assert key.encode() not in row["secret_ciphertext"]

        # A new key first, the old one kept after it to open what it sealed.
        rotated: dict[str, Any] = {"secret_keys": f"{NEW_KEY},{SECRET_KEYS}"}
        async with running_alerting(fresh_database_url, topic_prefix, **rotated) as alerting:
            after = await alerting.subscribe(SEFTON, receiver.url("/after"))
            keys = await alerting.fetch(
                "SELECT subscription_id, secret_key_id FROM alerting.subscriptions"
            )
            assert {str(r["subscription_id"]): r["secret_key_id"] for r in keys} == {
                before["subscription_id"]: "test-1",
                after["subscription_id"]: "test-2",
            }
            setting_id = uuid4()
            await publish(
                [
                    referral_opened(uuid4()),
                    setting_registered(setting_id),
                    vacancy_posted(setting_id, uuid4()),
                ],
                topic_prefix,
            )
            [old] = await receiver.wait_for("/before", 1)
            [new] = await receiver.wait_for("/after", 1)
            Webhook(before["secret"]).verify(old.body, old.headers)
            Webhook(after["secret"]).verify(new.body, new.headers)


async def test_a_secret_stored_in_plain_text_before_is_sealed_on_start_and_still_signs(
    fresh_database_url: str, topic_prefix: str
) -> None:
    legacy = new_secret()
    subscription_id = uuid4()
    async with webhook_receiver() as receiver:
        # As a row from before secrets were sealed: the secret in plain text only.
        async with (
            running_alerting(fresh_database_url, topic_prefix) as alerting,
            alerting.engine.begin() as connection,
        ):
            await connection.exec_driver_sql(
                "INSERT INTO alerting.subscriptions"
                " (subscription_id, authority_code, url, created_at, secret)"
                " VALUES ($1, $2, $3, $4, $5)",
                (subscription_id, SEFTON, receiver.url("/legacy"), datetime.now(UTC), legacy),
            )
        async with running_alerting(fresh_database_url, topic_prefix) as alerting:
            setting_id = uuid4()
            await publish(
                [
                    referral_opened(uuid4()),
                    setting_registered(setting_id),
                    vacancy_posted(setting_id, uuid4()),
                ],
                topic_prefix,
            )
            [hook] = await receiver.wait_for("/legacy", 1)
            Webhook(legacy).verify(hook.body, hook.headers)
            [row] = await alerting.fetch(
                "SELECT secret, secret_key_id, secret_ciphertext FROM alerting.subscriptions"
            )
            assert row["secret"] is None
            assert row["secret_key_id"] == "test-1"
            assert row["secret_ciphertext"]


async def test_without_a_key_a_production_service_makes_no_subscription(
    fresh_database_url: str, topic_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with production_identity(monkeypatch) as identity:
        async with running_alerting(
            fresh_database_url, topic_prefix, secret_keys=None, **identity
        ) as alerting:
            answer = await alerting.client.post(
                "/v1/subscriptions",
                json={"url": "https://hooks.sefton.example/nearhome"},
                headers=council_headers(SEFTON),
            )
            assert answer.status_code == 503, answer.text
            assert "NEARHOME_SECRET_KEYS" in answer.json()["detail"]
            assert await alerting.fetch("SELECT * FROM alerting.subscriptions") == []
