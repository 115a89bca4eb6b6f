"""What the fault suite's providers and councils do: tens of writes over the public HTTP APIs, in
two phases so that a fault can strike between or during them.

Phase one registers two homes in West Lancashire (L40, 12 miles from the children's homes in
Sefton, L20), opens three Sefton referrals and posts two one-bed vacancies per home: each vacancy
fits each referral, so alerting raises an alert per pair. Phase two confirms every vacancy,
withdraws one per home, starts a placement in each home and closes a referral: alerts are
retracted. No pair can fit again, so none may be alerted twice.

Every write carries an `Idempotency-Key` and is retried with the same key while the service
answers 5xx or cannot be reached (the database restarting, say), as a real client would: a retry
of a write that did commit returns the first answer and writes nothing new.
"""

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import httpx
from builders import CHILD, REFERRAL_DETAILS, SETTING_DETAILS

from faults.fault_exchange import SECRET, Exchange
from services.platform.auth import Principal, Role, issue_token, principal_for

SEFTON = "E08000014"
NEAR_SEFTON = "L40"
HOMES = 2
REFERRALS = 3
VACANCIES_PER_HOME = 2
RETRY_FOR_S = 90.0


def _bearer(principal: Principal) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(principal, SECRET)}"}


@dataclass
class Workload:
    """One provider and one council writing to the exchange; what they were answered."""

    exchange: Exchange
    provider_id: str = field(default_factory=lambda: f"faults-{uuid4().hex[:8]}")
    settings: list[str] = field(default_factory=list)
    referrals: list[str] = field(default_factory=list)
    vacancies: dict[str, list[str]] = field(default_factory=dict)
    retried: int = 0

    async def _write(self, service: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` until the service answers 2xx (retrying 5xx and unreachable, same key)."""
        headers = (
            _bearer(principal_for(Role.PROVIDER, provider_id=self.provider_id))
            if service == "provider"
            else _bearer(principal_for(Role.AUTHORITY, authority_code=SEFTON))
        ) | {"Idempotency-Key": uuid4().hex}
        deadline = time.monotonic() + RETRY_FOR_S
        async with httpx.AsyncClient(base_url=self.exchange[service].url, timeout=15) as client:
            while True:
                try:
                    answer = await client.post(path, json=body, headers=headers)
                except httpx.TransportError:
                    answer = None
                if answer is not None and answer.status_code < 500:
                    assert answer.is_success, f"POST {path}: {answer.status_code} {answer.text}"
                    result: dict[str, Any] = answer.json()
                    return result
                assert time.monotonic() < deadline, f"POST {path} kept failing: {answer}"
                self.retried += 1
                await asyncio.sleep(0.3)

    async def phase_one(self) -> None:
        for n in range(HOMES):
            setting = await self._write(
                "provider",
                "/v1/settings",
                {
                    **SETTING_DETAILS,
                    "postcode_district": NEAR_SEFTON,
                    "name": f"Fault House {n}",
                    "ofsted_urn": f"SC9{n:05d}",
                    "referrals_email": "referrals@faults.example",
                    "referrals_phone": "01695 000 000",
                    "description": "A home registered by the fault suite.",
                },
            )
            self.settings.append(setting["setting_id"])
        for _ in range(REFERRALS):
            body = {**REFERRAL_DETAILS, "reference": f"FLT-{uuid4().hex[:10]}"}
            self.referrals.append(
                (await self._write("authority", "/v1/referrals", body))["referral_id"]
            )
        for setting_id in self.settings:
            for _ in range(VACANCIES_PER_HOME):
                body = {"setting_id": setting_id, "beds": 1, "available_from": CHILD["needed_by"]}
                vacancy = await self._write("provider", "/v1/vacancies", body)
                self.vacancies.setdefault(setting_id, []).append(vacancy["vacancy_id"])

    async def phase_two(self) -> None:
        for setting_id, vacancy_ids in self.vacancies.items():
            for vacancy_id in vacancy_ids:
                await self._write("provider", f"/v1/vacancies/{vacancy_id}/confirm", {})
            await self._write(
                "provider",
                f"/v1/vacancies/{vacancy_ids[0]}/withdraw",
                {"reason": "filled_elsewhere"},
            )
            await self._write(
                "provider",
                "/v1/placements",
                {
                    "setting_id": setting_id,
                    "placing_authority_code": SEFTON,
                    "start_date": "2026-11-24",
                    "beds": 1,
                },
            )
        await self._write(
            "authority",
            f"/v1/referrals/{self.referrals[0]}/close",
            {"outcome": "no_longer_needed"},
        )

    async def run(self) -> None:
        await self.phase_one()
        await self.phase_two()

    @property
    def writes(self) -> int:
        """Writes each of which publishes one event."""
        vacancies = HOMES * VACANCIES_PER_HOME
        return HOMES + REFERRALS + vacancies + vacancies + HOMES + HOMES + 1
