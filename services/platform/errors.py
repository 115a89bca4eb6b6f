"""Named errors raised by use cases; the HTTP edge maps each to its status code."""


class ServiceError(Exception):
    """Base of the errors a request can end in; `status_code` is the HTTP answer."""

    status_code = 500


class ConflictError(ServiceError):
    """The request is well formed but the current state forbids it (a business rule)."""

    status_code = 409


class NotFoundError(ServiceError):
    status_code = 404


class ForbiddenError(ServiceError):
    """The caller is authenticated but the record belongs to another organisation."""

    status_code = 403


class UnauthenticatedError(ServiceError):
    """No token, a bad token or an expired token."""

    status_code = 401


class IdempotencyKeyReusedError(ServiceError):
    """An `Idempotency-Key` sent again with a different request."""

    status_code = 422
