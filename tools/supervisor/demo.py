"""What `nearhome run` prints once everything answers: the URLs and, for a demo, tokens to try."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from contracts import geography
from services.platform.auth import Principal, Role, issue_token, principal_for
from tools.synthetic.figures import SEFTON, WESTMORLAND_AND_FURNESS
from tools.synthetic.population import in_house_provider

DEMO_COLLABORATIVE = "placements-north-west"
# One inland and one coastal council, both with their own figures in the synthetic world.
DEMO_COUNCILS = (WESTMORLAND_AND_FURNESS, SEFTON)
TOKEN_TTL = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class DemoToken:
    variable: str
    description: str
    principal: Principal


def url_table(urls: Mapping[str, str]) -> list[str]:
    width = max(len(name) for name in urls)
    return [f"  {name:<{width}}  {url:<24} {url}/docs  {url}/metrics" for name, url in urls.items()]


def demo_tokens() -> list[DemoToken]:
    """A collaborative, two councils (one inland, one on the coast) and a council's own homes."""
    tokens = [
        DemoToken(
            "COLLABORATIVE_TOKEN",
            f"collaborative: {geography.footprint(DEMO_COLLABORATIVE).name}",
            principal_for(Role.COLLABORATIVE, footprints=(DEMO_COLLABORATIVE,)),
        )
    ]
    for code in DEMO_COUNCILS:
        name = geography.council(code).name
        tokens.append(
            DemoToken(
                f"{name.split()[0].upper()}_TOKEN",
                f"authority: {name} ({code})",
                principal_for(Role.AUTHORITY, authority_code=code),
            )
        )
    provider_id = in_house_provider(DEMO_COUNCILS[-1])
    tokens.append(
        DemoToken(
            "PROVIDER_TOKEN",
            f"provider: {provider_id}",
            principal_for(Role.PROVIDER, provider_id=provider_id),
        )
    )
    return tokens


def demo_guide(urls: Mapping[str, str], secret: str, *, development_secret: bool) -> list[str]:
    """Tokens as shell `export` lines, a few requests to try, and the dashboard's address."""
    tokens = demo_tokens()
    signed = "the development secret" if development_secret else "NEARHOME_JWT_SECRET"
    lines = [f"Tokens (valid {TOKEN_TTL.total_seconds() / 3600:g} h, signed with {signed}):"]
    lines += [
        f"  export {token.variable}={issue_token(token.principal, secret, TOKEN_TTL)}"
        f"  # {token.description}"
        for token in tokens
    ]
    collaborative, westmorland, sefton, provider = (f"${token.variable}" for token in tokens)
    examples = {
        "ledger": [
            f"{urls.get('ledger')}/v1/capacity/{DEMO_COLLABORATIVE}",
            f"{urls.get('ledger')}/v1/capacity/{DEMO_COLLABORATIVE}/flows",
        ],
        "authority": [f"{urls.get('authority')}/v1/referrals"],
        "alerting": [f'"{urls.get("alerting")}/v1/alerts?status=open"'],
        "provider": [f"{urls.get('provider')}/v1/vacancies"],
    }
    token_for = {
        "ledger": collaborative,
        "authority": westmorland,
        "alerting": sefton,
        "provider": provider,
    }
    lines.append("Try:")
    for service, targets in examples.items():
        if service in urls:
            lines += [
                f'  curl -H "Authorization: Bearer {token_for[service]}" {target}'
                for target in targets
            ]
    if "alerting" in urls:
        lines.append(
            f'  curl -N -H "Authorization: Bearer {sefton}" {urls["alerting"]}/v1/alerts/stream'
        )
    if "ledger" in urls:
        lines += [
            f"Dashboard: {urls['ledger']}/",
            (
                f"  enter {collaborative} for the region, or {sefton} for Sefton's own "
                "referrals and their alerts too"
            ),
        ]
    return lines
