"""The OpenAPI 3.1 document of the API, generated from the marshmallow schemas
the extension dumps its bodies with.

It needs `apispec <https://apispec.readthedocs.io>`_, installed with the
``openapi`` extra (``pip install 'flask-email-cancel[openapi]'``); nothing else
in the library imports it.

The document describes both cancel routes under the app's prefix, every answer
they give, and the security schemes of the configured authenticator. When
``EMAIL_CANCEL_OPENAPI_URL`` is set, the blueprint also serves the document
(without authentication) and the document describes that route too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from marshmallow import Schema, fields

from .auth import AccessTokenAuth, AnyOf, BasicAuth, BearerAuth, TokenHeaderAuth
from .exceptions import (
    BodyIdMismatch,
    BodyTooLarge,
    EntriesBusy,
    MalformedBody,
    MalformedRequestId,
    NoCancellableMessages,
    ServerFailure,
    UnauthorizedRequest,
    UnknownPath,
    UnsupportedMethod,
)
from .schemas import MAX_REQUEST_ID, RequestIdField

if TYPE_CHECKING:
    from .extension import EmailCancelState

__all__ = [
    "OPENAPI_VERSION",
    "REQUEST_ID_PATTERN",
    "SecurityDescription",
    "build_spec",
    "describe_security",
    "require_apispec",
]

OPENAPI_VERSION = "3.1.0"
"""The OpenAPI version of the generated document."""

REQUEST_ID_PATTERN = r"^0*[1-9][0-9]{0,18}$"
"""The path id's pattern: a positive number of at most 19 decimal digits,
leading zeros allowed. A pattern cannot bound the value itself: numbers above
2**63-1 match it and are answered 400 like any other malformed id."""

_ID_RANGE = f"from 1 to {MAX_REQUEST_ID} (2**63-1, a Java long)"

SecurityDescription = tuple[dict[str, dict[str, Any]], list[dict[str, list[str]]], str]
"""What :func:`describe_security` returns: the ``securitySchemes`` components,
the ``security`` requirements (alternatives; each lists the schemes it needs
together) and a sentence for the document's description."""


def require_apispec() -> None:
    """Raise a clear :class:`ImportError` when apispec is not installed.

    :raises ImportError: naming the ``openapi`` extra to install.
    """
    try:
        import apispec  # noqa: F401
        import apispec.ext.marshmallow  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "the OpenAPI document of flask-email-cancel needs apispec: "
            "pip install 'flask-email-cancel[openapi]'"
        ) from exc


def _unwrap(authenticator: Any) -> Any:
    # AnyOf keeps the bound ``authenticate`` methods; their owners are the
    # authenticators to describe.
    return getattr(authenticator, "__self__", authenticator)


def describe_security(authenticator: Any) -> SecurityDescription:
    """Describe an authenticator as OpenAPI security schemes.

    :class:`~flask_email_cancel.TokenHeaderAuth` is an ``apiKey`` in the header
    it reads; :class:`~flask_email_cancel.BasicAuth` and
    :class:`~flask_email_cancel.BearerAuth` are ``http`` schemes;
    :class:`~flask_email_cancel.AccessTokenAuth` is two ``apiKey`` headers
    required together; :class:`~flask_email_cancel.AnyOf` is the alternatives
    of its members. Anything else (a custom authenticator, or ``None``) yields
    no scheme, and the description says why.
    """
    schemes: dict[str, dict[str, Any]] = {}
    requirements: list[dict[str, list[str]]] = []
    undescribed: list[str] = []

    def add(name: str, scheme: dict[str, Any]) -> str:
        key, n = name, 2
        while key in schemes and schemes[key] != scheme:
            key, n = f"{name}{n}", n + 1
        schemes[key] = scheme
        return key

    def visit(auth: Any) -> None:
        auth = _unwrap(auth)
        if isinstance(auth, AnyOf):
            for member in getattr(auth, "authenticators", ()):
                visit(member)
        elif isinstance(auth, TokenHeaderAuth):
            scheme = {"type": "apiKey", "in": "header", "name": auth.header}
            requirements.append({add("tokenHeader", scheme): []})
        elif isinstance(auth, BasicAuth):
            requirements.append({add("basicAuth", {"type": "http", "scheme": "basic"}): []})
        elif isinstance(auth, BearerAuth):
            requirements.append({add("bearerAuth", {"type": "http", "scheme": "bearer"}): []})
        elif isinstance(auth, AccessTokenAuth):
            token = add(
                "accessToken", {"type": "apiKey", "in": "header", "name": auth.token_header}
            )
            secret = add(
                "accessSecret", {"type": "apiKey", "in": "header", "name": auth.secret_header}
            )
            requirements.append({token: [], secret: []})
        else:
            undescribed.append(getattr(auth, "__qualname__", type(auth).__qualname__))

    if authenticator is None:
        return (
            {},
            [],
            (
                "No authenticator is configured: every cancel request is answered "
                "401 Unauthorized request."
            ),
        )
    visit(authenticator)
    if undescribed:
        note = (
            "Requests are also authenticated by a custom authenticator "
            f"({', '.join(undescribed)}) that this document cannot describe."
            if requirements
            else "Requests are authenticated by a custom authenticator "
            f"({', '.join(undescribed)}) that this document cannot describe."
        )
    else:
        note = "A request without valid credentials is answered 401 Unauthorized request."
    return schemes, requirements, note


