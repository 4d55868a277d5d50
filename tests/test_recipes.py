"""Each recipe of the documentation's "Mapping your tables" page and its
quickstart, run as written against SQLite: seeded with entries that must and
must not be cancelled, then cancelled through the HTTP API."""

from __future__ import annotations

import runpy
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_email_cancel import EmailCancel, Principal, TokenHeaderAuth

RECIPES = Path(__file__).resolve().parent.parent / "docs" / "recipes"
TOKEN = "s3cret-token"  # the quickstart's
REQUEST = 7131002087805116277
OTHER = 42


def run_recipe(name: str) -> dict[str, Any]:
    """Execute ``docs/recipes/<name>.py`` afresh and return its namespace."""
    return runpy.run_path(str(RECIPES / f"{name}.py"), run_name=f"recipe_{name}")


def utc(hours: float) -> datetime:
    """Now plus ``hours``, aware UTC."""
    return datetime.now(timezone.utc) + timedelta(hours=hours)


def naive(hours: float) -> datetime:
    """Now plus ``hours``, naive UTC (what a naive DateTime column holds)."""
    return utc(hours).replace(tzinfo=None)


def host_app(tmp_path: Path, recipe: dict[str, Any]) -> Flask:
    """A host app with the recipe's ``db`` and ``repository`` mounted."""
    app = Flask(__name__)
    app.config.update(TESTING=True, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'queue.db'}")
    recipe["db"].init_app(app)
    EmailCancel(
        app,
        repository=recipe["repository"],
        authenticator=TokenHeaderAuth({TOKEN: Principal(id="ops")}),
    )
    with app.app_context():
        recipe["db"].create_all()
    return app


def cancel(app: Flask, request_id: int, method: str) -> tuple[int, dict[str, Any]]:
    url = f"/api/v1/email/{request_id}" + ("/cancel" if method == "POST" else "")
    response = app.test_client().open(url, method=method, headers={"X-VoltMX-Authorization": TOKEN})
    assert response.json is not None
    return response.status_code, response.json


