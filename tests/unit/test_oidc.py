"""Production identity (services/platform/identity.py, oidc.py): tokens from an OpenID Connect
provider, checked against the keys it publishes over real HTTP (tests/identity_provider.py), by
a real uvicorn server with the platform's error answers and input limits."""

import asyncio
import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import jwt
import pytest
import uvicorn
from fastapi import Depends, FastAPI
from identity_provider import (
    AUDIENCE,
    IdentityProvider,
    ec_key,
    rsa_key,
    serving_identity_provider,
)
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from services.platform.auth import (
    DEVELOPMENT_SECRET,
    LocalTokens,
    Principal,
    Role,
    authenticated,
    issue_token,
    principal_for,
)
from services.platform.database import create_engine
from services.platform.errors import UnauthenticatedError
from services.platform.http import add_operational_routes
from services.platform.identity import (
    DevelopmentTokens,
    IdentityNotConfiguredError,
    IdentitySettings,
    token_verifier,
)
from services.platform.limits import InputLimits
from services.platform.oidc import OidcTokens
from services.platform.settings import ServiceSettings

SEFTON = "E08000014"


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEARHOME_ENV", raising=False)


@pytest.fixture
def provider() -> Iterator[IdentityProvider]:
    with serving_identity_provider() as serving:
        yield serving


def _app(settings: IdentitySettings, *, per_minute: int = 0) -> FastAPI:
    app = FastAPI()
    app.state.token_verifier = token_verifier(settings)
    # A lazy engine: the probes are never called here, only the error answers are wanted.
    add_operational_routes(
        app, CollectorRegistry(), create_engine("postgresql+asyncpg://nobody@127.0.0.1:9/none"), ""
    )

    @app.get("/v1/whoami")
    def whoami(principal: Annotated[Principal, Depends(authenticated)]) -> dict[str, Any]:
        return {
            "organisation_id": principal.organisation_id,
            "role": principal.role.value,
            "provider_id": principal.provider_id,
            "authority_code": principal.authority_code,
            "footprints": list(principal.footprints),
        }

    app.add_middleware(
        InputLimits,
        max_body_bytes=1024,
        rate_limit_per_minute=per_minute,
        verifier=app.state.token_verifier,
    )
    return app


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=10
        ) as client:
            yield client
    finally:
        server.should_exit = True
        await task


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def keycloak_provider(provider_id: str = "acme-care") -> dict[str, Any]:
    return {"realm_access": {"roles": ["offline_access", "provider"]}, "provider_id": provider_id}


async def test_good_rs256_and_es256_tokens_are_accepted_with_the_role_and_scope_they_map_to(
    production: None, provider: IdentityProvider
) -> None:
    async with serving(_app(IdentitySettings(**provider.settings()))) as client:
        as_provider = await client.get(
            "/v1/whoami", headers=bearer(provider.token(keycloak_provider()))
        )
        as_council = await client.get(
            "/v1/whoami",
            headers=bearer(
                provider.token(
                    {"realm_access": {"roles": ["authority"]}, "authority_code": SEFTON},
                    key=provider.ec,
                )
            ),
        )
        as_collaborative = await client.get(
            "/v1/whoami",
            headers=bearer(
                provider.token(
                    {
                        "realm_access": {"roles": ["collaborative"]},
                        "footprints": "placements-north-west greater-manchester",
                    }
                )
            ),
        )
    assert as_provider.status_code == 200, as_provider.text
    assert as_provider.json() == {
        "organisation_id": "acme-care",
        "role": "provider",
        "provider_id": "acme-care",
        "authority_code": None,
        "footprints": [],
    }
    assert as_council.status_code == 200, as_council.text
    assert as_council.json()["role"] == "authority"
    assert as_council.json()["organisation_id"] == SEFTON
    assert as_collaborative.json()["footprints"] == ["placements-north-west", "greater-manchester"]


def _challenge(answer: httpx.Response) -> str:
    assert answer.status_code == 401, answer.text
    challenge = answer.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer error="invalid_token", error_description="')
    description = challenge.split('error_description="', 1)[1]
    assert description.endswith('"')
    assert '"' not in description[:-1]
    return description[:-1]


