"""The authority service's composition root: settings, the app, and its lifespan.

Nothing is built at import: `create_app(settings)` builds the app and everything it uses (nothing
connects yet); its lifespan runs the migrations, then the consumer of `provider.events` (its view
of settings, vacancies, beds occupied and the providers' answers), the outbox relay and the
widening scheduler.
"""

from pathlib import Path

from fastapi import FastAPI

from contracts.topics import REFERRAL_EVENTS
from services.authority.audit import add_audit_trail
from services.authority.domain import WideningPolicy
from services.authority.handlers import (
    AUDITED_ROUTES,
    CONSUMED_TOPICS,
    answer_another_councils_referral,
    answer_refused_request,
    router,
)
from services.authority.projection import ProviderView
from services.authority.settings import Settings
from services.authority.store import SCHEMA
from services.authority.tables import METADATA
from services.authority.use_cases import (
    PlacementRequests,
    ReferralOfAnotherCouncilError,
    Referrals,
    RequestRefusedError,
)
from services.platform.clock import Clock, utc_now
from services.platform.composition import compose_writing_service
from services.platform.http import allow_browser_origins
from services.platform.limits import add_input_limits
from services.platform.pages import Page, PageSettings, add_page

__all__ = ["Settings", "create_app"]

# The workspace page this service serves at `/` (see services/platform/pages.py).
WORKSPACE = Page(
    Path(__file__).with_name("static"),
    name="home-finder",
    title="Home finder",
    audience="A council (authority)",
    reads=("alerting",),
)
CLIENT_ID = "nearhome-authority"
# The outbox relay's advisory lock: unique per service, so only one relay publishes this outbox.
RELAY_LOCK_ID = 8002

DESCRIPTION = """\
Councils' referrals for children who need a home. Each referral holds only what matching needs
(the council's own opaque reference, age, sex, needs, placement types, home postcode district…):
never a name, date of birth, address or case notes. Unknown fields such as `child_name` are a 422.

* **Who**: authority (council) tokens only; a council sees and changes only its own referrals.
  Other roles get 403; a missing, bad or expired token 401.
* **Another council's referral answers 404**, exactly as an unknown one does: a referral's
  existence is private to its council (the audit log records the attempt as `denied`).
* **Events**: every change is one event on `referral.events`, keyed by `referral_id`:
  `ReferralOpened`, `ReferralUpdated` (the whole new state; a change that changes nothing publishes
  nothing), `ReferralWidened`, `ReferralClosed`, and for placement requests `PlacementRequested`,
  `OfferAccepted`, `RequestWithdrawn`.
* **Placement requests**: a council sends one of its open referrals to one open vacancy that fits
  it by every matching rule (otherwise 409 naming each rule that fails); the provider sees only
  the child's pseudonymous profile, never the reference. The providers' offers, declines, expiries
  and withdrawals arrive on `provider.events`; a council accepts an offer while it stands, or
  withdraws a request. A placement started from an accepted offer closes the referral as placed
  and withdraws its other requests.
* **Sibling groups**: a `sibling_group_size` above 1 adds the `sibling_group` need; the
  `sibling_group` need with a size of 1 is a 422.
* **Widening**: an open local referral widens to its region once, `widen_after_hours` after it was
  opened (default 4 hours for an emergency, 5 days for a planned referral), emitting
  `ReferralWidened`. If its council later sets it back to local, it stays local.
* **Idempotency**: every POST honours the `Idempotency-Key` header; the same key with a different
  request is a 422.
* **Audit**: every read and write, refused ones included, leaves a row in an append-only log.
"""


def create_app(
    settings: Settings, clock: Clock = utc_now, pages: PageSettings | None = None
) -> FastAPI:
    parts = compose_writing_service(
        settings, METADATA, publishes=REFERRAL_EVENTS, relay_lock_id=RELAY_LOCK_ID
    )
    policy = WideningPolicy(
        emergency=settings.widen_after_emergency, planned=settings.widen_after_planned
    )
    referrals = Referrals(
        parts.writer, policy, clock=clock, widen_batch_size=settings.widen_batch_size
    )
    # The view of the provider side; after a batch the relay wakes: a placement may have closed
    # a referral, whose events are in the outbox.
    parts.consume(ProviderView(clock), CONSUMED_TOPICS, SCHEMA)
    lifespan = parts.lifespan(
        (settings.widen_check_interval, referrals.widen_due_referrals, "widen referrals")
    )

    app = FastAPI(
        title="NearHome authority service",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    parts.add_token_check(app)
    app.state.referrals = referrals
    app.state.placement_requests = PlacementRequests(parts.writer, clock=clock)
    parts.add_asyncapi_route(app)
    # Inside the platform's middleware, which assigns the request id the audit rows carry.
    add_audit_trail(app, parts.sessions, AUDITED_ROUTES, clock)
    parts.add_operational_routes(app)
    allow_browser_origins(app, settings.browser_origins)
    app.add_exception_handler(ReferralOfAnotherCouncilError, answer_another_councils_referral)
    app.add_exception_handler(RequestRefusedError, answer_refused_request)
    app.include_router(router)
    add_page(app, WORKSPACE, pages or PageSettings())
    add_input_limits(app, settings)
    return app
