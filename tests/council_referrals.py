"""A council's referral, opened through the authority's API as a signed-in home finder would: what
the pages' sign-in tests (tests/identity, tests/integration) expect to see once signed in."""

from typing import Any
from uuid import uuid4

import httpx
from builders import REFERRAL_DETAILS


def referral_body() -> dict[str, Any]:
    """A valid POST /v1/referrals body with a reference of its own."""
    return {"reference": f"SEF-{uuid4().hex[:10]}", **REFERRAL_DETAILS}


async def open_referral(authority_url: str, token: str) -> str:
    """A new referral opened at the authority on `authority_url` with the access `token`; its
    reference."""
    async with httpx.AsyncClient(base_url=authority_url, trust_env=False) as client:
        opened = await client.post(
            "/v1/referrals", json=referral_body(), headers={"Authorization": f"Bearer {token}"}
        )
    assert opened.status_code == 201, opened.text
    reference: str = opened.json()["reference"]
    return reference