async def test_forged_expired_foreign_and_unknown_key_tokens_are_refused_saying_why(
    production: None, provider: IdentityProvider
) -> None:
    good = keycloak_provider()
    impostor = rsa_key(kid=provider.rsa.kid)  # the provider's key id, someone else's key
    tokens = {
        "forged": provider.token(good, key=impostor),
        "expired": provider.token(good, lifetime=timedelta(minutes=-10)),
        "wrong audience": provider.token(good, aud="another-api"),
        "wrong issuer": provider.token(good, iss=f"{provider.base_url}/realms/other"),
        "unknown key": provider.token(good, key=rsa_key()),
        "development token": issue_token(
            principal_for(Role.PROVIDER, provider_id="acme-care"), DEVELOPMENT_SECRET
        ),
        "no role": provider.token({"provider_id": "acme-care"}),
        "two roles": provider.token(
            {"realm_access": {"roles": ["provider", "admin"]}, "provider_id": "acme-care"}
        ),
        "provider without provider_id": provider.token({"realm_access": {"roles": ["provider"]}}),
        "no subject": jwt.encode(
            {"iss": provider.issuer, "aud": AUDIENCE, "exp": 4102444800, **good},
            provider.rsa.private,
            algorithm="RS256",
            headers={"kid": provider.rsa.kid},
        ),
        "unsigned": jwt.encode({**good, "iss": provider.issuer, "aud": AUDIENCE}, "", "none"),
        "not a token": "not.a.token",
    }
    async with serving(_app(IdentitySettings(**provider.settings()))) as client:
        answers = {
            name: await client.get("/v1/whoami", headers=bearer(token))
            for name, token in tokens.items()
        }
        no_token = await client.get("/v1/whoami")
    why = {name: _challenge(answer) for name, answer in answers.items()}
    assert why["forged"] == "the token is not valid: Signature verification failed"
    assert why["expired"] == "the token has expired"
    assert why["wrong audience"] == "the token is not for this audience"
    assert why["wrong issuer"] == "the token is not from the configured issuer"
    assert why["unknown key"].startswith("the token is signed with a key the identity provider")
    assert why["development token"] == "the token is signed with 'HS256', not one of RS256, ES256"
    assert (
        why["no role"] == "the token's realm_access.roles claim must be a role or a list of roles"
    )
    assert (
        why["two roles"] == "the token's realm_access.roles claim has more than one NearHome role"
    )
    assert (
        why["provider without provider_id"] == "a provider token must carry the provider_id claim"
    )
    assert "sub" in why["no subject"]
    assert why["unsigned"] == "the token is signed with 'none', not one of RS256, ES256"
    assert why["not a token"].startswith("the token is not valid")
    for name, answer in answers.items():
        # The body says the same; only the header's quoted-string has no double quotes.
        assert answer.json()["detail"].replace('"', "'") == why[name]
    assert no_token.status_code == 401
    assert no_token.headers["WWW-Authenticate"] == "Bearer"


