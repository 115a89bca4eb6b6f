"""Where webhooks may go (delivery_targets.py): https and public addresses only, unless a host is
trusted by name or NEARHOME_ENV=development."""

import ipaddress
import re

import pytest

from services.alerting.delivery_targets import RefusedTargetError, WebhookTargets, forbidden_kind
from services.alerting.settings import Settings
from services.platform.environment import Environment

STRICT = WebhookTargets()


@pytest.fixture(autouse=True)
def _production(monkeypatch: pytest.MonkeyPatch) -> None:
    """The production rules (the suite runs in development: tests/conftest.py)."""
    monkeypatch.delenv("NEARHOME_ENV", raising=False)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("100.64.0.1", "non-global"),
        ("93.184.215.14", None),
        ("2606:4700::6810:84e5", None),
    ],
)
def test_only_public_addresses_are_allowed(address: str, kind: str | None):
    assert forbidden_kind(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://169.254.169.254/latest/meta-data", "must be https"),
        ("http://hooks.example.org/x", "must be https"),
        ("https://169.254.169.254/latest/meta-data", "169.254.169.254 is a link-local address"),
        ("https://10.0.0.7/hook", "10.0.0.7 is a private address"),
        ("https://[::1]:8443/hook", "::1 is a loopback address"),
        ("https://0.0.0.0/hook", "unspecified"),
        ("https://localhost/hook", "localhost resolves to 127.0.0.1, which is a loopback"),
    ],
)
async def test_a_subscription_to_an_internal_or_plain_http_url_is_refused(url: str, why: str):
    with pytest.raises(RefusedTargetError, match=re.escape(why)):
        await STRICT.check_subscription(url)


async def test_a_public_https_url_or_one_that_does_not_resolve_yet_is_let_in():
    await STRICT.check_subscription("https://93.184.215.14/hook")
    # Its deliveries resolve it again and check the address they get.
    await STRICT.check_subscription("https://hooks.sefton.invalid/nearhome")


async def test_a_delivery_checks_the_address_it_resolved_and_connects_to_that():
    with pytest.raises(RefusedTargetError, match=re.escape("localhost resolves to 127.0.0.1")):
        await STRICT.address_for("localhost", 443)
    trusted = WebhookTargets.of(["LocalHost", " "])
    assert trusted.allowed_hosts == frozenset({"localhost"})
    assert await trusted.address_for("localhost", 443) in {"127.0.0.1", "::1"}
    with pytest.raises(OSError):  # noqa: PT011 - whatever the resolver's own error says
        await STRICT.address_for("hooks.sefton.invalid", 443)


async def test_hosts_trusted_by_name_may_use_http_and_local_addresses():
    targets = WebhookTargets.of(
        Settings(webhook_allowed_hosts="127.0.0.1, localhost").webhook_allowed_hosts
    )
    await targets.check_subscription("http://127.0.0.1:9999/hook")
    await targets.check_subscription("http://localhost:9999/hook")
    with pytest.raises(RefusedTargetError):
        await targets.check_subscription("http://10.0.0.7/hook")


async def test_development_lets_every_url_in_and_production_is_the_default(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.delenv("NEARHOME_ENV", raising=False)
    assert not Environment().is_development
    assert not WebhookTargets.of(()).development
    monkeypatch.setenv("NEARHOME_ENV", "development")
    targets = WebhookTargets.of(())
    assert targets.development
    await targets.check_subscription("http://127.0.0.1:9999/hook")
    assert await targets.address_for("localhost", 80) in {"127.0.0.1", "::1"}
    monkeypatch.setenv("NEARHOME_ENV", "staging")
    with pytest.raises(ValueError, match="development"):
        Environment()


def test_the_allowed_hosts_are_read_from_the_environment_beside_the_browser_origins(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("ALERTING_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1, hooks.local")
    monkeypatch.setenv("NEARHOME_BROWSER_ORIGINS", "http://a.example,http://b.example")
    settings = Settings()
    assert settings.webhook_allowed_hosts == ("127.0.0.1", "hooks.local")
    assert settings.browser_origins == ("http://a.example", "http://b.example")


def test_only_nearhome_env_switches_development_on_not_a_variable_named_after_its_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NEARHOME_ENV", raising=False)
    monkeypatch.setenv("NAME", "development")
    assert not Environment().is_development
    monkeypatch.setenv("NEARHOME_ENV", "development")
    assert Environment().is_development
