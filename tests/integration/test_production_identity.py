"""A service run as a deployment runs it (`nearhome serve`, configured through its environment, in
production) trusts the identity provider's tokens and nothing else: the role and scope come from
the claims, and the key set is found through the issuer's openid-configuration."""

import os
from pathlib import Path

import httpx
import pytest
from authority_fixtures import referral_body
from identity_provider import IdentityProvider, rsa_key
from production_services import production_process

from services.platform.auth import DEVELOPMENT_SECRET, Role, issue_token, principal_for
from services.platform.migrations import upgrade_to_head_async

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

SEFTON = "E08000014"
WIRRAL = "E08000015"


async def test_a_production_service_takes_the_role_and_scope_from_the_providers_tokens(
    fresh_database_url: str, topic_prefix: str, identity_provider: IdentityProvider, tmp_path: Path
) -> None:
    authority = production_process(
        "authority", fresh_database_url, topic_prefix, tmp_path / "authority.log", identity_provider
    )
    assert "NEARHOME_ENV" not in authority.environment
    assert os.environ["NEARHOME_ENV"] == "development"  # the suite's; not the child's
    # In production the migrations are a step of their own (`nearhome migrate`).
    await upgrade_to_head_async("authority", fresh_database_url)
    authority.start()
    try:
        await authority.until_answering("/ready")

        def council(code: str) -> dict[str, str]:
            token = identity_provider.token_for(principal_for(Role.AUTHORITY, authority_code=code))
            return {"Authorization": f"Bearer {token}"}

        async with httpx.AsyncClient(base_url=authority.url, trust_env=False) as client:
            opened = await client.post(
                "/v1/referrals", json=referral_body(), headers=council(SEFTON)
            )
            assert opened.status_code == 201, opened.text
            referral = f"/v1/referrals/{opened.json()['referral_id']}"
            own = await client.get(referral, headers=council(SEFTON))
            other = await client.get(referral, headers=council(WIRRAL))
            development = await client.get(
                referral,
                headers={
                    "Authorization": "Bearer "
                    + issue_token(
                        principal_for(Role.AUTHORITY, authority_code=SEFTON), DEVELOPMENT_SECRET
                    )
                },
            )
            forged = await client.get(
                referral,
                headers={
                    "Authorization": "Bearer "
                    + identity_provider.token(
                        {"realm_access": {"roles": ["authority"]}, "authority_code": SEFTON},
                        key=rsa_key(kid=identity_provider.rsa.kid),
                    )
                },
            )
    finally:
        authority.stop()
    assert own.status_code == 200, own.text
    assert other.status_code == 404, other.text  # another council's referral, as if unknown
    for refused in (development, forged):
        assert refused.status_code == 401, refused.text
        assert refused.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert identity_provider.discovery_fetches == 1
    assert identity_provider.jwks_fetches == 1
