"""What `nearhome run` decides to start, from its options and the environment."""

import re
import shlex
import sys
from pathlib import Path

import jwt
import pytest
from typer.testing import CliRunner

from services.platform.auth import Role, decode_token
from services.platform.settings import ServiceSettings
from tools.supervisor.cli import app, plan_run
from tools.supervisor.demo import demo_guide
from tools.supervisor.plan import (
    SERVICES,
    base_url,
    linked_environment,
    nearhome_command,
    parse_only,
    simulator_spec,
    split_built,
)


def test_without_only_all_four_services_run() -> None:
    assert parse_only(None) == ("provider", "authority", "ledger", "alerting")


def test_only_picks_a_subset_in_the_usual_order_whatever_the_spelling() -> None:
    assert parse_only("authority, Provider,authority") == ("provider", "authority")


@pytest.mark.parametrize(("only", "problem"), [("provider,billing", "'billing'"), (" , ", "one")])
def test_only_refuses_unknown_or_no_services(only: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_only(only)


def test_a_service_not_built_yet_is_skipped() -> None:
    built, skipped = split_built(SERVICES, built=lambda name: name != "alerting")

    assert built == ("provider", "authority", "ledger")
    assert skipped == ("alerting",)


def test_each_service_answers_on_its_own_port_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROVIDER_PORT", "18001")
    monkeypatch.setenv("LEDGER_PORT", "18003")

    run_plan = plan_run("provider,authority,ledger", demo=False, simulate_args=None)

    assert [(spec.name, spec.url) for spec in run_plan.services] == [
        ("provider", "http://127.0.0.1:18001"),
        ("authority", "http://127.0.0.1:8002"),
        ("ledger", "http://127.0.0.1:18003"),
    ]
    assert [spec.argv[-2:] for spec in run_plan.services] == [
        ("serve", "provider"),
        ("serve", "authority"),
        ("serve", "ledger"),
    ]
    assert all(spec.restart for spec in run_plan.services)
    assert run_plan.simulator is None


def test_a_demo_runs_the_simulator_against_the_services_as_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTHORITY_PORT", "18002")

    run_plan = plan_run(None, demo=True, simulate_args=None)

    assert run_plan.simulator is not None
    assert not run_plan.simulator.restart
    assert run_plan.simulator.url is None
    simulate = run_plan.simulator.argv[run_plan.simulator.argv.index("simulate") + 1 :]
    assert shlex.join(simulate) == (
        "--region north-west --speed 60 --seed 1 --provider-url http://127.0.0.1:8001 "
        "--authority-url http://127.0.0.1:18002"
    )


def test_simulate_args_replace_the_defaults_and_may_name_their_own_urls() -> None:
    spec = simulator_spec(
        "--region sefton --requests 100 --provider-url=http://elsewhere:1",
        ("nearhome",),
        "http://127.0.0.1:8001",
        "http://127.0.0.1:8002",
    )

    assert spec.argv == (
        "nearhome",
        "simulate",
        "--region",
        "sefton",
        "--requests",
        "100",
        "--provider-url=http://elsewhere:1",
        "--authority-url",
        "http://127.0.0.1:8002",
    )


def test_simulate_args_without_demo_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["--simulate-args", "--region sefton", "--no-infra"])

    assert result.exit_code == 2
    assert "--simulate-args" in result.output
    assert "needs --demo" in result.output


def test_a_bad_setting_in_the_environment_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVIDER_PORT", "eighty")

    result = CliRunner().invoke(app, ["--no-infra"])

    assert result.exit_code == 2
    assert "the environment's settings are not valid" in result.output
    assert "PROVIDER_PORT" in result.output


def test_a_bad_only_is_a_usage_error_naming_the_service() -> None:
    result = CliRunner().invoke(app, ["--only", "provider,billing", "--no-infra"])

    assert result.exit_code == 2
    assert "billing" in result.output


