"""The blueprint: both cancel routes, and JSON for every other answer under the
prefix.

Werkzeug's routing errors (404, 405) are raised before any blueprint handler
could see them, so the blueprint owns its URLs for every method itself and
answers unknown sub-paths and other methods in JSON. Its error handlers are the
blueprint's: the host's own pages are never touched.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, current_app, request
from flask.sansio.blueprints import BlueprintSetupState
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import PathConverter, Rule

from .exceptions import (
    BodyIdMismatch,
    BodyTooLarge,
    EntriesBusy,
    LockTimeout,
    MalformedBody,
    MalformedRequestId,
    NoCancellableMessages,
    ServerFailure,
    UnauthorizedRequest,
    UnknownPath,
    UnsupportedMethod,
)
from .schemas import cancelled_message, load_body, parse_request_id
from .signals import notify_cancelled

if TYPE_CHECKING:
    from .extension import EmailCancelState

__all__ = ["CONTENT_TYPE", "create_blueprint"]

CONTENT_TYPE = "application/json;charset=UTF-8"
"""The ``Content-Type`` of every response under the prefix, as the spec writes it."""

BLUEPRINT_NAME = "email_cancel"


def _json(document: Any, status: int) -> Response:
    return current_app.response_class(json.dumps(document), status, content_type=CONTENT_TYPE)


_REST = "email_cancel_rest"


class _Rest(PathConverter):
    """Any rest of a path, even one that starts with or doubles a slash, which
    Werkzeug's ``path`` converter refuses."""

    regex = ".*"
    part_isolating = False


def create_blueprint(state: EmailCancelState) -> Blueprint:
    """Build the blueprint serving ``state``'s routes, one per app."""
    bp = Blueprint(BLUEPRINT_NAME, __name__, url_prefix=state.url_prefix)
    error_schema = state.error_schema
    response_schema = state.response_schema

    def error(exc: HTTPException) -> Response:
        response = _json(error_schema.dump({"id": "", "message": exc.description}), exc.code or 500)
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        elif exc.code == 401 and state.www_authenticate:
            response.headers["WWW-Authenticate"] = state.www_authenticate
        elif isinstance(exc, EntriesBusy):
            response.headers["Retry-After"] = "1"
        return response

    def failure(exc: Exception) -> Response:
        current_app.logger.exception("email cancel failed for %s %s", request.method, request.path)
        return error(ServerFailure())

    def other_method(served: list[str]) -> Response | None:
        """``None`` for a method the route serves; the answer to OPTIONS;
        else a 405 naming what is allowed."""
        if request.method in served:
            return None
        allowed = [*served, "OPTIONS"]
        if request.method != "OPTIONS":
            raise UnsupportedMethod(valid_methods=allowed)
        response = _json(error_schema.dump({"id": "", "message": ""}), 200)
        response.headers["Allow"] = ", ".join(allowed)
        return response

    def cancel(id: str, method: str) -> Response:
        options = other_method([method])
        if options is not None:
            return options
        principal = state.authenticate(request._get_current_object())  # type: ignore[attr-defined]
        if principal is None:
            raise UnauthorizedRequest()
        request_id = parse_request_id(id)
        if request_id is None:
            raise MalformedRequestId()
        body_id = _body_request_id(state)
        if body_id is not None and body_id != request_id:
            raise BodyIdMismatch()
        try:
            count = state.cancel(request_id, principal)
        except LockTimeout:
            current_app.logger.warning(
                "email request %s: entries stayed locked; nothing cancelled", request_id
            )
            raise EntriesBusy() from None
        if count <= 0:
            raise NoCancellableMessages()
        notify_cancelled(current_app._get_current_object(), request_id, count, principal)  # type: ignore[attr-defined]
        message = cancelled_message(count, request_id)
        document = {"id": "", "message": message, "request_id": request_id, "count": count}
        return _json(response_schema.dump(document), 200)

    def cancel_post(id: str) -> Response:
        return cancel(id, "POST")

    def cancel_delete(id: str) -> Response:
        return cancel(id, "DELETE")

    def not_found(path: str = "") -> Response:
        raise UnknownPath()

    document: list[dict[str, Any]] = []

    def openapi() -> Response:
        # GET only (HEAD follows GET); no authentication: the document is public.
        options = other_method(["GET", "HEAD"])
        if options is not None:
            return options
        if not document:
            document.append(state.extension.openapi_spec(current_app))
        return _json(document[0], 200)

    views: dict[str, Callable[..., Response]] = {
        "cancel_post": cancel_post,
        "cancel_delete": cancel_delete,
        "not_found": not_found,
        "openapi": openapi,
    }
    rules = [
        ("/<id>/cancel", "cancel_post"),
        ("/<id>", "cancel_delete"),
        ("", "not_found"),
        ("/", "not_found"),
        (f"/<{_REST}:path>", "not_found"),
    ]
    if state.openapi_url is not None:
        from .openapi import require_apispec

        require_apispec()
        rules.append((state.openapi_url, "openapi"))

    def register(setup: BlueprintSetupState) -> None:
        # Rules without a method list match every method, so no request under
        # the prefix falls through to Werkzeug's own (HTML) 404 or 405.
        setup.app.url_map.converters.setdefault(_REST, _Rest)
        for rule, endpoint in rules:
            full = f"{bp.name}.{endpoint}"
            # merge_slashes=False: "//" in a path gets our JSON 404, not
            # Werkzeug's HTML redirect.
            setup.app.url_map.add(
                Rule(f"{state.url_prefix}{rule}", endpoint=full, merge_slashes=False)
            )
            setup.app.view_functions[full] = views[endpoint]

    bp.record_once(register)
    bp.register_error_handler(HTTPException, error)
    bp.register_error_handler(Exception, failure)
    return bp


def _body_request_id(state: EmailCancelState) -> int | None:
    """The request id named by the optional JSON body, if any."""
    limit = state.max_body_size
    length = request.content_length
    if length is not None and length > limit:
        raise BodyTooLarge()
    if not length and "chunked" not in request.headers.get("Transfer-Encoding", "").lower():
        return None  # no body at all, the usual case: nothing to read
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise BodyTooLarge()
    if not data.strip():
        return None
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise MalformedBody() from None
    try:
        return load_body(state.body_schema, document)
    except ValidationError:
        raise BodyIdMismatch() from None
