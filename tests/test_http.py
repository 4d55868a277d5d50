"""The HTTP behaviour of both routes, as the spec and its clarifications say."""

from __future__ import annotations

import io
import logging

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_email_cancel import (
    EmailCancel,
    InMemoryQueueRepository,
    Principal,
    email_request_cancelled,
)
from flask_email_cancel.views import CONTENT_TYPE

from .conftest import BIG_ID, NOW, TENANT_TOKEN, later

MALFORMED = "Malformed email request ID: expected a decimal number from 1 to 9223372036854775807"
NOTHING = {"id": "", "message": "No cancellable messages found"}


def call(client: FlaskClient, route: tuple[str, str], rid: object, **kwargs: object):  # type: ignore[no-untyped-def]
    method, template = route
    return client.open(template.format(id=rid), method=method, **kwargs)


def test_cancels_pending_later_entries(client, route, memory_repo, auth_headers):
    for _ in range(4):
        memory_repo.add(BIG_ID, later())
    response = call(client, route, BIG_ID, headers=auth_headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == CONTENT_TYPE
    assert response.get_json() == {
        "id": "",
        "message": f"Cancelled 4 Email entries of the EmailRequest with ID : {BIG_ID}",
        "request_id": str(BIG_ID),
        "count": 4,
    }
    assert {e.status for e in memory_repo.entries(BIG_ID)} == {"cancelled"}


def test_big_id_round_trips_exactly_as_text(client, route, memory_repo, auth_headers):
    memory_repo.add(BIG_ID, later())
    memory_repo.add(BIG_ID + 1, later())
    raw = call(client, route, BIG_ID, headers=auth_headers).get_data(as_text=True)
    assert f'"request_id": "{BIG_ID}"' in raw
    assert raw.count(str(BIG_ID)) == 2
    assert [e.status for e in memory_repo.entries(BIG_ID + 1)] == ["pending"]


def test_only_the_requested_entries_are_touched(client, route, memory_repo, auth_headers):
    memory_repo.add(5, later())
    memory_repo.add(5, later())
    other = memory_repo.add(6, later())
    assert call(client, route, 5, headers=auth_headers).get_json()["count"] == 2
    assert memory_repo.entries(6) == [other]


def test_counts_only_cancellable_entries(client, route, memory_repo, auth_headers):
    memory_repo.add(9, later())
    memory_repo.add(9, later(1))
    memory_repo.add(9, NOW)  # due now: not "later"
    memory_repo.add(9, later(-1))
    memory_repo.add(9, None)  # as soon as possible
    memory_repo.add(9, later(), status="sent")
    response = call(client, route, 9, headers=auth_headers)
    assert response.status_code == 200
    assert response.get_json()["count"] == 2
    statuses = sorted(str(e.status) for e in memory_repo.entries(9))
    assert statuses == ["cancelled", "cancelled", "pending", "pending", "pending", "sent"]


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param([], id="unknown-id"),
        pytest.param([(later(), "sent"), (later(), "cancelled")], id="sent-or-cancelled"),
        pytest.param([(later(-5), "pending"), (NOW, "pending")], id="all-due"),
    ],
)
def test_nothing_cancellable_is_400(client, route, memory_repo, auth_headers, entries):
    for when, status in entries:
        memory_repo.add(42, when, status=status)
    before = memory_repo.entries()
    response = call(client, route, 42, headers=auth_headers)
    assert response.status_code == 400
    assert response.get_json() == NOTHING
    assert memory_repo.entries() == before


def test_second_cancel_is_400(client, route, memory_repo, auth_headers):
    memory_repo.add(77, later())
    assert call(client, route, 77, headers=auth_headers).status_code == 200
    second = call(client, route, 77, headers=auth_headers)
    assert second.status_code == 400
    assert second.get_json() == NOTHING


def test_other_tenants_rows_are_never_touched(client, route, memory_repo, auth_headers):
    memory_repo.add(11, later(), tenant="a")
    headers = {"X-VoltMX-Authorization": TENANT_TOKEN}
    response = call(client, route, 11, headers=headers)
    assert response.status_code == 400
    assert response.get_json() == NOTHING
    assert [e.status for e in memory_repo.entries(11)] == ["pending"]
    memory_repo.add(11, later(), tenant="b")
    assert call(client, route, 11, headers=headers).get_json()["count"] == 1


