"""Email Queue: a host app with email queue tables of its own, onto which
flask-email-cancel mounts the Cancel Email API.

The app stores each email request in ``email_request`` and each of its
recipients in ``email_entry``, with Volt MX's statuses (Initial, Submitted,
Undelivered, Rejected, Cancelled, Opened). A dispatcher sends the due entries;
the API cancels the Initial entries scheduled later; ``/queue`` shows the queue
like Volt MX's Settings > Status > Email Queue, with a Cancel button per request.

Run it: it creates and seeds a SQLite database in ``examples/instance/``,
prints its token, and serves on http://127.0.0.1:5000::

    python examples/app.py

Then cancel the seeded request with the token it printed::

    $ curl -X POST -H 'X-VoltMX-Authorization: <token>' \\
        http://127.0.0.1:5000/api/v1/email/7131002087805116277/cancel
    {"id": "", "message": "Cancelled 4 Email entries of the EmailRequest with ID :
    7131002087805116277", "request_id": "7131002087805116277", "count": 4}

    $ curl -X DELETE -H 'X-VoltMX-Authorization: <token>' \\
        http://127.0.0.1:5000/api/v1/email/7131002087805116277
    {"id": "", "message": "No cancellable messages found"}

or open http://127.0.0.1:5000/queue and press Cancel. Through the Flask CLI::

    export FLASK_APP=examples/app.py EXAMPLE_TOKEN=s3cret-token
    flask init-db                       # create the tables
    flask seed                          # replace their rows with the sample queue
    flask send-due --loop               # the dispatcher; Ctrl-C stops it
    flask run                           # the API and /queue
    flask email-cancel check            # the library's own set-up check
    flask email-cancel cancel 7131002087805116277

Settings, from the environment:

``EXAMPLE_DATABASE_URL``
    Any SQLAlchemy URL; default ``sqlite:///`` ``instance/queue.db``.
    ``python examples/app.py`` and ``flask seed`` replace the rows of the two
    tables: never point it at a database you care about.
``EXAMPLE_TOKEN``
    The ``X-VoltMX-Authorization`` token; default a new random one per start.
``EXAMPLE_OUTBOX``
    The file the dispatcher "sends" to, one line per email; default
    ``instance/outbox.log``.
``EXAMPLE_PORT``
    The port ``python examples/app.py`` listens on (on 127.0.0.1); default 5000.

``/queue`` puts the token into the page for its Cancel buttons, so it is
served to loopback clients only: in a real deployment it would sit behind the
host's own login.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import time
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import click
from flask import Blueprint, Flask, abort, current_app, jsonify, redirect, render_template, request
from flask.typing import ResponseReturnValue
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    select,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload

from flask_email_cancel import (
    EmailCancel,
    Principal,
    QueueClaimer,
    SQLAlchemyQueueRepository,
    TokenHeaderAuth,
)

STATUSES = ("Initial", "Submitted", "Undelivered", "Rejected", "Cancelled", "Opened")
"""Volt MX's email entry statuses. Only Initial entries scheduled later can be cancelled."""
SENDING = "Sending"
"""The dispatcher's own status for an entry it has claimed and is handing to
the mail server: not one of Volt MX's, and held for as long as one send takes."""
CLAIMER_KEY = "email_queue_claimer"
RECIPIENT_TYPES = ("TO", "CC", "BCC")
TOKEN_HEADER = "X-VoltMX-Authorization"
_HERE = os.path.dirname(os.path.abspath(__file__))
SEEDED_REQUEST = 7131002087805116277
"""The seeded request the start-up ``curl`` cancels: 4 Initial entries two hours ahead."""


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)

# SQLite gives rowids only to INTEGER primary keys; other databases get a BIGINT.
MailId = BigInteger().with_variant(Integer, "sqlite")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class EmailRequest(db.Model):  # type: ignore[name-defined,misc]
    """One email as the app's users submitted it: a subject and its recipients."""

    __tablename__ = "email_request"
    # Volt MX request ids are Java longs, up to 2**63-1: not JavaScript-safe numbers.
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    subject: Mapped[str] = mapped_column(String(255))
    sender: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(DateTime)  # naive UTC
    entries: Mapped[list[EmailEntry]] = relationship(
        back_populates="request", order_by="EmailEntry.mail_id"
    )