async def test_keys_are_cached_and_a_rotated_key_is_picked_up_without_a_restart(
    production: None, provider: IdentityProvider
) -> None:
    settings = IdentitySettings(**provider.settings(oidc_jwks_refresh_cooldown_seconds=0))
    async with serving(_app(settings)) as client:
        for _ in range(5):
            answer = await client.get(
                "/v1/whoami", headers=bearer(provider.token(keycloak_provider()))
            )
            assert answer.status_code == 200, answer.text
        assert (provider.discovery_fetches, provider.jwks_fetches) == (1, 1)

        rotated = provider.rotate()
        answer = await client.get(
            "/v1/whoami", headers=bearer(provider.token(keycloak_provider("new-care"), key=rotated))
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["provider_id"] == "new-care"
        assert provider.jwks_fetches == 2
        # The old key is still published, and still trusted; nothing more is fetched.
        answer = await client.get(
            "/v1/whoami", headers=bearer(provider.token(keycloak_provider(), key=provider.ec))
        )
        assert answer.status_code == 200, answer.text
        assert provider.jwks_fetches == 2


async def test_made_up_key_ids_do_not_make_the_service_fetch_the_keys_again_within_the_cooldown(
    production: None, provider: IdentityProvider
) -> None:
    async with serving(_app(IdentitySettings(**provider.settings()))) as client:
        for _ in range(5):
            answer = await client.get(
                "/v1/whoami",
                headers=bearer(provider.token(keycloak_provider(), kid=os.urandom(4).hex())),
            )
            assert answer.status_code == 401
    assert provider.jwks_fetches == 1


async def test_an_unreachable_provider_is_a_503_not_a_401(
    production: None, provider: IdentityProvider
) -> None:
    token = provider.token(keycloak_provider())
    settings = IdentitySettings(**provider.settings(oidc_jwks_url="http://127.0.0.1:9/jwks"))
    async with serving(_app(settings)) as client:
        answer = await client.get("/v1/whoami", headers=bearer(token))
    assert answer.status_code == 503, answer.text
    assert answer.json()["detail"] == "the identity provider's keys could not be fetched"


async def test_while_the_provider_is_down_the_last_keys_fetched_are_used(
    production: None, provider: IdentityProvider
) -> None:
    settings = IdentitySettings(**provider.settings(oidc_jwks_cache_seconds=0.2))
    token = provider.token(keycloak_provider())
    async with serving(_app(settings)) as client:
        assert (await client.get("/v1/whoami", headers=bearer(token))).status_code == 200
        provider.available = False
        await asyncio.sleep(0.3)  # the cached set has expired: it is fetched again, and fails
        still = await client.get("/v1/whoami", headers=bearer(token))
        rotated = provider.rotate()
        unknown = await client.get(
            "/v1/whoami", headers=bearer(provider.token(keycloak_provider(), key=rotated))
        )
        provider.available = True
        await asyncio.sleep(0.3)
        back = await client.get(
            "/v1/whoami", headers=bearer(provider.token(keycloak_provider(), key=rotated))
        )
    assert still.status_code == 200, still.text
    assert unknown.status_code == 401, unknown.text
    assert back.status_code == 200, back.text


async def test_the_rate_limit_counts_a_providers_tokens_per_organisation(
    production: None, provider: IdentityProvider
) -> None:
    async with serving(_app(IdentitySettings(**provider.settings()), per_minute=2)) as client:
        statuses = [
            (
                await client.get("/v1/whoami", headers=bearer(provider.token(keycloak_provider())))
            ).status_code
            for _ in range(3)
        ]
        other = await client.get(
            "/v1/whoami", headers=bearer(provider.token(keycloak_provider("other-care")))
        )
    assert statuses == [200, 200, 429]
    assert other.status_code == 200


async def test_entra_id_app_roles_and_extension_claims_map_through_the_settings(
    production: None, provider: IdentityProvider
) -> None:
    settings = IdentitySettings(
        **provider.settings(
            oidc_role_claim="roles",
            oidc_role_values="provider=NearHome.Provider, authority=NearHome.Authority",
            oidc_authority_code_claim="extension_authorityCode",
            oidc_algorithms="RS256",
        )
    )
    async with serving(_app(settings)) as client:
        council = await client.get(
            "/v1/whoami",
            headers=bearer(
                provider.token({"roles": ["NearHome.Authority"], "extension_authorityCode": SEFTON})
            ),
        )
        es256 = await client.get(
            "/v1/whoami",
            headers=bearer(
                provider.token(
                    {"roles": ["NearHome.Authority"], "extension_authorityCode": SEFTON},
                    key=provider.ec,
                )
            ),
        )
    assert council.status_code == 200, council.text
    assert (council.json()["role"], council.json()["authority_code"]) == ("authority", SEFTON)
    assert _challenge(es256) == "the token is signed with 'ES256', not one of RS256"


def test_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEARHOME_OIDC_ISSUER", "https://login.example/tenant/v2.0")
    monkeypatch.setenv("NEARHOME_OIDC_AUDIENCE", "api://nearhome")
    monkeypatch.setenv("NEARHOME_OIDC_ROLE_CLAIM", "roles")
    monkeypatch.setenv("NEARHOME_OIDC_ROLE_VALUES", "admin=NearHome.Operator")
    monkeypatch.setenv("NEARHOME_OIDC_PROVIDER_ID_CLAIM", "extension_providerId")
    settings = ServiceSettings(port=0)
    config = settings.oidc_config()
    assert config is not None
    assert (config.issuer, config.audience, config.jwks_url) == (
        "https://login.example/tenant/v2.0",
        "api://nearhome",
        None,
    )
    assert config.role_names["NearHome.Operator"] is Role.ADMIN
    assert config.role_names["provider"] is Role.PROVIDER
    assert config.provider_id_claim == "extension_providerId"
    monkeypatch.delenv("NEARHOME_OIDC_AUDIENCE")
    with pytest.raises(ValidationError, match="NEARHOME_OIDC_AUDIENCE is required"):
        ServiceSettings(port=0)
    monkeypatch.setenv("NEARHOME_OIDC_AUDIENCE", "api://nearhome")
    monkeypatch.setenv("NEARHOME_OIDC_ROLE_VALUES", "superuser=Boss")
    with pytest.raises(ValidationError, match="NEARHOME_OIDC_ROLE_VALUES"):
        ServiceSettings(port=0)
    monkeypatch.setenv("NEARHOME_OIDC_ROLE_VALUES", "")
    monkeypatch.setenv("NEARHOME_OIDC_ALGORITHMS", "HS256")
    with pytest.raises(ValidationError, match="RS256"):
        ServiceSettings(port=0)


def test_which_tokens_are_trusted_depends_on_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with_provider = IdentitySettings(
        oidc_issuer="https://id.example/realms/nearhome", oidc_audience="nearhome-api"
    )
    monkeypatch.delenv("NEARHOME_ENV", raising=False)
    with pytest.raises(IdentityNotConfiguredError, match="no identity provider is configured"):
        token_verifier(IdentitySettings())
    with pytest.raises(IdentityNotConfiguredError):
        token_verifier(IdentitySettings(jwt_secret="a-production-secret-is-not-enough-either"))
    assert isinstance(token_verifier(with_provider), OidcTokens)
    monkeypatch.setenv("NEARHOME_ENV", "development")
    assert isinstance(token_verifier(IdentitySettings()), LocalTokens)
    assert isinstance(token_verifier(with_provider), DevelopmentTokens)


async def test_in_development_both_the_providers_and_development_tokens_are_trusted(
    monkeypatch: pytest.MonkeyPatch, provider: IdentityProvider
) -> None:
    monkeypatch.setenv("NEARHOME_ENV", "development")
    development = issue_token(principal_for(Role.AUTHORITY, authority_code=SEFTON), "s" * 32)
    async with serving(
        _app(IdentitySettings(**provider.settings(), jwt_secret="s" * 32))
    ) as client:
        local = await client.get("/v1/whoami", headers=bearer(development))
        oidc = await client.get("/v1/whoami", headers=bearer(provider.token(keycloak_provider())))
        forged = await client.get(
            "/v1/whoami", headers=bearer(issue_token(principal_for(Role.ADMIN), "x" * 32))
        )
    assert (local.status_code, oidc.status_code) == (200, 200)
    assert (local.json()["role"], oidc.json()["role"]) == ("authority", "provider")
    assert _challenge(forged) == "the token is not valid: Signature verification failed"


def _nearhome(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if name != "NEARHOME_ENV" and not name.startswith("NEARHOME_OIDC_")
    }
    return subprocess.run(
        [str(Path(sys.executable).parent / "nearhome"), *args],
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_service_started_in_production_without_an_identity_provider_exits_saying_so() -> None:
    served = _nearhome("serve", "ledger", env={"LEDGER_PORT": "0"})
    assert served.returncode == 2, served.stderr
    [line] = [json.loads(line) for line in served.stderr.splitlines() if line.startswith("{")]
    assert line["level"] == "CRITICAL"
    assert line["message"].startswith(
        "the ledger service cannot start: no identity provider is configured: set "
        "NEARHOME_OIDC_ISSUER and NEARHOME_OIDC_AUDIENCE"
    )
    run = _nearhome("run", "--no-infra", env={})
    assert run.returncode == 2, run.stderr
    assert "error: the services cannot start: no identity provider is configured" in run.stderr
    demo = _nearhome(
        "run",
        "--no-infra",
        "--demo",
        env={"NEARHOME_OIDC_ISSUER": "https://id.example", "NEARHOME_OIDC_AUDIENCE": "api"},
    )
    assert demo.returncode == 2, demo.stderr
    assert "`nearhome run --demo` works only with NEARHOME_ENV=development" in demo.stderr


def test_development_tokens_are_issued_only_in_development() -> None:
    refused = _nearhome("token", "issue", "--role", "admin", env={})
    assert refused.returncode == 2
    assert "`nearhome token issue` works only with NEARHOME_ENV=development" in refused.stderr
    assert refused.stdout == ""
    issued = _nearhome("token", "issue", "--role", "admin", env={"NEARHOME_ENV": "development"})
    assert issued.returncode == 0, issued.stderr
    claims = json.loads(base64.urlsafe_b64decode(issued.stdout.split(".")[1] + "=="))
    assert claims["role"] == "admin"


def test_a_key_of_the_wrong_type_for_its_algorithm_is_not_trusted(
    production: None, provider: IdentityProvider
) -> None:
    # An ES256 header on a token signed by the RSA key's id: the RSA key cannot verify it.
    token = provider.token(keycloak_provider(), key=ec_key(), kid=provider.rsa.kid)
    verifier = token_verifier(IdentitySettings(**provider.settings()))
    with pytest.raises(
        UnauthenticatedError, match="the token's algorithm ES256 does not fit its key"
    ):
        verifier.verify(token)
