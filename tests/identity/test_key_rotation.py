"""A running service follows Keycloak's key rotation without a restart: tokens signed with a new
key are trusted as soon as they arrive, and tokens signed with a withdrawn key are refused once
the service's cached key set expires (here 2 s, NEARHOME_OIDC_JWKS_CACHE_SECONDS)."""

import asyncio
import time
from typing import Any

import httpx
import jwt
import pytest

from identity.conftest import REALM, USERS, Keycloak, Services

pytestmark = [pytest.mark.identity, pytest.mark.kafka, pytest.mark.postgres]

KEY_PROVIDER = "org.keycloak.keys.KeyProvider"
WITHDRAWAL_TIMEOUT_S = 30.0


def _kid(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


def _signing_keys(admin: httpx.Client) -> list[dict[str, Any]]:
    """The realm's active RS256 signing keys, highest priority first (the one in use first)."""
    answer = admin.get(f"/{REALM}/keys")
    answer.raise_for_status()
    keys = [
        key
        for key in answer.json()["keys"]
        if key.get("algorithm") == "RS256" and key.get("use") == "SIG" and key["status"] == "ACTIVE"
    ]
    return sorted(keys, key=lambda key: -int(key["providerPriority"]))


async def test_a_rotated_key_is_trusted_at_once_and_a_withdrawn_one_refused_without_a_restart(
    services: Services, keycloak: Keycloak
) -> None:
    sefton = USERS["sefton"]
    before = keycloak.token(sefton)
    with keycloak.admin() as admin:
        old = _signing_keys(admin)[0]
        assert _kid(before) == old["kid"]
        realm_id = admin.get(f"/{REALM}").json()["id"]
        added = admin.post(
            f"/{REALM}/components",
            json={
                "name": "rotated-rsa",
                "providerId": "rsa-generated",
                "providerType": KEY_PROVIDER,
                "parentId": realm_id,
                "config": {
                    "priority": [str(int(old["providerPriority"]) + 100)],
                    "enabled": ["true"],
                    "active": ["true"],
                    "algorithm": ["RS256"],
                    "keySize": ["2048"],
                },
            },
        )
        assert added.status_code == 201, added.text
        new = _signing_keys(admin)[0]
    assert new["kid"] != old["kid"]
    after = keycloak.token(sefton)
    assert _kid(after) == new["kid"]

    async with httpx.AsyncClient(base_url=services.authority.url, trust_env=False) as client:

        async def status(token: str) -> httpx.Response:
            return await client.get("/v1/referrals", headers={"Authorization": f"Bearer {token}"})

        # The service has never seen the new key id: it fetches the key set again at once.
        assert (await status(after)).status_code == 200
        # The old key is still published, so its tokens are still good.
        assert (await status(before)).status_code == 200

        with keycloak.admin() as admin:
            removed = admin.delete(f"/{REALM}/components/{old['providerId']}")
            assert removed.status_code == 204, removed.text
            assert old["kid"] not in {key["kid"] for key in _signing_keys(admin)}

        started = time.monotonic()
        while (answer := await status(before)).status_code == 200:
            assert time.monotonic() - started < WITHDRAWAL_TIMEOUT_S, "the old key is still trusted"
            await asyncio.sleep(0.25)
        refused_after_s = time.monotonic() - started
        assert answer.status_code == 401, answer.text
        challenge = answer.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer error="invalid_token"'), challenge
        assert "a key the identity provider does not publish" in challenge, challenge
        # Refused once the 2 s cache expired (with some slack for a busy machine).
        assert refused_after_s < 15, refused_after_s
        assert (await status(after)).status_code == 200
        assert (await status(keycloak.token(sefton))).status_code == 200
