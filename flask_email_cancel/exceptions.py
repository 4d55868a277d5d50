"""The library's exceptions.

Every exception raised by the library derives from :class:`EmailCancelError`.
Those that answer an HTTP request also derive from the Werkzeug exception of
their status code, so the blueprint renders them as the spec's JSON bodies.
"""

from __future__ import annotations

from werkzeug.exceptions import (
    BadRequest,
    InternalServerError,
    MethodNotAllowed,
    NotFound,
    RequestEntityTooLarge,
    ServiceUnavailable,
    Unauthorized,
)

__all__ = [
    "BodyIdMismatch",
    "BodyTooLarge",
    "EmailCancelError",
    "EntriesBusy",
    "LockTimeout",
    "MalformedBody",
    "MalformedRequestId",
    "MappingError",
    "NoCancellableMessages",
    "ServerFailure",
    "UnauthorizedRequest",
    "UnknownPath",
    "UnsupportedMethod",
]


class EmailCancelError(Exception):
    """Base class of every exception raised by ``flask_email_cancel``."""


class MappingError(EmailCancelError, ValueError):
    """A repository was pointed at columns or values that cannot work."""


class LockTimeout(EmailCancelError, TimeoutError):
    """A row or the database stayed locked longer than the repository's
    ``lock_timeout`` (or the database's own lock wait limit).

    The statement was rolled back as a whole: nothing was cancelled or claimed.
    Typically a sender holds the entry's row while it sends; retrying later
    is safe.
    """


class UnauthorizedRequest(EmailCancelError, Unauthorized):
    """401: the request carries no valid credentials."""

    description = "Unauthorized request"


class MalformedRequestId(EmailCancelError, BadRequest):
    """400: the path id is not a decimal long from 1 to 2**63-1."""

    description = (
        "Malformed email request ID: expected a decimal number from 1 to 9223372036854775807"
    )


class NoCancellableMessages(EmailCancelError, BadRequest):
    """400: nothing was cancelled (unknown id, nothing scheduled later, or
    another tenant's request)."""

    description = "No cancellable messages found"


class MalformedBody(EmailCancelError, BadRequest):
    """400: the request body is not JSON."""

    description = "Malformed request body: expected no body or a JSON document"


class BodyIdMismatch(EmailCancelError, BadRequest):
    """400: the JSON body names an ``id`` other than the path's."""

    description = "The id in the request body does not match the email request ID in the path"


class BodyTooLarge(EmailCancelError, RequestEntityTooLarge):
    """413: the request body is larger than ``EMAIL_CANCEL_MAX_BODY_SIZE``."""

    description = "Request body too large"


class UnknownPath(EmailCancelError, NotFound):
    """404: a path under the prefix that is not one of the API's routes."""

    description = "Not found"


class UnsupportedMethod(EmailCancelError, MethodNotAllowed):
    """405: a method the route does not serve; ``Allow`` names those it does."""

    description = "Method not allowed"


class ServerFailure(EmailCancelError, InternalServerError):
    """500: anything that went wrong on the server; details go to the log only."""

    description = "Server failure to process request"


class EntriesBusy(EmailCancelError, ServiceUnavailable):
    """503: an entry of the request stayed locked (a sender is sending it)
    longer than the repository's lock timeout. Nothing was cancelled; the
    response carries ``Retry-After``."""

    description = "Email entries of this request are being sent; try again later"