def _request_id_property(body_schema: Schema) -> Callable[..., dict[str, Any]]:
    """An apispec attribute function describing :class:`RequestIdField`: a
    string in responses, a string or integer (or null) in the request body."""

    def request_id_field(self: Any, field: fields.Field[Any], **kwargs: Any) -> dict[str, Any]:
        if not isinstance(field, RequestIdField):
            return {}
        if field.parent is body_schema:
            types = ["string", "integer", "null"] if field.allow_none else ["string", "integer"]
            return {
                "type": types,
                "pattern": r"^(0*[1-9][0-9]{0,18})?$",
                "minimum": 1,
                "maximum": MAX_REQUEST_ID,
                "description": (
                    "The email request ID, as a JSON integer or a string of digits, "
                    f"{_ID_RANGE}. When present, and neither null nor an empty string, "
                    "it must name the request of the path."
                ),
            }
        return {
            "type": "string",
            "pattern": r"^[1-9][0-9]{0,18}$",
            "description": f"The email request ID as a decimal string, {_ID_RANGE}.",
        }

    return request_id_field


def _ref(name: str) -> dict[str, str]:
    # An explicit reference: apispec would look a bare name up in marshmallow's
    # class registry, where a host's own schema class may bear the same name.
    return {"$ref": f"#/components/schemas/{name}"}


def _error(*exceptions: type[Exception]) -> dict[str, Any]:
    examples = {
        type_.__name__: {"value": {"id": "", "message": type_.description}}  # type: ignore[attr-defined]
        for type_ in exceptions
    }
    return {"schema": _ref("Error"), "examples": examples}


def _operation(
    parameter: dict[str, Any],
    summary: str,
    method: str,
    security: list[dict[str, list[str]]],
    www_authenticate: bool,
) -> dict[str, Any]:
    json_type = "application/json"
    text_header = {"schema": {"type": "string"}}

    def error(description: str, *exceptions: type[Exception]) -> dict[str, Any]:
        body = _error(*exceptions)
        return {
            "description": description,
            "content": {json_type: {"schema": body["schema"], "examples": body["examples"]}},
        }

    unauthorized = error("No valid credentials.", UnauthorizedRequest)
    if www_authenticate:
        unauthorized["headers"] = {
            "WWW-Authenticate": {**text_header, "description": "The authentication challenge."}
        }
    not_allowed = error(
        f"Another method than {method} (OPTIONS is answered 200).", UnsupportedMethod
    )
    not_allowed["headers"] = {
        "Allow": {**text_header, "description": f"The methods served: {method}, OPTIONS."}
    }
    busy = error(
        "An entry stayed locked by a sender longer than the repository's lock "
        "timeout; nothing was cancelled, and a retry is safe.",
        EntriesBusy,
    )
    busy["headers"] = {
        "Retry-After": {
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
            "description": "Seconds to wait before retrying.",
        }
    }
    return {
        "summary": summary,
        "description": (
            "Cancels, atomically, every entry of the email request that is still "
            "pending and scheduled strictly later than now."
        ),
        "operationId": f"cancelEmail{method.title()}",
        "tags": ["Cancel Email"],
        "parameters": [parameter],
        "requestBody": {
            "required": False,
            "description": (
                "Optional. Any JSON document; a JSON object may repeat the request ID "
                "as ``id``, which must then match the path."
            ),
            "content": {json_type: {"schema": _ref("CancelBody")}},
        },
        **({"security": security} if security else {}),
        "responses": {
            "200": {
                "description": "Entries were cancelled.",
                "content": {
                    json_type: {
                        "schema": _ref("CancelResponse"),
                        "example": {
                            "id": "",
                            "message": "Cancelled 4 Email entries of the EmailRequest "
                            "with ID : 7131002087805116277",
                            "request_id": "7131002087805116277",
                            "count": 4,
                        },
                    }
                },
            },
            "400": error(
                "Nothing was cancelled, or the request is malformed.",
                NoCancellableMessages,
                MalformedRequestId,
                MalformedBody,
                BodyIdMismatch,
            ),
            "401": unauthorized,
            "404": error(
                "The path is not one of the API's routes (for instance an ID containing '/').",
                UnknownPath,
            ),
            "405": not_allowed,
            "413": error(
                "The request body is larger than EMAIL_CANCEL_MAX_BODY_SIZE.", BodyTooLarge
            ),
            "500": error("The server failed; details are logged only.", ServerFailure),
            "503": busy,
        },
    }