class EmailEntry(db.Model):  # type: ignore[name-defined,misc]
    """One recipient of an email request: what the dispatcher sends and the
    Cancel Email API cancels."""

    __tablename__ = "email_entry"
    __table_args__ = (
        CheckConstraint(_in("status", (*STATUSES, SENDING)), name="ck_email_entry_status"),
        CheckConstraint(_in("recipient_type", RECIPIENT_TYPES), name="ck_email_entry_type"),
        # The dispatcher's query: due entries of one status.
        Index("ix_email_entry_status_scheduled", "status", "scheduled_at"),
    )
    mail_id: Mapped[int] = mapped_column(MailId, primary_key=True)
    # Indexed: every cancel looks entries up by their request id.
    request_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("email_request.id"), index=True)
    subject: Mapped[str] = mapped_column(String(255))
    address: Mapped[str] = mapped_column(String(254))
    recipient_type: Mapped[str] = mapped_column(String(3), default="TO")
    status: Mapped[str] = mapped_column(String(16), default="Initial")
    # Naive UTC; NULL means "as soon as possible".
    scheduled_at: Mapped[datetime | None] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    request: Mapped[EmailRequest] = relationship(back_populates="entries")


def utcnow() -> datetime:
    """Now, as the tables store it: naive UTC."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def create_app(
    test_config: Mapping[str, Any] | None = None, *, instance_path: str | None = None
) -> Flask:
    """The app factory ``flask --app examples/app.py`` finds."""
    # One instance folder however the app is started (python or flask, from
    # any directory), so that every command sees the same database.
    app = Flask(
        __name__,
        instance_path=instance_path or os.path.join(_HERE, "instance"),
        instance_relative_config=True,
    )
    app.config.from_mapping(
        SQLALCHEMY_DATABASE_URI=os.environ.get("EXAMPLE_DATABASE_URL")
        or f"sqlite:///{os.path.join(app.instance_path, 'queue.db')}",
        EXAMPLE_TOKEN=os.environ.get("EXAMPLE_TOKEN") or secrets.token_urlsafe(18),
        EXAMPLE_OUTBOX=os.environ.get("EXAMPLE_OUTBOX")
        or os.path.join(app.instance_path, "outbox.log"),
    )
    if test_config is not None:
        app.config.from_mapping(test_config)
    os.makedirs(app.instance_path, exist_ok=True)
    db.init_app(app)
    repository = SQLAlchemyQueueRepository(
        db,
        EmailEntry,
        request_id="request_id",
        scheduled_at="scheduled_at",
        status="status",
        cancellable=["Initial"],
        cancelled="Cancelled",
        cancelled_at="updated_at",
    )
    # The dispatcher claims with the same mapping the cancel uses.
    app.extensions[CLAIMER_KEY] = QueueClaimer(repository, sending=SENDING, sent="Submitted")
    EmailCancel(
        app,
        repository=repository,
        authenticator=TokenHeaderAuth(
            {app.config["EXAMPLE_TOKEN"]: Principal(id="operator")}, header=TOKEN_HEADER
        ),
    )
    app.register_blueprint(pages)
    for command in (init_db_command, seed_command, send_due_command):
        app.cli.add_command(command)
    return app


# --- Seed data -------------------------------------------------------------

_PEOPLE = [
    "ana.silva", "bram.de.vries", "chen.wei", "dana.okafor", "emil.novak", "fatima.zahra",
    "gustavo.reyes", "hana.sato", "ines.moreau", "jonas.berg", "kavya.iyer", "liam.walsh",
    "mei.lin", "nils.andersen", "olga.petrova", "priya.nair", "quentin.roux", "rosa.garcia",
]  # fmt: skip


def _addresses(count: int, domain: str, start: int = 0) -> list[str]:
    return [f"{_PEOPLE[(start + n) % len(_PEOPLE)]}@{domain}" for n in range(count)]


Recipient = tuple[str, str, "timedelta | None", str]
"""(address, recipient type, scheduled in (None: as soon as possible), status)."""
SampleRequest = tuple[int, str, str, timedelta, list[Recipient]]
"""(request id, subject, sender, created ago, recipients)."""


def _sample_queue() -> list[SampleRequest]:
    hour, minute = timedelta(hours=1), timedelta(minutes=1)
    newsletter = [
        (address, "TO" if n < 12 else ("CC" if n < 14 else "BCC"), 6 * hour, "Initial")
        for n, address in enumerate(_addresses(16, "example.org", 2))
    ]
    return [
        (SEEDED_REQUEST, "Your May statement is ready", "billing@example.com", 10 * minute, [
            ("ana.silva@example.com", "TO", 2 * hour, "Initial"),
            ("bram.de.vries@example.com", "TO", 2 * hour, "Initial"),
            ("chen.wei@example.com", "CC", 2 * hour, "Initial"),
            ("audit@example.com", "BCC", 2 * hour, "Initial"),
            ("no-such-mailbox@example", "TO", 2 * hour, "Rejected"),
        ]),
        (7131002091346620418, "Your password reset code", "security@example.com", 2 * minute, [
            ("dana.okafor@example.net", "TO", None, "Initial"),
        ]),
        (7131002094418874369, "Weekly product newsletter", "news@example.org", 30 * minute,
         newsletter),
        (7131002098977411072, "Order #48213 has shipped", "shop@example.com", 4 * hour, [
            ("emil.novak@example.com", "TO", -3 * hour, "Opened"),
            ("fatima.zahra@example.com", "TO", -3 * hour, "Opened"),
            ("gustavo.reyes@example.com", "TO", -3 * hour, "Submitted"),
            ("warehouse@example.com", "CC", -3 * hour, "Submitted"),
            ("hana.sato@example.invalid", "TO", -3 * hour, "Undelivered"),
        ]),
        (7131002102235193345, "Planned maintenance tonight", "ops@example.com", 20 * minute, [
            ("ines.moreau@example.com", "TO", -5 * minute, "Initial"),
            ("jonas.berg@example.com", "TO", -5 * minute, "Initial"),
            ("oncall@example.com", "CC", -5 * minute, "Initial"),
        ]),
        (7131002106604109825, "Webinar reminder", "events@example.com", hour, [
            (address, "TO", hour, "Cancelled") for address in _addresses(4, "example.net", 9)
        ]),
        (2**63 - 1, "Year-end report", "finance@example.com", 5 * minute, [
            ("kavya.iyer@example.com", "TO", 24 * hour, "Initial"),
            ("liam.walsh@example.com", "CC", 24 * hour, "Initial"),
            ("board@example.com", "BCC", 24 * hour, "Initial"),
        ]),
    ]  # fmt: skip


def seed_queue(now: datetime | None = None) -> tuple[int, int]:
    """Replace the queue's rows with a realistic mix, scheduled around ``now``
    (naive UTC): requests with many recipients, some due, some sent, some
    hours ahead. Returns (requests, entries)."""
    now = now or utcnow()
    sample = _sample_queue()
    db.session.execute(EmailEntry.__table__.delete())
    db.session.execute(EmailRequest.__table__.delete())
    entries = 0
    for request_id, subject, sender, age, recipients in sample:
        created = now - age
        db.session.add(
            EmailRequest(id=request_id, subject=subject, sender=sender, created_at=created)
        )
        for address, recipient_type, send_in, status in recipients:
            scheduled = None if send_in is None else now + send_in
            sent = status in ("Submitted", "Opened", "Undelivered")
            db.session.add(
                EmailEntry(
                    request_id=request_id,
                    subject=subject,
                    address=address,
                    recipient_type=recipient_type,
                    status=status,
                    scheduled_at=scheduled,
                    updated_at=scheduled if sent and scheduled else created,
                )
            )
            entries += 1
    db.session.commit()
    return len(sample), entries


# --- The dispatcher ----------------------------------------------------------


def deliver(entry: Any, outbox: str, now: datetime) -> None:
    """ "Send" one email: append a line for it to the outbox file."""
    line = (
        f"{now.isoformat(timespec='seconds')}Z mail_id={entry.mail_id} "
        f"request_id={entry.request_id} {entry.recipient_type} {entry.address} "
        f"subject={entry.subject!r}\n"
    )
    with open(outbox, "a", encoding="utf-8") as file:
        file.write(line)


def send_due(batch: int = 100) -> tuple[int, int]:
    """Claim every due Initial entry, send it, and mark it Submitted (or
    Undelivered when the outbox cannot be written); return (sent, undelivered).

    The claim flips entries from Initial to Sending in a transaction of its
    own before anything is sent, and the outcome is written only where the
    entry is still Sending: a cancel (which touches Initial entries only) and
    this dispatcher never both get an entry, and neither do two dispatchers.
    A dispatcher that dies between the two leaves its entries in Sending, to
    be looked at by hand, rather than sending them twice.
    """
    claimer: QueueClaimer = current_app.extensions[CLAIMER_KEY]
    outbox = current_app.config["EXAMPLE_OUTBOX"]
    sent = undelivered = 0
    while entries := claimer.claim(limit=batch):
        now = utcnow()
        finished = []
        for entry in entries:
            try:
                deliver(entry, outbox, now)
            except OSError:
                current_app.logger.exception("could not send mail %s", entry.mail_id)
                if claimer.finish(entry.mail_id, "Undelivered"):
                    finished.append(entry.mail_id)
                    undelivered += 1
                continue
            if claimer.finish(entry.mail_id):
                finished.append(entry.mail_id)
                sent += 1
        db.session.execute(
            update(EmailEntry.__table__)
            .where(EmailEntry.mail_id.in_(finished))
            .values(updated_at=now)
        )
        db.session.commit()
    return sent, undelivered


# --- CLI commands ------------------------------------------------------------


@click.command("init-db")
@click.option("--drop", is_flag=True, help="Drop the queue tables first.")
def init_db_command(drop: bool) -> None:
    """Create the email queue tables."""
    if drop:
        db.drop_all()
    db.create_all()
    click.echo(f"Created the email queue tables in {db.engine.url.render_as_string()}")


@click.command("seed")
def seed_command() -> None:
    """Replace the queue's rows with a realistic sample, scheduled around now."""
    db.create_all()
    requests, entries = seed_queue()
    click.echo(f"Seeded {requests} email requests with {entries} entries.")
    click.echo(f"Request {SEEDED_REQUEST} has 4 entries you can cancel, due in two hours.")


