"""The marshmallow schemas of the API's bodies.

A host may replace them (``init_app(response_schema=..., error_schema=...)``);
the blueprint dumps plain dicts with the keys described below through them.
Every id-valued field is a JSON string: JavaScript clients lose precision on
numbers above 2**53, and Volt MX request ids go up to 2**63-1.
"""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, fields

__all__ = [
    "MAX_REQUEST_ID",
    "CancelBodySchema",
    "CancelResponseSchema",
    "ErrorSchema",
    "RequestIdField",
    "cancelled_message",
    "parse_request_id",
]

MAX_REQUEST_ID = 2**63 - 1
"""The largest email request id: a Java ``long``, as Volt MX stores it."""

_MAX_DIGITS = len(str(MAX_REQUEST_ID))


def cancelled_message(count: int, request_id: int) -> str:
    """The spec's success message, word for word."""
    return f"Cancelled {count} Email entries of the EmailRequest with ID : {request_id}"


def parse_request_id(text: str) -> int | None:
    """Return the email request id written in ``text``, or ``None`` when it is
    not decimal ASCII digits for a number from 1 to 2**63-1.

    Leading zeros are accepted (``Long.parseLong`` accepts them too); the
    number is checked before conversion, so no input is ever costly to parse.
    """
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0")
    if not digits or len(digits) > _MAX_DIGITS:
        return None
    value = int(digits)
    return value if value <= MAX_REQUEST_ID else None


class RequestIdField(fields.Field):  # type: ignore[type-arg]
    """An email request id: loads a JSON integer or a string of digits, dumps
    a string."""

    default_error_messages = {  # noqa: RUF012 - marshmallow's own convention
        "invalid": "Not a valid email request ID: expected a decimal number "
        "from 1 to 9223372036854775807."
    }

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else str(value)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int | None:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, int):
            value = str(value)
        if not isinstance(value, str):
            raise self.make_error("invalid")
        if value == "":
            return None
        parsed = parse_request_id(value)
        if parsed is None:
            raise self.make_error("invalid")
        return parsed


class CancelBodySchema(Schema):
    """The optional JSON request body. Only ``id`` is read: when present (and
    neither ``null`` nor ``""``) it must name the same request as the path.
    Other keys are ignored."""

    class Meta:
        unknown = EXCLUDE

    id = RequestIdField(allow_none=True, load_default=None)


class CancelResponseSchema(Schema):
    """The 200 body: the spec's ``id`` and ``message``, plus ``request_id``
    (string) and ``count``."""

    id = fields.String(dump_default="")
    message = fields.String(required=True)
    request_id = RequestIdField()
    count = fields.Integer()


class ErrorSchema(Schema):
    """Every error body: the spec's ``id`` (always ``""``) and ``message``."""

    id = fields.String(dump_default="")
    message = fields.String(required=True)


def load_body(schema: Schema, document: Any) -> int | None:
    """Return the request id named by a parsed JSON body, or ``None``.

    :raises marshmallow.ValidationError: when ``id`` is present but malformed.
    """
    if not isinstance(document, dict):
        return None
    loaded = schema.load(document)
    value = loaded.get("id")
    return value if isinstance(value, int) else None
