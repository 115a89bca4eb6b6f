"""The API documents tell the truth: Schemathesis runs its coverage, fuzzing and stateful phases
against each service's `/openapi.json`, with every check it has, and must find nothing.

Each service runs with its real lifespan on a fresh database and fresh topics, served by uvicorn on
a free port of 127.0.0.1; the `schemathesis run` command (a child process, so the server keeps
answering on the test's event loop) calls it with a valid token of the role its routes are for.
The run is reproducible: a fixed seed, deterministic generation, no example database, one worker.
"""

import asyncio
import base64
import contextlib
import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alerting_fixtures import serving
from common import settings_for_test
from fastapi import FastAPI
from fresh import fresh_database

from services.platform.auth import Principal, Role, issue_token, principal_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
HERE = Path(__file__).parent
REPO = HERE.parent.parent
# Rules the documents state in words, followed by the requests Schemathesis makes.
HOOKS = "api_document_hooks"
SECRET = "api-documents-test-secret-of-at-least-32-bytes"
SEFTON = "E08000014"
# Alerting encrypts webhook secrets at rest under this key (services/platform/secrets.py).
SECRET_KEYS = "test-1:" + base64.b64encode(b"api-documents-test-key-32-bytes!").decode()
# Test cases per operation and phase, and steps per stateful scenario: enough to walk every
# documented answer, few enough for the four services to take about three minutes in all.
MAX_EXAMPLES = 10
MAX_STEPS = 5
SEED = 13
# The stream of alerts ends after this many seconds (its client reconnects), so a test case
# reading it is answered promptly.
STREAM_SECONDS = 0.5


@dataclass(frozen=True)
class Service:
    name: str
    principal: Principal
    settings_changes: tuple[tuple[str, Any], ...] = ()

    def app(self, database_url: str, topic_prefix: str) -> FastAPI:
        composition = importlib.import_module(f"services.{self.name}.app")
        settings = settings_for_test(
            composition.Settings,
            self.name,
            database_url,
            SECRET,
            topic_prefix=topic_prefix,
            # Schemathesis sends far more than 600 requests a minute with one token: the
            # limit stays on (its 429 is documented), only higher.
            rate_limit_per_minute=1_000_000,
            **dict(self.settings_changes),
        )
        app: FastAPI = composition.create_app(settings)
        return app


SERVICES = (
    Service(
        "provider",
        principal_for(Role.PROVIDER, provider_id="acme-care"),
    ),
    Service(
        "authority",
        principal_for(Role.AUTHORITY, authority_code=SEFTON),
    ),
    Service(
        "ledger",
        principal_for(Role.ADMIN),
    ),
    Service(
        "alerting",
        principal_for(Role.AUTHORITY, authority_code=SEFTON),
        (
            ("secret_keys", SECRET_KEYS),
            # The hooks send every webhook to 127.0.0.1 (over http): trusted by name.
            ("webhook_allowed_hosts", ("127.0.0.1",)),
            ("freeze_gc_after_load", False),
            ("sse_max_duration", STREAM_SECONDS),
            ("sse_heartbeat_interval", STREAM_SECONDS / 2),
        ),
    ),
)


# Where the generator cannot know what makes a request valid, a check is told so, and why.
EXCEPTIONS = """
# A change is checked with the record it changes (a setting's `age_min` against its stored
# `age_max`, its district against its council; a referral likewise): a 422 the document states,
# which no request drawn without the stored record can avoid.
[[operations]]
include-method = "PATCH"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"
]

# A request for a vacancy the authority has not heard of is a 404 naming the vacancy (in the
# body), not the referral: the check takes any 404 after the referral was made for a lost one.
[[operations]]
include-path = "/v1/referrals/{referral_id}/requests"
include-method = "POST"
checks.ensure_resource_availability.enabled = false
"""


def configuration(token: str) -> str:
    """`schemathesis.toml`: every phase and check, the bearer token, a fixed seed."""
    return f"""\
seed = {SEED}
workers = 1
continue-on-failure = true
request-timeout = 10
color = false

[auth.openapi.HTTPBearer]
bearer = "{token}"

[generation]
max-examples = {MAX_EXAMPLES}
deterministic = true
database = "none"

[phases]
examples.enabled = true
coverage.enabled = true
fuzzing.enabled = true
stateful.enabled = true
stateful.max-steps = {MAX_STEPS}

[checks]
enabled = true
{EXCEPTIONS}"""


async def schemathesis_run(url: str, token: str, directory: Path) -> str | None:
    """Schemathesis against the service at `url`: None if it found nothing, else its report."""
    config = directory / "schemathesis.toml"
    await asyncio.to_thread(directory.mkdir)
    await asyncio.to_thread(config.write_text, configuration(token))
    environment = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": HOOKS,
        "PYTHONPATH": os.pathsep.join((str(HERE), str(REPO))),
    }
    run = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        "--config-file",
        str(config),
        "run",
        f"{url}/openapi.json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=directory,
        env=environment,
    )
    output, _ = await run.communicate()
    return None if run.returncode == 0 else output.decode(errors="replace")


async def test_schemathesis_finds_every_document_true_to_its_service(
    topic_prefix: str, tmp_path: Path
) -> None:
    async with contextlib.AsyncExitStack() as running:
        urls = []
        # One after another: each lifespan migrates its own fresh database first.
        for service in SERVICES:
            app = service.app(await running.enter_async_context(fresh_database()), topic_prefix)
            await running.enter_async_context(app.router.lifespan_context(app))
            urls.append(await running.enter_async_context(serving(app)))
        # Then the four runs at once: most of a run is waiting for answers.
        reports = await asyncio.gather(
            *(
                schemathesis_run(
                    url, issue_token(service.principal, SECRET), tmp_path / service.name
                )
                for service, url in zip(SERVICES, urls, strict=True)
            )
        )
    failed = {
        service.name: report
        for service, report in zip(SERVICES, reports, strict=True)
        if report is not None
    }
    assert not failed, "Schemathesis found these documents untrue:\n" + "\n".join(
        f"=== {name} ===\n{report}" for name, report in failed.items()
    )