@click.command("send-due")
@click.option("--loop", is_flag=True, help="Keep sending as entries fall due; Ctrl-C stops.")
@click.option(
    "--interval", default=5.0, show_default=True, help="Seconds between rounds with --loop."
)
def send_due_command(loop: bool, interval: float) -> None:
    """Send the due Initial entries to the outbox file, marking them Submitted."""
    outbox = current_app.config["EXAMPLE_OUTBOX"]
    if loop:
        click.echo(f"Sending due entries to {outbox} every {interval:g}s; Ctrl-C stops.")
    try:
        while True:
            sent, undelivered = send_due()
            if sent or undelivered or not loop:
                note = f"; {undelivered} undelivered" if undelivered else ""
                click.echo(f"Sent {sent} due entries to {outbox}{note}")
            if not loop:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        click.echo("Stopped.")


# --- The queue page ----------------------------------------------------------

pages = Blueprint("queue", __name__)


@pages.before_request
def loopback_only() -> None:
    # The page carries the API token: never hand it to another machine.
    if not ipaddress.ip_address(request.remote_addr or "0.0.0.0").is_loopback:
        abort(403)


def _when(value: datetime | None) -> str:
    return "As soon as possible" if value is None else value.strftime("%Y-%m-%d %H:%M")


def _summary(entries: list[EmailEntry]) -> str:
    counts = Counter(entry.status for entry in entries)
    return ", ".join(f"{counts[s]} {s}" for s in (*STATUSES, SENDING) if counts[s])