@pytest.mark.parametrize("rid", ["1", str(BIG_ID), "abc", "0", "-1", "x" * 5000])
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-credentials"),
        pytest.param({"X-VoltMX-Authorization": "wrong"}, id="wrong-token"),
        pytest.param({"Authorization": "Bearer t0ken-for-tests"}, id="other-scheme"),
    ],
)
def test_unauthenticated_is_401_whatever_the_id(client, route, memory_repo, rid, headers):
    memory_repo.add(1, later())
    response = call(client, route, rid, headers=headers)
    assert response.status_code == 401
    assert response.headers["Content-Type"] == CONTENT_TYPE
    assert response.get_json() == {"id": "", "message": "Unauthorized request"}
    assert [e.status for e in memory_repo.entries(1)] == ["pending"]


@pytest.mark.parametrize(
    "rid",
    [
        "0",
        "00",
        "-1",
        "+1",
        "1.0",
        "1e3",
        " 1",
        "abc",
        "0x10",
        "9223372036854775808",  # 2**63
        "99999999999999999999",
        "1" * 5000,  # longer than int() accepts without a limit error
        "\u0661\u0662",  # Arabic-Indic digits: str.isdigit() but not ASCII
        "\u00b2",  # superscript two
        "%00",
        "1%20",
    ],
)
def test_malformed_id_is_400(client, route, memory_repo, auth_headers, rid):
    memory_repo.add(1, later())
    response = call(client, route, rid, headers=auth_headers)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == CONTENT_TYPE
    assert response.get_json() == {"id": "", "message": MALFORMED}
    assert [e.status for e in memory_repo.entries(1)] == ["pending"]


@pytest.mark.parametrize(
    ("rid", "value"),
    [("1", 1), ("9223372036854775807", 2**63 - 1), ("0007", 7)],
)
def test_boundary_ids_are_accepted(client, route, memory_repo, auth_headers, rid, value):
    memory_repo.add(value, later())
    response = call(client, route, rid, headers=auth_headers)
    assert response.status_code == 200
    assert response.get_json()["request_id"] == str(value)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({}, id="no-body"),
        pytest.param({"data": b""}, id="empty"),
        pytest.param({"data": b"  \n"}, id="whitespace"),
        pytest.param({"json": {}}, id="empty-object"),
        pytest.param({"json": {"id": str(BIG_ID)}}, id="same-id-string"),
        pytest.param({"json": {"id": BIG_ID}}, id="same-id-number"),
        pytest.param({"json": {"id": ""}}, id="spec-sample-empty-id"),
        pytest.param({"json": {"id": None, "note": "x"}}, id="null-id"),
        pytest.param({"json": [1, 2]}, id="array"),
        pytest.param({"json": "text"}, id="string"),
        pytest.param({"data": b"{}", "content_type": "text/plain"}, id="any-content-type"),
    ],
)
def test_optional_body_is_accepted(client, route, memory_repo, auth_headers, kwargs):
    memory_repo.add(BIG_ID, later())
    response = call(client, route, BIG_ID, headers=auth_headers, **kwargs)
    assert response.status_code == 200
    assert response.get_json()["count"] == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param(
            {"data": b"{not json", "content_type": "application/json"},
            "Malformed request body: expected no body or a JSON document",
            id="malformed-json",
        ),
        pytest.param(
            {"data": b"\xff\xfe\x00", "content_type": "application/json"},
            "Malformed request body: expected no body or a JSON document",
            id="not-utf8",
        ),
        pytest.param(
            {"data": b"[" * 100_000 + b"]" * 100_000},
            "Request body too large",
            id="too-large",
        ),
        pytest.param(
            {"data": b"[" * 30_000 + b"]" * 30_000},
            "Malformed request body: expected no body or a JSON document",
            id="nested-too-deep",
        ),
        pytest.param(
            {"json": {"id": "1"}},
            "The id in the request body does not match the email request ID in the path",
            id="other-id",
        ),
        pytest.param(
            {"json": {"id": "abc"}},
            "The id in the request body does not match the email request ID in the path",
            id="malformed-body-id",
        ),
        pytest.param(
            {"json": {"id": True}},
            "The id in the request body does not match the email request ID in the path",
            id="boolean-id",
        ),
    ],
)
def test_bad_body_is_a_clear_error_and_changes_nothing(
    client, route, memory_repo, auth_headers, kwargs, message
):
    memory_repo.add(BIG_ID, later())
    response = call(client, route, BIG_ID, headers=auth_headers, **kwargs)
    assert response.status_code in (400, 413)
    assert response.headers["Content-Type"] == CONTENT_TYPE
    assert response.get_json() == {"id": "", "message": message}
    assert [e.status for e in memory_repo.entries(BIG_ID)] == ["pending"]


