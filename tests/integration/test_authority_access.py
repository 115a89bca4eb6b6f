"""Each council sees only its own referrals, and every attempt, allowed or not, is audited."""

from datetime import timedelta
from uuid import UUID, uuid4

import pytest
from authority_fixtures import (
    SEFTON,
    WESTMORLAND_AND_FURNESS,
    RunningAuthority,
    bearer,
    council,
    provider,
    referral_body,
)
from kafka_probe import TopicProbe, for_aggregate
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from services.platform.auth import Principal, Role, issue_token, principal_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def _attempts(referral_id: str) -> list[tuple[str, str, dict[str, object] | None]]:
    """Every referral route: (method, path, body)."""
    return [
        ("GET", f"/v1/referrals/{referral_id}", None),
        ("PATCH", f"/v1/referrals/{referral_id}", {"age": 9}),
        ("POST", f"/v1/referrals/{referral_id}/close", {"outcome": "placed"}),
    ]


async def test_another_councils_referral_is_not_found_changes_nothing_and_is_audited_as_denied(
    authority: RunningAuthority, probe: TopicProbe
) -> None:
    sefton = await authority.open_referral(SEFTON)
    referral_id = sefton["referral_id"]
    unknown = await authority.client.get(
        f"/v1/referrals/{uuid4()}", headers=council(WESTMORLAND_AND_FURNESS)
    )

    answers = [
        await authority.client.request(
            method,
            path,
            json=body,
            headers={**council(WESTMORLAND_AND_FURNESS), "X-Request-ID": f"wf-{method}"},
        )
        for method, path, body in _attempts(referral_id)
    ]
    listed = await authority.client.get("/v1/referrals", headers=council(WESTMORLAND_AND_FURNESS))

    assert [answer.status_code for answer in answers] == [404, 404, 404]
    assert {answer.json()["detail"] for answer in answers} == {f"no referral {referral_id}"}
    assert unknown.json()["detail"].startswith("no referral "), "the same answer as an unknown id"
    assert listed.json() == []
    await probe.wait_for(for_aggregate(referral_id))
    await probe.settle()
    assert [a.event.event_type for a in probe.matching(for_aggregate(referral_id))] == [
        "ReferralOpened"
    ]
    still = await authority.client.get(f"/v1/referrals/{referral_id}", headers=council(SEFTON))
    assert still.json() == sefton
    denied = [
        row
        for row in await authority.audit_rows()
        if row["organisation"] == WESTMORLAND_AND_FURNESS
    ]
    assert [
        (row["action"], row["outcome"], row["status_code"], row["request_id"]) for row in denied
    ] == [
        ("read", "not_found", 404, denied[0]["request_id"]),
        ("read", "denied", 404, "wf-GET"),
        ("update", "denied", 404, "wf-PATCH"),
        ("close", "denied", 404, "wf-POST"),
        ("list", "allowed", 200, denied[4]["request_id"]),
    ]
    assert all(row["referral_id"] == UUID(referral_id) for row in denied[1:4])
    assert {row["actor"] for row in denied} == {WESTMORLAND_AND_FURNESS}


