"""A host app written only from the public contract: its own two-table schema,
integer status codes, naive UTC timestamps and its own header-token check."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from flask import Flask, Request
from flask_sqlalchemy import SQLAlchemy

from flask_email_cancel import (
    EmailCancel,
    Principal,
    SQLAlchemyQueueRepository,
    email_request_cancelled,
)

QUEUED, SENT, FAILED, CANCELLED = 10, 20, 30, 40
REQUEST = 7131002087805116277


@pytest.fixture
def host(tmp_path):  # type: ignore[no-untyped-def]
    app = Flask("host")
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path}/host.db"
    db = SQLAlchemy(app)

    class MailRequest(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "mail_request"
        id = db.Column(db.BigInteger, primary_key=True, autoincrement=False)
        subject = db.Column(db.String(200), nullable=False)
        account = db.Column(db.String(40), nullable=False)

    class MailRecipient(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "mail_recipient"
        id = db.Column(db.Integer, primary_key=True)
        mail_request_id = db.Column(db.BigInteger, db.ForeignKey("mail_request.id"), index=True)
        address = db.Column(db.String(254), nullable=False)
        state = db.Column(db.SmallInteger, nullable=False, default=QUEUED)
        deliver_after = db.Column(db.DateTime)  # naive UTC
        changed = db.Column(db.DateTime)
        account = db.Column(db.String(40), nullable=False)

    api_keys = {"key-acme": "acme", "key-globex": "globex"}

    def check_key(request: Request) -> Principal | None:
        account = api_keys.get(request.headers.get("X-Api-Key", ""))
        return Principal(id=f"{account}-api", tenant=account) if account else None

    EmailCancel(
        app,
        repository=SQLAlchemyQueueRepository(
            db,
            MailRecipient,
            request_id="mail_request_id",
            status="state",
            scheduled_at="deliver_after",
            cancellable=[QUEUED],
            cancelled=CANCELLED,
            cancelled_at="changed",
            tenant="account",
        ),
        authenticator=check_key,
    )
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    with app.app_context():
        db.create_all()
        db.session.add(MailRequest(id=REQUEST, subject="Launch", account="acme"))
        db.session.add_all(
            [
                MailRecipient(
                    mail_request_id=REQUEST,
                    address=f"r{n}@acme.test",
                    deliver_after=now + timedelta(hours=3),
                    account="acme",
                )
                for n in range(4)
            ]
            + [
                MailRecipient(
                    mail_request_id=REQUEST,
                    address="done@acme.test",
                    state=SENT,
                    deliver_after=now - timedelta(minutes=5),
                    account="acme",
                ),
                MailRecipient(
                    mail_request_id=REQUEST,
                    address="due@acme.test",
                    deliver_after=now - timedelta(seconds=30),
                    account="acme",
                ),
            ]
        )
        db.session.commit()
    return app, db, MailRecipient


def states(app, db, model):  # type: ignore[no-untyped-def]
    with app.app_context():
        return sorted(r.state for r in db.session.scalars(db.select(model)))


def test_host_app_cancels_its_own_queue(host):
    app, db, MailRecipient = host
    client = app.test_client()
    seen: list[dict[str, object]] = []
    with email_request_cancelled.connected_to(lambda sender, **kw: seen.append(kw), app):
        other = client.post(f"/api/v1/email/{REQUEST}/cancel", headers={"X-Api-Key": "key-globex"})
        assert other.status_code == 400
        assert other.get_json() == {"id": "", "message": "No cancellable messages found"}
        assert states(app, db, MailRecipient) == [QUEUED] * 5 + [SENT]

        assert client.delete(f"/api/v1/email/{REQUEST}").status_code == 401

        ok = client.delete(f"/api/v1/email/{REQUEST}", headers={"X-Api-Key": "key-acme"})
        assert ok.status_code == 200
        assert ok.get_json()["message"] == (
            f"Cancelled 4 Email entries of the EmailRequest with ID : {REQUEST}"
        )
        assert states(app, db, MailRecipient) == [QUEUED, SENT] + [CANCELLED] * 4

        again = client.post(f"/api/v1/email/{REQUEST}/cancel", headers={"X-Api-Key": "key-acme"})
        assert again.status_code == 400
    assert seen == [
        {"request_id": REQUEST, "count": 4, "principal": Principal("acme-api", tenant="acme")}
    ]
    with app.app_context():
        stamps = {r.changed for r in db.session.scalars(db.select(MailRecipient)) if r.changed}
    assert len(stamps) == 1
    (stamp,) = stamps
    assert stamp.tzinfo is None
    assert abs(datetime.now(timezone.utc).replace(tzinfo=None) - stamp) < timedelta(minutes=5)