@pages.get("/")
def index() -> ResponseReturnValue:
    return redirect("/queue")


@pages.get("/queue")
def queue() -> ResponseReturnValue:
    """Settings > Status > Email Queue: every request with its entries."""
    status = request.args.get("status", "")
    if status not in STATUSES:
        status = ""
    requests = db.session.scalars(
        select(EmailRequest)
        .options(selectinload(EmailRequest.entries))
        .order_by(EmailRequest.created_at.desc(), EmailRequest.id)
    ).all()
    shown = [
        (email, [e for e in email.entries if e.status == status or not status])
        for email in requests
    ]
    state = EmailCancel.state(current_app)
    return render_template(
        "queue.html",
        requests=[(email, entries, _summary(email.entries)) for email, entries in shown if entries],
        status=status,
        statuses=STATUSES,
        when=_when,
        url_prefix=state.url_prefix,
        token_header=TOKEN_HEADER,
        token=current_app.config["EXAMPLE_TOKEN"],
    )


@pages.get("/queue/requests/<int:request_id>")
def request_statuses(request_id: int) -> ResponseReturnValue:
    """The current statuses of one request's entries, for the page's refresh.
    Ids are strings: JavaScript numbers lose digits past 2**53."""
    entries = db.session.scalars(
        select(EmailEntry).where(EmailEntry.request_id == request_id).order_by(EmailEntry.mail_id)
    ).all()
    if not entries:
        abort(404)
    return jsonify(
        request_id=str(request_id),
        summary=_summary(list(entries)),
        entries=[
            {"mail_id": str(e.mail_id), "status": e.status, "updated": _when(e.updated_at)}
            for e in entries
        ],
    )


def main() -> None:
    """Create and seed the database, print how to call the API, and serve."""
    app = create_app()
    with app.app_context():
        db.create_all()
        requests, entries = seed_queue()
    port = int(os.environ.get("EXAMPLE_PORT", "5000"))
    base = f"http://127.0.0.1:{port}"
    prefix = EmailCancel.state(app).url_prefix
    token = app.config["EXAMPLE_TOKEN"]
    print(
        f"Seeded {requests} email requests with {entries} entries "
        f"into {app.config['SQLALCHEMY_DATABASE_URI']}\n"
        f"Token: {TOKEN_HEADER}: {token}\n"
        f"Email queue page: {base}/queue\n"
        "Cancel the seeded request with:\n"
        f"  curl -X POST -H '{TOKEN_HEADER}: {token}' {base}{prefix}/{SEEDED_REQUEST}/cancel\n",
        flush=True,
    )
    app.run(host="127.0.0.1", port=port)


if __name__ == "__main__":
    main()
