"""A small host app with its own email queue table, served by flask-email-cancel.

Run it (SQLite, seeded) with::

    python examples/app.py

and cancel the seeded request it names::

    curl -X POST -H 'X-VoltMX-Authorization: <token>' \\
        http://127.0.0.1:5000/api/v1/email/7131002087805116277/cancel
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime, timedelta, timezone

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import BigInteger, DateTime, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_email_cancel import EmailCancel, Principal, SQLAlchemyQueueRepository, TokenHeaderAuth


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class EmailEntry(db.Model):  # type: ignore[name-defined,misc]
    """One recipient of an email request, as the host app already stores it."""

    __tablename__ = "email_entry"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(BigInteger, index=True)
    address: Mapped[str] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(16), default="Initial")
    scheduled_at: Mapped[datetime | None] = mapped_column(DateTime)  # naive UTC
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)


SEEDED_REQUEST = 7131002087805116277


def create_app() -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get(
        "EXAMPLE_DATABASE_URL", f"sqlite:///{os.path.join(app.instance_path, 'queue.db')}"
    )
    db.init_app(app)
    token = os.environ.get("EXAMPLE_TOKEN") or secrets.token_urlsafe(16)
    app.config["EXAMPLE_TOKEN"] = token
    EmailCancel(
        app,
        repository=SQLAlchemyQueueRepository(
            db,
            EmailEntry,
            request_id="request_id",
            status="status",
            scheduled_at="scheduled_at",
            cancellable=["Initial"],
            cancelled="Cancelled",
            cancelled_at="updated_at",
        ),
        authenticator=TokenHeaderAuth({token: Principal(id="operator")}),
    )
    return app


def seed() -> None:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    db.session.query(EmailEntry).delete()
    for n in range(4):
        db.session.add(
            EmailEntry(
                request_id=SEEDED_REQUEST,
                address=f"user{n}@example.com",
                scheduled_at=now + timedelta(hours=2),
            )
        )
    db.session.add(
        EmailEntry(request_id=SEEDED_REQUEST, address="sent@example.com", status="Submitted",
                   scheduled_at=now - timedelta(hours=1))
    )
    db.session.commit()


if __name__ == "__main__":
    app = create_app()
    with app.app_context():
        db.create_all()
        seed()
    token = app.config["EXAMPLE_TOKEN"]
    print(
        "Cancel the seeded request with:\n"
        f"  curl -X POST -H 'X-VoltMX-Authorization: {token}' "
        f"http://127.0.0.1:5000/api/v1/email/{SEEDED_REQUEST}/cancel\n",
        flush=True,
    )
    app.run(host="127.0.0.1", port=5000)