def build_spec(state: EmailCancelState, *, title: str = "Cancel Email API") -> dict[str, Any]:
    """Build the OpenAPI 3.1 document of the API that ``state`` configures.

    :param state: what :meth:`~flask_email_cancel.EmailCancel.init_app`
        configured for one app (``EmailCancel.state(app)``).
    :param title: the document's ``info.title``.
    :returns: a new JSON-serialisable dict; the caller may change it.
    :raises ImportError: when apispec is not installed.
    """
    require_apispec()
    from apispec import APISpec
    from apispec.ext.marshmallow import MarshmallowPlugin

    from . import __version__

    schemes, requirements, auth_note = describe_security(state.authenticator)
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title=title,
        version=__version__,
        openapi_version=OPENAPI_VERSION,
        plugins=[plugin],
        info={
            "description": (
                "The Cancel Email API of HCL Volt MX Engagement Services, served by "
                "flask-email-cancel. Every response, errors included, is JSON with "
                "Content-Type application/json;charset=UTF-8. " + auth_note
            )
        },
    )
    assert plugin.converter is not None
    plugin.converter.add_attribute_function(  # type: ignore[no-untyped-call]
        _request_id_property(state.body_schema)
    )

    spec.components.schema("CancelBody", schema=state.body_schema)
    spec.components.schema("CancelResponse", schema=state.response_schema)
    spec.components.schema("Error", schema=state.error_schema)
    for name, scheme in schemes.items():
        spec.components.security_scheme(name, scheme)
    parameter = {
        "name": "id",
        "in": "path",
        "required": True,
        "description": (
            f"The email request ID: decimal ASCII digits for a number {_ID_RANGE}. "
            "Leading zeros are accepted. Anything else is answered 400."
        ),
        "schema": {"type": "string", "pattern": REQUEST_ID_PATTERN},
        "example": "7131002087805116277",
    }
    www_authenticate = bool(state.www_authenticate)
    spec.path(
        path=f"{state.url_prefix}/{{id}}/cancel",
        operations={
            "post": _operation(
                parameter, "Cancel an email request", "POST", requirements, www_authenticate
            )
        },
    )
    spec.path(
        path=f"{state.url_prefix}/{{id}}",
        operations={
            "delete": _operation(
                parameter, "Cancel an email request", "DELETE", requirements, www_authenticate
            )
        },
    )
    openapi_url = state.openapi_url
    if openapi_url:
        spec.path(
            path=f"{state.url_prefix}{openapi_url}",
            operations={
                "get": {
                    "summary": "This OpenAPI document",
                    "operationId": "getOpenAPIDocument",
                    "tags": ["Cancel Email"],
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI document, served without authentication.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "405": {
                            "description": "Another method than GET or HEAD "
                            "(OPTIONS is answered 200).",
                            "headers": {
                                "Allow": {
                                    "schema": {"type": "string"},
                                    "description": "The methods served: GET, HEAD, OPTIONS.",
                                }
                            },
                            "content": {"application/json": {"schema": _ref("Error")}},
                        },
                        "500": {
                            "description": "The server failed; details are logged only.",
                            "content": {"application/json": {"schema": _ref("Error")}},
                        },
                    },
                }
            },
        )
    document: dict[str, Any] = spec.to_dict()
    return document
