"""The receiver's side: real deliveries verified with the `standardwebhooks` library, as a council
using Standard Webhooks would verify them (docs/events.md, Webhooks)."""

from uuid import uuid4

import pytest
from alerting_fixtures import (
    SEFTON,
    publish,
    referral_opened,
    running_alerting,
    setting_registered,
    vacancy_posted,
    webhook_receiver,
)
from standardwebhooks import Webhook, WebhookVerificationError

from services.alerting.webhooks import new_secret

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def test_every_try_of_a_delivery_verifies_with_the_standard_webhooks_library(
    fresh_database_url: str, topic_prefix: str
) -> None:
    async with (
        webhook_receiver() as receiver,
        running_alerting(fresh_database_url, topic_prefix) as alerting,
    ):
        receiver.refuse("/made", 500)  # tried twice: each try is signed afresh
        made = await alerting.subscribe(SEFTON, receiver.url("/made"))
        own_secret = new_secret()
        own = await alerting.subscribe(SEFTON, receiver.url("/own"), secret=own_secret)
        assert own["secret"] == own_secret
        setting_id, vacancy_id, referral_id = uuid4(), uuid4(), uuid4()
        await publish(
            [
                referral_opened(referral_id),
                setting_registered(setting_id),
                vacancy_posted(setting_id, vacancy_id),
            ],
            topic_prefix,
        )

        await receiver.wait_for("/made", 1)
        [own_hook] = await receiver.wait_for("/own", 1)
        tries = receiver.received("/made", accepted_only=False)
        assert [t.status for t in tries] == [500, 200]
        for hook, secret in [*((t, made["secret"]) for t in tries), (own_hook, own_secret)]:
            alert = Webhook(secret).verify(hook.body, hook.headers)
            assert alert["referral_id"] == str(referral_id)
            assert alert["vacancy_id"] == str(vacancy_id)
            # The id is the delivery's: the same on each try, and as X-NearHome-Delivery.
            assert hook.headers["webhook-id"] == hook.headers["x-nearhome-delivery"]
            assert hook.headers["x-nearhome-event"] == "alert.raised"
            # Another subscription's secret does not verify it.
            other = own_secret if secret != own_secret else made["secret"]
            with pytest.raises(WebhookVerificationError):
                Webhook(other).verify(hook.body, hook.headers)
        assert len({t.headers["webhook-id"] for t in tries}) == 1