def test_body_size_limit_follows_config(memory_repo, auth_headers):
    app = Flask(__name__)
    app.config["EMAIL_CANCEL_MAX_BODY_SIZE"] = 4
    EmailCancel(app, repository=memory_repo, authenticator=lambda request: Principal("x"))
    memory_repo.add(3, later())
    client = app.test_client()
    assert client.post("/api/v1/email/3/cancel", data=b"{ }  ").status_code == 413
    assert client.post("/api/v1/email/3/cancel", data=b"{  }").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/api/v1/email/1/cancel", "POST, OPTIONS"),
        ("PUT", "/api/v1/email/1/cancel", "POST, OPTIONS"),
        ("DELETE", "/api/v1/email/1/cancel", "POST, OPTIONS"),
        ("HEAD", "/api/v1/email/1/cancel", "POST, OPTIONS"),
        ("GET", "/api/v1/email/1", "DELETE, OPTIONS"),
        ("POST", "/api/v1/email/1", "DELETE, OPTIONS"),
        ("PATCH", "/api/v1/email/1", "DELETE, OPTIONS"),
        ("PROPFIND", "/api/v1/email/1", "DELETE, OPTIONS"),
    ],
)
def test_other_methods_are_json_405_with_allow(
    client, memory_repo, auth_headers, method, path, allow
):
    memory_repo.add(1, later())
    response = client.open(path, method=method, headers=auth_headers)
    assert response.status_code == 405
    assert response.headers["Allow"] == allow
    assert response.headers["Content-Type"] == CONTENT_TYPE
    if method != "HEAD":
        assert response.get_json() == {"id": "", "message": "Method not allowed"}
    assert [e.status for e in memory_repo.entries(1)] == ["pending"]


@pytest.mark.parametrize("path", ["/api/v1/email/1/cancel", "/api/v1/email/1"])
def test_options_answers_allow_without_credentials(client, path):
    response = client.options(path)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == CONTENT_TYPE
    assert "OPTIONS" in response.headers["Allow"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/email",
        "/api/v1/email/",
        "/api/v1/email/1/cancel/",
        "/api/v1/email/1/",
        "/api/v1/email/1/cancel/extra",
        "/api/v1/email/1/2/3",
        "/api/v1/email/1/uncancel",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "PUT"])
def test_unknown_sub_paths_are_json_404(client, auth_headers, path, method):
    response = client.open(path, method=method, headers=auth_headers)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == CONTENT_TYPE
    assert response.get_json() == {"id": "", "message": "Not found"}


def test_host_routes_and_error_pages_are_untouched(app, client):
    @app.get("/hello")
    def hello() -> str:
        return "hi"

    @app.get("/boom")
    def boom() -> str:
        raise ValueError("host bug")

    app.config["TESTING"] = False
    app.config["PROPAGATE_EXCEPTIONS"] = False
    assert client.get("/hello").get_data(as_text=True) == "hi"
    missing = client.get("/nope")
    assert missing.status_code == 404
    assert missing.mimetype == "text/html"
    wrong_method = client.post("/hello")
    assert wrong_method.status_code == 405
    assert wrong_method.mimetype == "text/html"
    failure = client.get("/boom")
    assert failure.status_code == 500
    assert failure.mimetype == "text/html"


def test_repository_failure_is_json_500_logged_without_details(auth_headers, caplog):
    def broken(request_id: int, principal: Principal) -> int:
        raise RuntimeError("password=hunter2 postgresql://secret@db")

    app = Flask(__name__)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    EmailCancel(app, repository=broken, authenticator=lambda request: Principal("x"))
    with caplog.at_level(logging.ERROR, logger=app.logger.name):
        response = app.test_client().post("/api/v1/email/5/cancel", headers=auth_headers)
    assert response.status_code == 500
    assert response.headers["Content-Type"] == CONTENT_TYPE
    assert response.get_json() == {"id": "", "message": "Server failure to process request"}
    assert "hunter2" not in response.get_data(as_text=True)
    assert any("hunter2" in (r.exc_text or "") for r in caplog.records)


def test_authenticator_failure_is_json_500(auth_headers):
    def broken(request: object) -> Principal:
        raise KeyError("boom")

    app = Flask(__name__)
    EmailCancel(app, repository=lambda rid, p: 1, authenticator=broken)
    response = app.test_client().post("/api/v1/email/5/cancel")
    assert response.status_code == 500
    assert response.get_json()["message"] == "Server failure to process request"


def test_signal_is_sent_after_a_cancel(app, client, route, memory_repo, auth_headers):
    memory_repo.add(BIG_ID, later())
    memory_repo.add(BIG_ID, later())
    seen: list[tuple[object, dict[str, object]]] = []

    def receiver(sender: object, **kwargs: object) -> None:
        seen.append((sender, kwargs))

    with email_request_cancelled.connected_to(receiver):
        call(client, route, BIG_ID, headers=auth_headers)
        call(client, route, BIG_ID, headers=auth_headers)  # nothing left: no signal
    assert seen == [(app, {"request_id": BIG_ID, "count": 2, "principal": Principal(id="ops")})]


