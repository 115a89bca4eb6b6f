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
    """No token (`token_sent=False`), a bad token or an expired token."""

    def __init__(self, message: str, *, token_sent: bool = True) -> None:
        super().__init__(message)
        self.token_sent = token_sent

    @property
    def challenge(self) -> str:
        """The answer's `WWW-Authenticate` (RFC 6750, section 3): a bad token's says why."""
        if not self.token_sent:
            return "Bearer"
        # A quoted-string of the characters RFC 6750 allows in error_description.
        description = "".join(
            char if " " <= char <= "~" and char not in '"\\' else "'" if char == '"' else " "
            for char in str(self)
        )
        return f'Bearer error="invalid_token", error_description="{description}"'


class IdempotencyKeyReusedError(ServiceError):
    """An `Idempotency-Key` sent again with a different request, or a malformed key."""


class UnappliableEventError(ValueError):
    """An event a projection cannot apply: an unknown type, or one about a record it never saw.

    The consumer platform dead-letters the record with this message as the reason.
    """
