"""NearHome's services in production trust a real Keycloak's tokens for the realm of
deploy/keycloak/nearhome-realm.json, with the role and scope its users are given there, and refuse
(401, saying why) every token that is not exactly that realm's, for NearHome, and current."""

import asyncio
import base64
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from builders import SETTING_DETAILS
from council_referrals import referral_body
from cryptography.hazmat.primitives.asymmetric import rsa

from identity.conftest import (
    ELSEWHERE,
    LANCASHIRE,
    NORTH_WEST,
    OTHER_AUDIENCE_CLIENT,
    PROVIDER_ID,
    SEFTON,
    SHORT_LIFESPAN_S,
    SHORT_LIVED_CLIENT,
    USERS,
    Keycloak,
    Services,
)

pytestmark = [pytest.mark.identity, pytest.mark.kafka, pytest.mark.postgres]

LEEDS = "E08000035"  # a council outside the North West


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def setting_body() -> dict[str, Any]:
    return {
        "name": "Ashdale House",
        "ofsted_urn": "SC123456",
        "referrals_email": "referrals@provider.example",
        "referrals_phone": "01539 000 123",
        "description": "A four-bed home on the edge of Kendal, close to schools and the fells.",
        **SETTING_DETAILS,
    }


def refused(answer: httpx.Response, why: str) -> None:
    """A 401 whose WWW-Authenticate says the token is invalid, and `why`."""
    assert answer.status_code == 401, answer.text
    challenge = answer.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer error="invalid_token"'), challenge
    assert why in challenge, challenge


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def test_a_council_token_reads_and_writes_only_its_own_councils_referrals(
    services: Services, keycloak: Keycloak
) -> None:
    sefton = bearer(keycloak.token(USERS["sefton"]))
    lancashire = bearer(keycloak.token(USERS["lancashire"]))
    assert claims_of(sefton["Authorization"][7:])["authority_code"] == SEFTON
    async with httpx.AsyncClient(base_url=services.authority.url, trust_env=False) as client:
        opened = await client.post("/v1/referrals", json=referral_body(), headers=sefton)
        assert opened.status_code == 201, opened.text
        assert opened.json()["authority_code"] == SEFTON  # from the token, not the body
        referral = f"/v1/referrals/{opened.json()['referral_id']}"
        own = await client.get(referral, headers=sefton)
        listed = await client.get("/v1/referrals", headers=sefton)
        other = await client.get(referral, headers=lancashire)
        others_list = await client.get("/v1/referrals", headers=lancashire)
        others_own = await client.post("/v1/referrals", json=referral_body(), headers=lancashire)
    assert own.status_code == 200, own.text
    assert opened.json()["referral_id"] in {item["referral_id"] for item in _items(listed)}
    assert other.status_code == 404, other.text  # another council's referral, as if unknown
    assert opened.json()["referral_id"] not in {item["referral_id"] for item in _items(others_list)}
    assert others_own.status_code == 201, others_own.text
    assert others_own.json()["authority_code"] == LANCASHIRE


def _items(answer: httpx.Response) -> list[dict[str, Any]]:
    assert answer.status_code == 200, answer.text
    body = answer.json()
    items: list[dict[str, Any]] = body["items"] if isinstance(body, dict) else body
    return items


async def test_a_provider_token_writes_as_its_provider_and_no_one_else_can(
    services: Services, keycloak: Keycloak
) -> None:
    provider = bearer(keycloak.token(USERS["provider"]))
    council = bearer(keycloak.token(USERS["sefton"]))
    async with httpx.AsyncClient(base_url=services.provider.url, trust_env=False) as client:
        registered = await client.post("/v1/settings", json=setting_body(), headers=provider)
        listed = await client.get("/v1/settings", headers=provider)
        by_a_council = await client.post("/v1/settings", json=setting_body(), headers=council)
    assert registered.status_code == 201, registered.text
    assert registered.json()["provider_id"] == PROVIDER_ID
    assert registered.json()["setting_id"] in {item["setting_id"] for item in _items(listed)}
    assert by_a_council.status_code == 403, by_a_council.text


