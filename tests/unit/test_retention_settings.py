"""The retention horizons read from the environment: seconds or ISO 8601, never zero."""

from datetime import timedelta

import pytest
from pydantic import ValidationError

from services.platform.retention import RetentionSettings


def test_the_horizons_default_to_a_week_for_sent_rows_and_keys_and_a_month_for_the_rest() -> None:
    settings = RetentionSettings()
    assert settings.retain_sent_outbox == timedelta(days=7)
    assert settings.retain_idempotency_keys == timedelta(days=7)
    assert settings.retain_inbox_ids == timedelta(days=30)
    assert settings.retain_delivered_webhooks == timedelta(days=30)
    assert settings.retain_stream_events == timedelta(days=1)  # for streams resumed the same day


def test_a_horizon_is_read_as_seconds_or_an_iso_8601_duration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEARHOME_RETAIN_SENT_OUTBOX", "86400")
    monkeypatch.setenv("NEARHOME_RETAIN_INBOX_IDS", "P45D")
    monkeypatch.setenv("NEARHOME_RETENTION_BATCH_SIZE", "50")
    monkeypatch.setenv("NEARHOME_RETAIN_STREAM_EVENTS", "PT6H")
    settings = RetentionSettings()
    assert settings.retain_stream_events == timedelta(hours=6)
    assert settings.retain_sent_outbox == timedelta(days=1)
    assert settings.retain_inbox_ids == timedelta(days=45)
    assert settings.retention_batch_size == 50


@pytest.mark.parametrize("value", ["0", "-60", "P0D"])
def test_a_horizon_of_nothing_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("NEARHOME_RETAIN_IDEMPOTENCY_KEYS", value)
    with pytest.raises(ValidationError):
        RetentionSettings()