@pytest.fixture(params=["POST", "DELETE"])
def method(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


def assert_cancels(app: Flask, method: str, expected: int) -> None:
    status, body = cancel(app, REQUEST, method)
    assert (status, body.get("count")) == (200, expected), body
    assert body["message"] == (
        f"Cancelled {expected} Email entries of the EmailRequest with ID : {REQUEST}"
    )
    assert cancel(app, REQUEST, method) == (
        400,
        {"id": "", "message": "No cancellable messages found"},
    )


def test_quickstart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    # The quickstart's relative SQLite path lands in the instance folder of an
    # app without a module of its own: the current directory.
    monkeypatch.chdir(tmp_path)
    recipe = run_recipe("quickstart")
    app, db, entry = recipe["app"], recipe["db"], recipe["Entry"]
    app.config["TESTING"] = True
    with app.app_context():
        db.create_all()
        db.session.add_all(
            [entry(request_id=REQUEST, status="Initial", send_at=naive(2)) for _ in range(4)]
            + [
                entry(request_id=REQUEST, status="Initial", send_at=naive(-1)),
                entry(request_id=REQUEST, status="Submitted", send_at=naive(2)),
                entry(request_id=OTHER, status="Initial", send_at=naive(2)),
            ]
        )
        db.session.commit()
    assert_cancels(app, method, 4)
    with app.app_context():
        statuses = db.session.execute(sa.select(entry.status).order_by(entry.id)).scalars()
        assert list(statuses) == ["Cancelled"] * 4 + ["Initial", "Submitted", "Initial"]


def test_voltmx(tmp_path: Path, method: str) -> None:
    recipe = run_recipe("voltmx")
    app = host_app(tmp_path, recipe)
    db, request, entry = recipe["db"], recipe["EmailRequest"], recipe["EmailEntry"]
    with app.app_context():
        db.session.add_all([request(id=REQUEST, subject="Sale"), request(id=OTHER, subject="x")])
        db.session.add_all(
            [
                entry(request_id=REQUEST, recipient="a@example.com", scheduled_at=naive(2)),
                entry(request_id=REQUEST, recipient="b@example.com", scheduled_at=naive(3)),
                entry(request_id=REQUEST, recipient="c@example.com", scheduled_at=naive(-1)),
                entry(request_id=REQUEST, recipient="d@example.com", scheduled_at=None),
                entry(
                    request_id=REQUEST,
                    recipient="e@example.com",
                    status="Submitted",
                    scheduled_at=naive(2),
                ),
                entry(request_id=OTHER, recipient="f@example.com", scheduled_at=naive(2)),
            ]
        )
        db.session.commit()
    assert_cancels(app, method, 2)
    with app.app_context():
        rows = db.session.execute(
            sa.select(entry.recipient, entry.status, entry.updated_at).order_by(entry.id)
        ).all()
    assert [(r.recipient, r.status) for r in rows] == [
        ("a@example.com", "Cancelled"),
        ("b@example.com", "Cancelled"),
        ("c@example.com", "Initial"),
        ("d@example.com", "Initial"),
        ("e@example.com", "Submitted"),
        ("f@example.com", "Initial"),
    ]
    assert rows[0].updated_at is not None and rows[2].updated_at is None


def test_post_office(tmp_path: Path, method: str) -> None:
    recipe = run_recipe("post_office")
    app = host_app(tmp_path, recipe)
    table, queued, requeued = recipe["post_office_email"], recipe["QUEUED"], recipe["REQUEUED"]
    assert (recipe["SENT"], recipe["FAILED"], queued, requeued) == (0, 1, 2, 3)
    rows: list[dict[str, Any]] = [
        {"id": REQUEST, "status": queued, "scheduled_time": utc(2)},
        {"id": OTHER, "status": queued, "scheduled_time": utc(2)},
        {"id": 7, "status": requeued, "scheduled_time": utc(5)},
        {"id": 8, "status": recipe["SENT"], "scheduled_time": utc(2)},
        {"id": 9, "status": queued, "scheduled_time": utc(-2)},
        {"id": 10, "status": queued, "scheduled_time": None},
    ]
    with app.app_context():
        db = recipe["db"]
        db.session.execute(table.insert(), [{**r, "last_updated": utc(-3)} for r in rows])
        db.session.commit()
    # One row is one email: each request id names exactly one row.
    assert_cancels(app, method, 1)
    assert cancel(app, 7, method)[1]["count"] == 1
    for request_id in (8, 9, 10):
        assert cancel(app, request_id, method)[0] == 400
    with app.app_context():
        statuses = dict(db.session.execute(sa.select(table.c.id, table.c.status)).all())
    cancelled = recipe["CANCELLED"]
    assert statuses == {
        REQUEST: cancelled,
        OTHER: queued,
        7: cancelled,
        8: 0,
        9: queued,
        10: queued,
    }


def test_mailalchemy(tmp_path: Path, method: str) -> None:
    recipe = run_recipe("mailalchemy")
    app = host_app(tmp_path, recipe)
    db, email = recipe["db"], recipe["Email"]

    def row(batch: int, scheduled: float | None, sent: float | None = None) -> Any:
        return email(
            batch_id=batch,
            recipient="r@example.com",
            subject="Hi",
            scheduled_at=None if scheduled is None else naive(scheduled),
            sent_at=None if sent is None else naive(sent),
        )

    with app.app_context():
        db.session.add_all(
            [
                row(REQUEST, 2),
                row(REQUEST, 2),
                row(REQUEST, 2),
                row(REQUEST, -1),
                row(REQUEST, None),
            ]
            + [row(REQUEST, 2, sent=-0.5), row(OTHER, 2)]
        )
        db.session.commit()
    assert_cancels(app, method, 3)
    with app.app_context():
        stamped = db.session.execute(
            sa.select(email.cancelled_at.is_not(None)).order_by(email.id)
        ).scalars()
        assert list(stamped) == [True, True, True, False, False, False, False]


def test_mailer(tmp_path: Path, method: str) -> None:
    recipe = run_recipe("mailer")
    app = host_app(tmp_path, recipe)
    db, table = recipe["db"], recipe["mailer_message"]

    def row(request_id: int, send_after: float | None) -> dict[str, Any]:
        return {
            "message_data": "...",
            "when_added": naive(-1),
            "request_id": request_id,
            "send_after": None if send_after is None else naive(send_after),
        }

    with app.app_context():
        db.session.execute(
            table.insert(),
            [row(REQUEST, 2), row(REQUEST, 4), row(REQUEST, -1), row(REQUEST, None), row(OTHER, 2)],
        )
        db.session.commit()
    assert_cancels(app, method, 2)
    with app.app_context():
        left = db.session.execute(sa.select(table.c.request_id, table.c.priority)).all()
    assert sorted(left) == [(OTHER, 2), (REQUEST, 2), (REQUEST, 2)]