async def test_a_collaborative_token_reads_capacity_only_for_its_footprints(
    services: Services, keycloak: Keycloak
) -> None:
    analyst = bearer(keycloak.token(USERS["analyst"]))
    admin = bearer(keycloak.token(USERS["admin"]))
    assert claims_of(analyst["Authorization"][7:])["footprints"] == [NORTH_WEST, SEFTON]
    async with httpx.AsyncClient(base_url=services.ledger.url, trust_env=False) as client:
        region = await client.get(f"/v1/capacity/{NORTH_WEST}", headers=analyst)
        member = await client.get(f"/v1/capacity/{SEFTON}", headers=analyst)
        outside = await client.get(f"/v1/capacity/{LEEDS}", headers=analyst)
        by_admin = await client.get(f"/v1/capacity/{LEEDS}", headers=admin)
    assert region.status_code == 200, region.text
    assert member.status_code == 200, member.text
    assert outside.status_code == 403, outside.text
    assert by_admin.status_code == 200, by_admin.text


def _with_altered_signature(token: str) -> str:
    header, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{header}.{payload}.{base64.urlsafe_b64encode(bytes(raw)).decode().rstrip('=')}"


async def test_forged_tokens_are_refused(services: Services, keycloak: Keycloak) -> None:
    genuine = keycloak.token(USERS["sefton"])
    kid = jwt.get_unverified_header(genuine)["kid"]
    # The same claims under Keycloak's key id, signed with a key of our own.
    own_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    resigned = jwt.encode(claims_of(genuine), own_key, algorithm="RS256", headers={"kid": kid})
    # A council's token made to say another council, its signature left as it was.
    header, _, signature = genuine.split(".")
    claims = claims_of(genuine) | {"authority_code": LANCASHIRE}
    edited = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    async with httpx.AsyncClient(base_url=services.authority.url, trust_env=False) as client:
        accepted = await client.get("/v1/referrals", headers=bearer(genuine))
        altered = await client.get(
            "/v1/referrals", headers=bearer(_with_altered_signature(genuine))
        )
        own = await client.get("/v1/referrals", headers=bearer(resigned))
        claimed = await client.get(
            "/v1/referrals", headers=bearer(f"{header}.{edited}.{signature}")
        )
    assert accepted.status_code == 200, accepted.text
    for answer in (altered, own, claimed):
        refused(answer, "Signature verification failed")


async def test_an_expired_token_is_refused(services: Services, keycloak: Keycloak) -> None:
    token = keycloak.token(USERS["sefton"], client=SHORT_LIVED_CLIENT)
    claims = claims_of(token)
    assert claims["exp"] - claims["iat"] == SHORT_LIFESPAN_S
    async with httpx.AsyncClient(base_url=services.authority.url, trust_env=False) as client:
        fresh = await client.get("/v1/referrals", headers=bearer(token))
        # The service allows no clock skew here (NEARHOME_OIDC_LEEWAY_SECONDS=0).
        await asyncio.sleep(max(0.0, claims["exp"] - time.time()) + 1.0)
        expired = await client.get("/v1/referrals", headers=bearer(token))
    assert fresh.status_code == 200, fresh.text
    refused(expired, "the token has expired")


async def test_a_token_for_another_audience_is_refused(
    services: Services, keycloak: Keycloak
) -> None:
    token = keycloak.token(USERS["sefton"], client=OTHER_AUDIENCE_CLIENT)
    assert claims_of(token)["aud"] == "another-api"
    async with httpx.AsyncClient(base_url=services.authority.url, trust_env=False) as client:
        answer = await client.get("/v1/referrals", headers=bearer(token))
    refused(answer, "the token is not for this audience")


async def test_a_token_of_another_realm_is_refused(services: Services, keycloak: Keycloak) -> None:
    token = keycloak.token(USERS["sefton"], realm=ELSEWHERE)
    claims = claims_of(token)
    # Shaped as the nearhome realm's tokens are: only its issuer and signing key differ.
    assert claims["iss"] == keycloak.issuer(ELSEWHERE)
    assert claims["authority_code"] == SEFTON
    assert "nearhome-api" in claims["aud"]
    async with httpx.AsyncClient(base_url=services.authority.url, trust_env=False) as client:
        answer = await client.get("/v1/referrals", headers=bearer(token))
    refused(answer, "a key the identity provider does not publish")


async def test_a_service_told_another_issuer_refuses_the_realms_tokens(
    services: Services, keycloak: Keycloak
) -> None:
    # That service takes its keys from the nearhome realm, so the signature checks out: only the
    # issuer is not the one it was told.
    token = keycloak.token(USERS["sefton"])
    async with httpx.AsyncClient(base_url=services.other_issuer.url, trust_env=False) as client:
        answer = await client.get("/v1/referrals", headers=bearer(token))
    refused(answer, "the token is not from the configured issuer")
