"""The API documents tell the truth: Schemathesis runs its coverage, fuzzing and stateful phases
against each service's `/openapi.json`, with every check it has, and must find nothing.

Each service runs with its real lifespan on a fresh database (a copy of the session's migrated
template) and fresh topics, served by uvicorn on a free port of 127.0.0.1 in a child process of its
own (this module run as a script: the same app and settings the test builds, so the four services
and the four Schemathesis runs share both cores, not one event loop); the `schemathesis run`
command (a child process too) calls it with a valid token of the role its routes are for.
The run is reproducible: a fixed seed, deterministic generation, no example database, one worker.
"""

import asyncio
import base64
import contextlib
import importlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from common import free_port, settings_for_test
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
# How long a service's process may take to answer, and to stop once told.
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


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


def serve(name: str, database_url: str, topic_prefix: str, port: str) -> None:
    """In the child process: `name`'s app (as `Service.app` builds it for the test) with its real
    lifespan, served by uvicorn on 127.0.0.1:`port` until SIGTERM."""
    (service,) = (service for service in SERVICES if service.name == name)
    uvicorn.run(
        service.app(database_url, topic_prefix),
        host="127.0.0.1",
        port=int(port),
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=1,
        access_log=False,
    )


async def _answers(name: str, process: asyncio.subprocess.Process, url: str, log: Path) -> None:
    """Return once `url` serves its API document; fail if the process exits first."""
    deadline = time.monotonic() + START_TIMEOUT_S
    async with httpx.AsyncClient(base_url=url, timeout=5, trust_env=False) as client:
        while True:
            if process.returncode is not None:
                output = await asyncio.to_thread(log.read_text, errors="replace")
                pytest.fail(f"{name} exited:\n{output}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/openapi.json")).status_code == 200:
                    return
            assert time.monotonic() < deadline, f"{name} did not answer at {url}"
            await asyncio.sleep(0.05)


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM (uvicorn ends the lifespan), SIGKILL if it lingers."""
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()


@contextlib.asynccontextmanager
async def serving(
    services: Sequence[tuple[Service, str]], topic_prefix: str, logs: Path
) -> AsyncIterator[list[str]]:
    """`serve` for each service (on its database) in a child process of its own, all started at
    once; their base URLs, once every one answers. Stopped after."""
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join((str(HERE), str(HERE.parent), str(REPO))),
    }
    started: list[tuple[Service, asyncio.subprocess.Process, str, Path]] = []
    try:
        for service, database_url in services:
            port = free_port()
            log = logs / f"{service.name}.log"
            with log.open("ab") as output:
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    __file__,
                    service.name,
                    database_url,
                    topic_prefix,
                    str(port),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=output,
                    stderr=asyncio.subprocess.STDOUT,
                    env=environment,
                )
            started.append((service, process, f"http://127.0.0.1:{port}", log))
        await asyncio.gather(
            *(_answers(service.name, process, url, log) for service, process, url, log in started)
        )
        yield [url for _, _, url, _ in started]
    finally:
        await asyncio.gather(*(_stop(process) for _, process, _, _ in started))


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
    topic_prefix: str, migrated_template: str, tmp_path: Path
) -> None:
    async with contextlib.AsyncExitStack() as running:
        # Each lifespan runs its start-up migrations on its own fresh database, a copy of the
        # session's migrated template, so they find its schema at head (as tests/fresh.py says;
        # the migrations themselves are test_migrations.py's to prove): the four start at once.
        databases = [
            (service, await running.enter_async_context(fresh_database(template=migrated_template)))
            for service in SERVICES
        ]
        urls = await running.enter_async_context(serving(databases, topic_prefix, tmp_path))
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


if __name__ == "__main__":
    serve(*sys.argv[1:])
