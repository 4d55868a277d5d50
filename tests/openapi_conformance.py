"""Checks that responses conform to the OpenAPI document the extension builds.

``ConformingClient`` is a Flask test client that checks every response it
gets under the extension's prefix: an app whose ``test_client_class`` is set
to it gives pytest-flask's ``client`` that behaviour.

A response to a documented method and path is validated by openapi-core. The
API also answers what no operation can describe (another method: 405; a path
under the prefix that is no route: 404); those are validated against what the
document says about such answers, the 405 and 404 responses of the documented
operations of the same (or any) path.
"""

from __future__ import annotations

import re
import weakref
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from werkzeug.test import TestResponse
from werkzeug.wrappers import Request

from flask_email_cancel import EmailCancel
from flask_email_cancel.extension import EXTENSION_KEY

_documents: weakref.WeakKeyDictionary[Flask, tuple[dict[str, Any], OpenAPI]] = (
    weakref.WeakKeyDictionary()
)


def document(app: Flask) -> tuple[dict[str, Any], OpenAPI]:
    """The app's OpenAPI document, and openapi-core's validator for it."""
    if app not in _documents:
        spec = EmailCancel.state(app).extension.openapi_spec(app)
        _documents[app] = (spec, OpenAPI.from_dict(spec))
    return _documents[app]


def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")


class _RequestView:
    """The request as openapi-core sees it, possibly as if sent to another
    method or path. Only responses are validated, so the body (which the view
    has already consumed) is not read again."""

    body = None

    def __init__(self, request: WerkzeugOpenAPIRequest, method: str, path: str) -> None:
        self._request = request
        self.method = method
        self.path = path
        self.full_url_pattern = request.host_url.rstrip("/") + path

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


def check_response(app: Flask, response: TestResponse) -> None:
    """Raise unless ``response`` conforms to ``app``'s OpenAPI document.

    :raises AssertionError: or an openapi-core validation error.
    """
    if EXTENSION_KEY not in app.extensions:
        return  # an app without the API: nothing to check
    request: Request = response.request
    state = EmailCancel.state(app)
    prefix = state.url_prefix
    path = request.path
    if not (path == prefix or path.startswith(prefix + "/")):
        return
    spec, openapi = document(app)
    method = request.method.lower()
    assert response.mimetype == "application/json", response.content_type
    assert response.content_type == "application/json;charset=UTF-8"

    templates = [t for t in spec["paths"] if _template_regex(t).match(path)]
    # A static path (the document's own route) wins over a templated one.
    templates.sort(key=lambda t: "{" in t)
    served = spec["paths"][templates[0]] if templates else {}
    if method in served or (method == "head" and "get" in served):
        target_method = "get" if method == "head" else method
        target_path, template = path, templates[0]
    elif templates:
        # Another method on a documented path: its operations document the 405.
        assert response.status_code in (200, 405), response.status_code
        template = templates[0]
        target_method = next(iter(spec["paths"][template]))
        target_path = path
        if method == "options":
            assert response.status_code == 200
            assert response.headers["Allow"], "OPTIONS must name the methods served"
            assert target_method.upper() in response.headers["Allow"]
            return
        assert response.headers.get("Allow"), "a 405 must carry Allow"
        assert target_method.upper() in response.headers["Allow"].split(", ")
    else:
        # No route at all: what the operations document for 404.
        assert response.status_code == 404, response.status_code
        target_method = "delete"
        target_path = f"{prefix}/1"
        template = f"{prefix}/{{id}}"

    operation = spec["paths"][template][target_method]
    assert str(response.status_code) in operation["responses"], (
        f"{request.method} {path} answered {response.status_code}, "
        f"undocumented for {target_method.upper()}"
    )
    if method == "head":
        assert response.get_data() == b""
        return
    openapi_request = _RequestView(WerkzeugOpenAPIRequest(request), target_method, target_path)
    openapi.validate_response(openapi_request, WerkzeugOpenAPIResponse(response))
    documented = operation["responses"][str(response.status_code)].get("headers", {})
    if "Allow" in documented:
        assert response.headers.get("Allow"), "a documented Allow header is missing"
    if "Retry-After" in documented:
        assert response.headers.get("Retry-After"), "a documented Retry-After is missing"
    if "WWW-Authenticate" in documented and state.www_authenticate:
        assert response.headers.get("WWW-Authenticate") == state.www_authenticate


class ConformingClient(FlaskClient):
    """A test client that checks each response against the OpenAPI document."""

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        response = super().open(*args, **kwargs)
        check_response(self.application, response)
        return response
