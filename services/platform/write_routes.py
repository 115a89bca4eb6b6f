"""The write routes' shared dependency: the `WriteRequest` of the caller's organisation, with its
`Idempotency-Key` and the request's fingerprint (see `writes.Writer`)."""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from services.platform.http import IdempotencyKey, fingerprint_of
from services.platform.writes import WriteRequest


def write_request_by(
    organisation_of: Callable[..., str],
) -> Callable[..., Awaitable[WriteRequest]]:
    """A dependency that answers the route's `WriteRequest`, written for the organisation that
    `organisation_of` (itself a dependency, usually of the caller's token) names."""

    async def write_request(
        request: Request,
        organisation_id: Annotated[str, Depends(organisation_of)],
        idempotency_key: IdempotencyKey = None,
    ) -> WriteRequest:
        return WriteRequest(
            organisation_id=organisation_id,
            idempotency_key=idempotency_key,
            fingerprint=await fingerprint_of(request),
        )

    return write_request
