"""Named errors raised by domain rules and use cases.

They carry no HTTP status: the HTTP edge (`services.platform.http`) maps each kind to its answer,
so the same rule can be used by a consumer or a command without pretending to be a web request.
"""


class ServiceError(Exception):
    """Base of the errors a request can end in; the message says what is wrong, in words."""


class ConflictError(ServiceError):
    """The request is well formed but the current state forbids it (a business rule)."""


class NotFoundError(ServiceError):
    """No such record, or one the caller may not know exists."""


class ForbiddenError(ServiceError):
    """The caller is authenticated but the record belongs to another organisation."""


class UnauthenticatedError(ServiceError):
    """No token, a bad token or an expired token."""


class IdempotencyKeyReusedError(ServiceError):
    """An `Idempotency-Key` sent again with a different request, or a malformed key."""


class UnappliableEventError(ValueError):
    """An event a projection cannot apply: an unknown type, or one about a record it never saw.

    The consumer platform dead-letters the record with this message as the reason.
    """