def test_a_server_bound_to_every_address_is_probed_on_loopback() -> None:
    assert base_url(ServiceSettings(host="0.0.0.0", port=9000)) == "http://127.0.0.1:9000"
    assert base_url(ServiceSettings(host="::1", port=9000)) == "http://[::1]:9000"


def test_children_run_the_nearhome_script_beside_the_interpreter(tmp_path: Path) -> None:
    assert nearhome_command(sys.executable) == (str(Path(sys.executable).parent / "nearhome"),)
    python = tmp_path / "python"
    assert nearhome_command(str(python)) == (
        str(python),
        "-c",
        "from services.cli import main; main()",
    )


def test_the_demo_guide_gives_working_tokens_for_each_role() -> None:
    secret = "demo-secret-of-at-least-32-bytes-long"
    urls = {name: f"http://127.0.0.1:800{n}" for n, name in enumerate(SERVICES, start=1)}

    lines = demo_guide(urls, secret, development_secret=False)

    exports = {
        match[1]: match[2]
        for line in lines
        if (match := re.match(r"\s+export (\w+)=(\S+)  # ", line))
    }
    principals = {name: decode_token(token, secret) for name, token in exports.items()}
    assert principals["COLLABORATIVE_TOKEN"].role is Role.COLLABORATIVE
    assert principals["COLLABORATIVE_TOKEN"].footprints == ("placements-north-west",)
    assert principals["WESTMORLAND_TOKEN"].authority_code == "E06000064"
    assert principals["SEFTON_TOKEN"].authority_code == "E08000014"
    assert principals["PROVIDER_TOKEN"].provider_id == "sefton-council"
    assert "Dashboard: http://127.0.0.1:8003/" in lines
    assert any(
        "$SEFTON_TOKEN for Sefton's own referrals and their alerts" in line for line in lines
    )
    assert any("/v1/capacity/placements-north-west" in line for line in lines)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(exports["SEFTON_TOKEN"], "another-secret-of-at-least-32-bytes", ["HS256"])


def test_the_demo_guide_shows_requests_only_for_services_that_run() -> None:
    lines = demo_guide({"provider": "http://127.0.0.1:8001"}, "x" * 32, development_secret=True)

    curls = [line for line in lines if "curl" in line]
    assert curls == [
        '  curl -H "Authorization: Bearer $PROVIDER_TOKEN" http://127.0.0.1:8001/v1/vacancies'
    ]
    assert not any(line.startswith("Dashboard") for line in lines)
    assert "the development secret" in lines[0]


def test_the_pages_are_linked_to_the_services_run_beside_them() -> None:
    urls = {
        "provider": "http://127.0.0.1:9001",
        "authority": "http://127.0.0.1:9002",
        "ledger": "http://127.0.0.1:9003",
        "alerting": "http://127.0.0.1:9004",
    }
    assert linked_environment(urls, {}) == {
        "NEARHOME_PROVIDER_URL": "http://127.0.0.1:9001",
        "NEARHOME_AUTHORITY_URL": "http://127.0.0.1:9002",
        "NEARHOME_LEDGER_URL": "http://127.0.0.1:9003",
        "NEARHOME_ALERTING_URL": "http://127.0.0.1:9004",
        "NEARHOME_BROWSER_ORIGINS": (
            "http://127.0.0.1:9001,http://localhost:9001,http://127.0.0.1:9002,"
            "http://localhost:9002,http://127.0.0.1:9003,http://localhost:9003"
        ),
    }


def test_what_the_environment_says_of_the_links_is_kept() -> None:
    urls = {"authority": "http://127.0.0.1:8002", "ledger": "http://10.0.0.5:8003"}
    environ = {
        "NEARHOME_AUTHORITY_URL": "https://authority.example.org",
    }

    assert linked_environment(urls, environ) == {
        "NEARHOME_LEDGER_URL": "http://10.0.0.5:8003",
        "NEARHOME_BROWSER_ORIGINS": "http://127.0.0.1:8002,http://localhost:8002,http://10.0.0.5:8003",
    }