@pytest.mark.parametrize(
    "principal",
    [
        pytest.param(principal_for(Role.PROVIDER, provider_id="acme-care"), id="provider"),
        pytest.param(
            principal_for(Role.COLLABORATIVE, footprints=("placements-north-west",)),
            id="collaborative",
        ),
        pytest.param(principal_for(Role.ADMIN), id="admin"),
    ],
)
async def test_a_token_of_another_role_is_forbidden_and_audited(
    authority: RunningAuthority, probe: TopicProbe, principal: Principal
) -> None:
    referral_id = (await authority.open_referral())["referral_id"]
    headers = bearer(principal)

    answers = [
        await authority.client.post("/v1/referrals", json=referral_body(), headers=headers),
        await authority.client.get("/v1/referrals", headers=headers),
        *[
            await authority.client.request(method, path, json=body, headers=headers)
            for method, path, body in _attempts(referral_id)
        ],
    ]

    assert [answer.status_code for answer in answers] == [403] * 5
    await probe.wait_for(for_aggregate(referral_id))
    await probe.settle()
    assert len(probe.matching(lambda event: event.producer == "authority")) == 1
    assert await authority.count("referrals") == 1
    refused = (await authority.audit_rows())[1:]
    assert [(row["action"], row["outcome"], row["status_code"]) for row in refused] == [
        ("create", "denied", 403),
        ("list", "denied", 403),
        ("read", "denied", 403),
        ("update", "denied", 403),
        ("close", "denied", 403),
    ]
    assert {(row["actor"], row["role"], row["organisation"]) for row in refused} == {
        (principal.organisation_id, principal.role.value, None)
    }


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-token"),
        pytest.param({"Authorization": "Bearer not-a-jwt"}, id="garbage"),
        pytest.param(
            {
                "Authorization": "Bearer "
                + issue_token(
                    principal_for(Role.AUTHORITY, authority_code=SEFTON),
                    "a-different-secret-that-is-long-enough",
                )
            },
            id="wrong-secret",
        ),
        pytest.param(
            bearer(principal_for(Role.AUTHORITY, authority_code=SEFTON), ttl=timedelta(-1)),
            id="expired",
        ),
    ],
)
async def test_a_request_without_a_valid_token_is_unauthenticated_and_audited(
    authority: RunningAuthority, probe: TopicProbe, headers: dict[str, str]
) -> None:
    referral_id = (await authority.open_referral())["referral_id"]

    created = await authority.client.post(
        "/v1/referrals", json=referral_body(), headers={**headers, "X-Request-ID": "anon-1"}
    )
    read = await authority.client.get(f"/v1/referrals/{referral_id}", headers=headers)

    assert (created.status_code, read.status_code) == (401, 401)
    challenge = created.headers["WWW-Authenticate"]
    if headers:  # RFC 6750: the token sent is invalid, and the description says why
        why = created.json()["detail"].replace('"', "'")
        assert challenge == f'Bearer error="invalid_token", error_description="{why}"'
    else:
        assert challenge == "Bearer"
    await probe.wait_for(for_aggregate(referral_id))
    await probe.settle()
    assert len(probe.matching(lambda event: event.producer == "authority")) == 1
    refused = (await authority.audit_rows())[1:]
    assert [
        (row["actor"], row["role"], row["organisation"], row["action"], row["outcome"])
        for row in refused
    ] == [
        (None, None, None, "create", "unauthenticated"),
        (None, None, None, "read", "unauthenticated"),
    ]
    assert [row["status_code"] for row in refused] == [401, 401]
    assert refused[0]["request_id"] == "anon-1"
    assert refused[1]["referral_id"] == UUID(referral_id)


async def test_a_token_for_an_unknown_council_is_forbidden(authority: RunningAuthority) -> None:
    headers = bearer(
        Principal(organisation_id="E99999999", role=Role.AUTHORITY, authority_code="E99999999")
    )

    answer = await authority.client.post("/v1/referrals", json=referral_body(), headers=headers)

    assert answer.status_code == 403
    assert await authority.count("referrals") == 0


