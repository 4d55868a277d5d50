"""The OpenAPI document: valid, faithful to the authenticator, served on
request, and every answer of both routes conforms to it."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from flask import Flask, Request
from flask.testing import FlaskClient
from marshmallow import Schema, fields
from openapi_spec_validator import validate
from werkzeug.test import TestResponse

from flask_email_cancel import (
    AccessTokenAuth,
    AnyOf,
    BasicAuth,
    BearerAuth,
    EmailCancel,
    InMemoryQueueRepository,
    LockTimeout,
    Principal,
    TokenHeaderAuth,
)
from flask_email_cancel.exceptions import EntriesBusy
from flask_email_cancel.openapi import REQUEST_ID_PATTERN, describe_security, require_apispec
from flask_email_cancel.schemas import MAX_REQUEST_ID

from .conftest import BIG_ID, TOKEN, later
from .openapi_conformance import ConformingClient, check_response

OPENAPI_URL = "/openapi.json"


def _custom(request: Request) -> Principal | None:
    return None


def make_app(
    repository: Any,
    authenticator: Any = None,
    **config: Any,
) -> Flask:
    app = Flask(__name__)
    app.config.update(TESTING=True, EMAIL_CANCEL_OPENAPI_URL=OPENAPI_URL, **config)
    app.test_client_class = ConformingClient
    EmailCancel(app, repository=repository, authenticator=authenticator)
    return app


@pytest.fixture
def app(memory_repo: InMemoryQueueRepository) -> Flask:
    """The shared test app, serving its document, with a checking client."""
    return make_app(memory_repo, TokenHeaderAuth({TOKEN: Principal(id="ops")}))


AUTHENTICATORS: dict[str, Any] = {
    "none": None,
    "token": TokenHeaderAuth({"t": "a"}, header="X-Token"),
    "basic": BasicAuth({"u": "p"}),
    "bearer": BearerAuth({"t": "a"}),
    "access-token": AccessTokenAuth({"t": "s"}),
    "any-of": AnyOf(
        TokenHeaderAuth({"t": "a"}), AccessTokenAuth({"t": "s"}), BearerAuth({"t": "a"})
    ),
    "custom": _custom,
    "any-of-custom": AnyOf(BasicAuth({"u": "p"}), _custom),
}

EXPECTED_SECURITY: dict[str, tuple[dict[str, Any], list[dict[str, list[str]]]]] = {
    "none": ({}, []),
    "token": (
        {"tokenHeader": {"type": "apiKey", "in": "header", "name": "X-Token"}},
        [{"tokenHeader": []}],
    ),
    "basic": ({"basicAuth": {"type": "http", "scheme": "basic"}}, [{"basicAuth": []}]),
    "bearer": ({"bearerAuth": {"type": "http", "scheme": "bearer"}}, [{"bearerAuth": []}]),
    "access-token": (
        {
            "accessToken": {"type": "apiKey", "in": "header", "name": "AccessToken"},
            "accessSecret": {"type": "apiKey", "in": "header", "name": "AccessSecret"},
        },
        [{"accessToken": [], "accessSecret": []}],
    ),
    "any-of": (
        {
            "tokenHeader": {"type": "apiKey", "in": "header", "name": "X-VoltMX-Authorization"},
            "accessToken": {"type": "apiKey", "in": "header", "name": "AccessToken"},
            "accessSecret": {"type": "apiKey", "in": "header", "name": "AccessSecret"},
            "bearerAuth": {"type": "http", "scheme": "bearer"},
        },
        [{"tokenHeader": []}, {"accessToken": [], "accessSecret": []}, {"bearerAuth": []}],
    ),
    "custom": ({}, []),
    "any-of-custom": ({"basicAuth": {"type": "http", "scheme": "basic"}}, [{"basicAuth": []}]),
}


@pytest.mark.parametrize("name", AUTHENTICATORS)
def test_document_validates_for_every_authenticator(name: str) -> None:
    app = make_app(InMemoryQueueRepository(), AUTHENTICATORS[name])
    spec = EmailCancel.state(app).extension.openapi_spec(app)
    validate(spec)
    assert spec["openapi"] == "3.1.0"
    schemes, requirements = EXPECTED_SECURITY[name]
    assert spec.get("components", {}).get("securitySchemes", {}) == schemes
    for path in ("/api/v1/email/{id}/cancel", "/api/v1/email/{id}"):
        (operation,) = spec["paths"][path].values()
        assert operation.get("security") == (requirements or None)
    json.dumps(spec)


@pytest.mark.parametrize(
    ("name", "note"),
    [
        ("none", "every cancel request is answered 401"),
        ("custom", "custom authenticator (_custom) that this document cannot describe"),
        ("any-of-custom", "also authenticated by a custom authenticator (_custom)"),
        ("token", "without valid credentials is answered 401"),
    ],
)
def test_description_says_what_the_schemes_cannot(name: str, note: str) -> None:
    assert note in describe_security(AUTHENTICATORS[name])[2]


def test_two_headers_of_one_kind_get_two_schemes() -> None:
    schemes, requirements, _ = describe_security(
        AnyOf(TokenHeaderAuth({"a": "a"}), TokenHeaderAuth({"b": "b"}, header="X-Other"))
    )
    assert schemes["tokenHeader"]["name"] == "X-VoltMX-Authorization"
    assert schemes["tokenHeader2"]["name"] == "X-Other"
    assert requirements == [{"tokenHeader": []}, {"tokenHeader2": []}]


def test_path_parameter_and_schemas(app: Flask) -> None:
    spec = EmailCancel.state(app).extension.openapi_spec(app)
    for path in ("/api/v1/email/{id}/cancel", "/api/v1/email/{id}"):
        (operation,) = spec["paths"][path].values()
        (parameter,) = operation["parameters"]
        assert parameter["in"] == "path" and parameter["required"] is True
        assert parameter["schema"] == {"type": "string", "pattern": REQUEST_ID_PATTERN}
        assert str(MAX_REQUEST_ID) in parameter["description"]
        assert set(operation["responses"]) == {
            "200",
            "400",
            "401",
            "404",
            "405",
            "413",
            "500",
            "503",
        }
        assert operation["requestBody"]["required"] is False
    schemas = spec["components"]["schemas"]
    assert schemas["CancelResponse"]["properties"]["request_id"]["type"] == "string"
    assert schemas["CancelResponse"]["properties"]["count"] == {"type": "integer"}
    assert schemas["Error"]["required"] == ["message"]
    assert schemas["CancelBody"]["properties"]["id"]["type"] == ["string", "integer", "null"]


def test_paths_follow_the_prefix() -> None:
    app = make_app(InMemoryQueueRepository(), EMAIL_CANCEL_URL_PREFIX="/mail/")
    spec = EmailCancel.state(app).extension.openapi_spec(app)
    assert set(spec["paths"]) == {"/mail/{id}/cancel", "/mail/{id}", "/mail/openapi.json"}


def test_document_is_served_as_json(client: FlaskClient, app: Flask) -> None:
    response = client.get("/api/v1/email/openapi.json")
    assert response.status_code == 200
    assert response.content_type == "application/json;charset=UTF-8"
    assert response.json == EmailCancel.state(app).extension.openapi_spec(app)
    assert client.get("/api/v1/email/openapi.json").json == response.json
    assert client.head("/api/v1/email/openapi.json").status_code == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_document_route_answers_other_methods_405(client: FlaskClient, method: str) -> None:
    response = client.open("/api/v1/email/openapi.json", method=method)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert response.json == {"id": "", "message": "Method not allowed"}
    options = client.options("/api/v1/email/openapi.json")
    assert options.status_code == 200 and options.headers["Allow"] == "GET, HEAD, OPTIONS"


def test_document_is_not_served_by_default(memory_repo: InMemoryQueueRepository) -> None:
    app = Flask(__name__)
    EmailCancel(app, repository=memory_repo)
    assert app.config["EMAIL_CANCEL_OPENAPI_URL"] is None
    assert EmailCancel.state(app).openapi_url is None
    response = app.test_client().get("/api/v1/email/openapi.json")
    assert response.status_code == 405
    assert (
        "/api/v1/email/openapi.json"
        not in EmailCancel.state(app).extension.openapi_spec(app)["paths"]
    )


@pytest.mark.parametrize("value", ["openapi.json", "/", "/docs/", "/<x>", 5])
def test_bad_openapi_url_is_refused(value: object) -> None:
    app = Flask(__name__)
    app.config["EMAIL_CANCEL_OPENAPI_URL"] = value
    with pytest.raises(ValueError, match="EMAIL_CANCEL_OPENAPI_URL"):
        EmailCancel(app, repository=InMemoryQueueRepository())


def test_missing_apispec_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "apispec", None)
    with pytest.raises(ImportError, match=r"flask-email-cancel\[openapi\]"):
        require_apispec()
    app = Flask(__name__)
    EmailCancel(app, repository=InMemoryQueueRepository())
    with pytest.raises(ImportError, match="apispec"):
        EmailCancel.state(app).extension.openapi_spec(app)
    served = Flask(__name__)
    served.config["EMAIL_CANCEL_OPENAPI_URL"] = OPENAPI_URL
    with pytest.raises(ImportError, match="apispec"):
        EmailCancel(served, repository=InMemoryQueueRepository())


def _failing(request_id: int, principal: Principal) -> int:
    raise RuntimeError("the database is down")


def _locked(request_id: int, principal: Principal) -> int:
    raise LockTimeout("a sender holds the entries")


AUTH = {"X-VoltMX-Authorization": TOKEN}

# (name, status, id, request keywords, expected message or None)
SCENARIOS: list[tuple[str, int, str, dict[str, Any], str | None]] = [
    ("cancelled", 200, str(BIG_ID), {"headers": AUTH}, None),
    ("cancelled-body-id", 200, str(BIG_ID), {"headers": AUTH, "json": {"id": str(BIG_ID)}}, None),
    ("nothing", 400, "42", {"headers": AUTH}, "No cancellable messages found"),
    ("malformed-id", 400, "x1", {"headers": AUTH}, "Malformed email request ID"),
    ("too-big-id", 400, str(MAX_REQUEST_ID + 1), {"headers": AUTH}, "Malformed email request ID"),
    ("malformed-body", 400, "42", {"headers": AUTH, "data": "{"}, "Malformed request body"),
    ("body-mismatch", 400, "42", {"headers": AUTH, "json": {"id": 43}}, "does not match"),
    ("no-credentials", 401, "42", {}, "Unauthorized request"),
    ("bad-credentials", 401, "42", {"headers": {"X-VoltMX-Authorization": "no"}}, "Unauthorized"),
    ("slash-in-id", 404, "a%2Fb", {"headers": AUTH}, "Not found"),
    ("too-large", 413, "42", {"headers": AUTH, "data": "x" * (64 * 1024 + 1)}, "too large"),
]


@pytest.mark.parametrize(
    ("status", "id", "kwargs", "message"),
    [pytest.param(*s[1:], id=s[0]) for s in SCENARIOS],
)
def test_every_answer_of_both_routes_conforms(
    client: FlaskClient,
    memory_repo: InMemoryQueueRepository,
    route: tuple[str, str],
    status: int,
    id: str,
    kwargs: dict[str, Any],
    message: str | None,
) -> None:
    memory_repo.add(BIG_ID, later())
    method, template = route
    response = client.open(template.format(id=id), method=method, **kwargs)
    assert response.status_code == status
    body = response.json
    assert body is not None and body["id"] == ""
    if message is not None:
        assert message in body["message"]


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "HEAD", "OPTIONS"])
def test_other_methods_conform(client: FlaskClient, route: tuple[str, str], method: str) -> None:
    allowed, template = route
    response = client.open(template.format(id=BIG_ID), method=method, headers=AUTH)
    assert response.status_code == (200 if method == "OPTIONS" else 405)
    assert response.headers["Allow"] == f"{allowed}, OPTIONS"


@pytest.mark.parametrize("path", ["/api/v1/email", "/api/v1/email/", "/api/v1/email/1/x/y"])
def test_unknown_paths_conform(client: FlaskClient, path: str) -> None:
    assert client.post(path, headers=AUTH).status_code == 404


def test_server_failure_conforms(route: tuple[str, str]) -> None:
    app = make_app(_failing, TokenHeaderAuth({TOKEN: "ops"}))
    method, template = route
    response = app.test_client().open(template.format(id=BIG_ID), method=method, headers=AUTH)
    assert response.status_code == 500
    assert response.json == {"id": "", "message": "Server failure to process request"}


def test_busy_entries_conform(route: tuple[str, str]) -> None:
    app = make_app(_locked, TokenHeaderAuth({TOKEN: "ops"}))
    method, template = route
    response = app.test_client().open(template.format(id=BIG_ID), method=method, headers=AUTH)
    assert response.status_code == 503
    assert response.headers["Retry-After"].isdigit()
    assert response.json == {"id": "", "message": EntriesBusy.description}


@pytest.mark.parametrize("name", ["basic", "bearer", "any-of"])
def test_challenges_conform(name: str, route: tuple[str, str]) -> None:
    app = make_app(InMemoryQueueRepository(), AUTHENTICATORS[name])
    method, template = route
    response = app.test_client().open(template.format(id=BIG_ID), method=method)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"]


def _forged(app: Flask, status: int, body: Any, **headers: str) -> TestResponse:
    """A real response to DELETE, with its status, body and headers replaced."""
    response = app.test_client().delete(f"/api/v1/email/{BIG_ID}")
    response.status_code = status
    response.set_data(json.dumps(body))
    response.headers.update(headers)
    return response


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        pytest.param(401, {"id": "", "message": 7}, {}, id="wrong-type"),
        pytest.param(401, {"id": "", "message": "x", "extra": 1}, {}, id="extra-property"),
        pytest.param(200, {"id": "", "message": "x", "request_id": 5}, {}, id="numeric-id"),
        pytest.param(418, {"id": "", "message": "x"}, {}, id="undocumented-status"),
        pytest.param(401, {"id": ""}, {}, id="missing-message"),
    ],
)
def test_the_check_rejects_what_the_document_does_not_allow(
    memory_repo: InMemoryQueueRepository, status: int, body: Any, headers: dict[str, str]
) -> None:
    app = make_app(memory_repo, TokenHeaderAuth({TOKEN: "ops"}))
    app.test_client_class = FlaskClient
    with pytest.raises(Exception):  # noqa: B017 - openapi-core's or an assertion
        check_response(app, _forged(app, status, body, **headers))


def test_host_schemas_are_described_whatever_their_names() -> None:
    class Error(Schema):
        id = fields.String(dump_default="")
        message = fields.String(required=True)
        code = fields.Integer()

    class CancelResponse(Schema):
        message = fields.String(required=True)

    app = Flask(__name__)
    EmailCancel(
        app,
        repository=InMemoryQueueRepository(),
        error_schema=Error(),
        response_schema=CancelResponse(),
    )
    spec = EmailCancel.state(app).extension.openapi_spec(app)
    validate(spec)
    schemas = spec["components"]["schemas"]
    assert set(schemas) == {"CancelBody", "CancelResponse", "Error"}
    assert "code" in schemas["Error"]["properties"]
    assert set(schemas["CancelResponse"]["properties"]) == {"message"}