def test_failing_signal_receiver_does_not_undo_the_answer(
    app, client, memory_repo, auth_headers, caplog
):
    memory_repo.add(8, later())

    def receiver(sender: object, **kwargs: object) -> None:
        raise RuntimeError("receiver bug")

    with email_request_cancelled.connected_to(receiver), caplog.at_level(logging.ERROR):
        response = client.post("/api/v1/email/8/cancel", headers=auth_headers)
    assert response.status_code == 200
    assert any("receiver bug" in (r.exc_text or "") for r in caplog.records)


def test_custom_schemas_shape_the_bodies(memory_repo):
    from marshmallow import Schema, fields

    class Response(Schema):
        message = fields.String()
        emailRequestId = fields.String(attribute="request_id")

    class Error(Schema):
        error = fields.String(attribute="message")

    app = Flask(__name__)
    EmailCancel(
        app,
        repository=memory_repo,
        authenticator=lambda request: Principal("x"),
        response_schema=Response(),
        error_schema=Error(),
    )
    memory_repo.add(BIG_ID, later())
    client = app.test_client()
    ok = client.post(f"/api/v1/email/{BIG_ID}/cancel")
    assert ok.get_json() == {
        "message": f"Cancelled 1 Email entries of the EmailRequest with ID : {BIG_ID}",
        "emailRequestId": str(BIG_ID),
    }
    assert client.post(f"/api/v1/email/{BIG_ID}/cancel").get_json() == {
        "error": "No cancellable messages found"
    }


def test_repository_is_not_called_for_rejected_requests(auth_headers):
    calls: list[int] = []

    def repo(request_id: int, principal: Principal) -> int:
        calls.append(request_id)
        return 0

    app = Flask(__name__)
    EmailCancel(
        app,
        repository=repo,
        authenticator=lambda r: Principal("x") if r.headers.get("ok") else None,
    )
    client = app.test_client()
    client.post("/api/v1/email/5/cancel")
    client.post("/api/v1/email/abc/cancel", headers={"ok": "1"})
    client.post("/api/v1/email/5/cancel", headers={"ok": "1"}, json={"id": 6})
    assert calls == []
    assert client.post("/api/v1/email/5/cancel", headers={"ok": "1"}).status_code == 400
    assert calls == [5]


def test_in_memory_repository_is_thread_safe(clock):
    import threading

    repo = InMemoryQueueRepository(clock=clock)
    for rid in range(50):
        for _ in range(20):
            repo.add(rid, later())
    counts: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for rid in range(50):
            n = repo.cancel(rid, Principal("x"))
            with lock:
                counts.append(n)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts) == 1000
    assert sorted(n for n in counts if n) == [20] * 50


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/email//cancel",
        "/api/v1/email/1//cancel",
        "/api/v1/email///",
        "/api/v1/email/%2F/cancel",
    ],
)
def test_doubled_slashes_are_json_404_not_redirects(client, auth_headers, path):
    response = client.post(path, headers=auth_headers)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == CONTENT_TYPE


def test_locked_entries_are_503_with_retry_after(route, auth_headers):
    from flask_email_cancel.exceptions import LockTimeout

    def busy(request_id: int, principal: Principal) -> int:
        raise LockTimeout("row locked")

    app = Flask(__name__)
    EmailCancel(app, repository=busy, authenticator=lambda request: Principal("x"))
    response = call(app.test_client(), route, 5, headers=auth_headers)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.headers["Content-Type"] == CONTENT_TYPE
    assert response.get_json() == {
        "id": "",
        "message": "Email entries of this request are being sent; try again later",
    }


def test_chunked_body_is_read_and_checked(client, route, memory_repo, auth_headers):
    memory_repo.add(BIG_ID, later())
    method, template = route
    url = template.format(id=BIG_ID)
    headers = {**auth_headers, "Transfer-Encoding": "chunked"}
    # A server that de-chunks the body says so with wsgi.input_terminated.
    terminated = {"wsgi.input_terminated": True}
    mismatch = client.open(
        url,
        method=method,
        headers=headers,
        input_stream=io.BytesIO(b'{"id": 1}'),
        environ_overrides=terminated,
    )
    assert mismatch.status_code == 400
    assert [e.status for e in memory_repo.entries(BIG_ID)] == ["pending"]
    same = client.open(
        url,
        method=method,
        headers=headers,
        input_stream=io.BytesIO(b'{"id": "%d"}' % BIG_ID),
        environ_overrides=terminated,
    )
    assert same.status_code == 200