async def test_every_read_and_write_leaves_one_audit_row_with_its_request_id(
    authority: RunningAuthority,
) -> None:
    def tagged(request_id: str) -> dict[str, str]:
        return {**council(), "X-Request-ID": request_id}

    created = await authority.client.post(
        "/v1/referrals", json=referral_body(), headers=tagged("r-1")
    )
    referral_id = created.json()["referral_id"]
    path = f"/v1/referrals/{referral_id}"
    await authority.client.get(path, headers=tagged("r-2"))
    await authority.client.get("/v1/referrals", headers=tagged("r-3"))
    await authority.client.patch(path, json={"age": 14}, headers=tagged("r-4"))
    await authority.client.patch(path, json={"age": 14}, headers=tagged("r-5"))
    await authority.client.patch(path, json={"age": 21}, headers=tagged("r-6"))
    await authority.client.post(f"{path}/close", json={"outcome": "placed"}, headers=tagged("r-7"))
    await authority.client.post(f"{path}/close", json={"outcome": "placed"}, headers=tagged("r-8"))

    rows = await authority.audit_rows()
    assert [
        (row["request_id"], row["action"], row["outcome"], row["status_code"]) for row in rows
    ] == [
        ("r-1", "create", "allowed", 201),
        ("r-2", "read", "allowed", 200),
        ("r-3", "list", "allowed", 200),
        ("r-4", "update", "allowed", 200),
        ("r-5", "update", "allowed", 200),
        ("r-6", "update", "invalid", 422),
        ("r-7", "close", "allowed", 200),
        ("r-8", "close", "conflict", 409),
    ]
    assert {(row["actor"], row["role"], row["organisation"]) for row in rows} == {
        (SEFTON, "authority", SEFTON)
    }
    assert [row["referral_id"] for row in rows if row["action"] != "list"] == [
        UUID(referral_id)
    ] * 7
    assert all(row["at"].utcoffset() == timedelta(0) for row in rows)


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("UPDATE authority.audit_log SET outcome = 'allowed'", id="update"),
        pytest.param("DELETE FROM authority.audit_log", id="delete"),
        pytest.param("TRUNCATE authority.audit_log", id="truncate"),
    ],
)
async def test_audit_rows_cannot_be_changed_or_removed(
    authority: RunningAuthority, statement: str
) -> None:
    await authority.client.get("/v1/referrals", headers=provider())
    before = await authority.audit_rows()

    with pytest.raises(DBAPIError, match="audit_log is append-only"):
        async with authority.engine.begin() as connection:
            await connection.execute(text(statement))

    assert await authority.audit_rows() == before
    assert [row["outcome"] for row in before] == ["denied"]


async def test_nothing_a_caller_sends_outside_the_referral_fields_is_stored_anywhere(
    authority: RunningAuthority,
) -> None:
    marker = "Ada-Nobody-7f3a"
    await authority.client.post(
        "/v1/referrals", json=referral_body(child_name=marker), headers=council()
    )
    await authority.client.post(
        "/v1/referrals", json=referral_body(notes=f"{marker} lives nearby"), headers=council()
    )
    referral_id = (await authority.open_referral())["referral_id"]
    await authority.client.patch(
        f"/v1/referrals/{referral_id}", json={"date_of_birth": marker}, headers=council()
    )

    columns = await authority.rows(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'authority' "
        "AND table_name = 'audit_log' ORDER BY ordinal_position"
    )
    assert [c["column_name"] for c in columns] == [
        "id",
        "at",
        "actor",
        "role",
        "organisation",
        "action",
        "referral_id",
        "outcome",
        "status_code",
        "request_id",
    ]
    for table in ("referrals", "audit_log", "outbox", "idempotency_keys"):
        rows = await authority.rows(f"SELECT t::text AS row FROM authority.{table} t")
        assert not [row for row in rows if marker in row["row"]], table
    outbox = await authority.rows("SELECT convert_from(body, 'UTF8') AS body FROM authority.outbox")
    assert len(outbox) == 1
    assert marker not in outbox[0]["body"]


async def test_only_the_dashboards_origin_may_read_from_a_browser_and_only_with_get(
    authority: RunningAuthority,
) -> None:
    def preflight(origin: str, method: str) -> dict[str, str]:
        return {
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization",
        }

    dashboard = "http://127.0.0.1:8003"  # the default NEARHOME_BROWSER_ORIGINS
    allowed = await authority.client.options("/v1/referrals", headers=preflight(dashboard, "GET"))
    elsewhere = await authority.client.options(
        "/v1/referrals", headers=preflight("https://elsewhere.example", "GET")
    )
    writing = await authority.client.options("/v1/referrals", headers=preflight(dashboard, "POST"))
    read = await authority.client.get(
        "/v1/referrals", headers={"Origin": dashboard, **council(SEFTON)}
    )

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == dashboard
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert elsewhere.status_code == 400
    assert "access-control-allow-origin" not in elsewhere.headers
    assert writing.status_code == 400
    assert read.status_code == 200
    assert read.headers["access-control-allow-origin"] == dashboard
