"""The ``flask email-cancel`` commands on a SQLite queue: output and exit status."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskCliRunner

from flask_email_cancel import (
    EmailCancel,
    InMemoryQueueRepository,
    Principal,
    SQLAlchemyQueueRepository,
    TokenHeaderAuth,
    email_request_cancelled,
)
from flask_email_cancel.cli import (
    EXIT_BUSY,
    EXIT_FAILURE,
    EXIT_MALFORMED,
    EXIT_NOTHING,
    EXIT_OK,
)
from flask_email_cancel.exceptions import LockTimeout

BIG_ID = 7131002087805116277
NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
MALFORMED = "Malformed email request ID: expected a decimal number from 1 to 9223372036854775807"


def naive(delta_seconds: float) -> datetime:
    """Naive UTC, as the queue table stores it, ``delta_seconds`` from NOW."""
    return (NOW + timedelta(seconds=delta_seconds)).replace(tzinfo=None)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    """SQLite only: what the commands print does not depend on the database."""
    engine = sa.create_engine(f"sqlite:///{tmp_path}/queue.db")
    yield engine
    engine.dispose()


@pytest.fixture
def queue_table(metadata: sa.MetaData, table_name: str) -> sa.Table:
    return sa.Table(
        table_name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("request_id", sa.BigInteger, index=True),
        sa.Column("tenant", sa.String(16)),
        sa.Column("status", sa.String(16)),
        sa.Column("send_at", sa.DateTime),
    )


def make_app(
    engine: sa.Engine, table: sa.Table, *, authenticated: bool = True, **mapping: Any
) -> Flask:
    app = Flask(__name__)
    app.config["TESTING"] = True
    EmailCancel(
        app,
        repository=SQLAlchemyQueueRepository(
            engine,
            table,
            request_id="request_id",
            scheduled_at="send_at",
            status="status",
            cancellable=["Initial"],
            cancelled="Cancelled",
            clock=lambda: NOW,
            **mapping,
        ),
        authenticator=TokenHeaderAuth({"tok": Principal(id="ops")}) if authenticated else None,
    )
    return app


@pytest.fixture
def queue(engine: sa.Engine, queue_table: sa.Table) -> Callable[..., None]:
    """Add entries: ``queue(request_id, delta_seconds, status="Initial", tenant=None)``."""
    queue_table.metadata.create_all(engine)

    def add(request_id: int, delta: float, status: str = "Initial", tenant: str | None = None):  # type: ignore[no-untyped-def]
        with engine.begin() as connection:
            connection.execute(
                queue_table.insert().values(
                    request_id=request_id, send_at=naive(delta), status=status, tenant=tenant
                )
            )

    return add


def statuses(engine: sa.Engine, table: sa.Table, request_id: int) -> list[str]:
    with engine.connect() as connection:
        query = sa.select(table.c.status).where(table.c.request_id == request_id)
        return sorted(connection.scalars(query.order_by(table.c.id)))


@pytest.fixture
def runner(engine: sa.Engine, queue_table: sa.Table) -> FlaskCliRunner:
    return make_app(engine, queue_table).test_cli_runner()


@pytest.fixture
def signals() -> Iterator[list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []

    def receiver(sender: Flask, **kwargs: Any) -> None:
        received.append({"sender": sender, **kwargs})

    email_request_cancelled.connect(receiver)
    yield received
    email_request_cancelled.disconnect(receiver)


def test_group_is_registered_by_init_app(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["email-cancel", "--help"])
    assert result.exit_code == 0
    assert "cancel" in result.output and "check" in result.output


def test_cancel_cancels_pending_later_entries(runner, queue, engine, queue_table, signals):  # type: ignore[no-untyped-def]
    for _ in range(3):
        queue(BIG_ID, 3600)
    queue(BIG_ID, -60)  # due: the sender's
    queue(BIG_ID, 3600, "Submitted")
    queue(BIG_ID + 1, 3600)
    result = runner.invoke(args=["email-cancel", "cancel", str(BIG_ID)])
    assert result.exit_code == EXIT_OK
    assert result.output == f"Cancelled 3 Email entries of the EmailRequest with ID : {BIG_ID}\n"
    assert statuses(engine, queue_table, BIG_ID) == [
        "Cancelled",
        "Cancelled",
        "Cancelled",
        "Initial",
        "Submitted",
    ]
    assert statuses(engine, queue_table, BIG_ID + 1) == ["Initial"]
    assert len(signals) == 1
    assert signals[0]["request_id"] == BIG_ID and signals[0]["count"] == 3
    assert signals[0]["principal"] == Principal(id="cli", tenant=None)


def test_cancel_twice_finds_nothing_the_second_time(runner, queue, signals):  # type: ignore[no-untyped-def]
    queue(BIG_ID, 3600)
    assert runner.invoke(args=["email-cancel", "cancel", str(BIG_ID)]).exit_code == EXIT_OK
    result = runner.invoke(args=["email-cancel", "cancel", str(BIG_ID)])
    assert result.exit_code == EXIT_NOTHING
    assert result.output == "No cancellable messages found\n"
    assert len(signals) == 1


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param([], id="unknown-id"),
        pytest.param([(-60, "Initial")], id="due"),
        pytest.param([(3600, "Submitted"), (3600, "Cancelled")], id="not-initial"),
    ],
)
def test_cancel_with_nothing_cancellable_exits_1(runner, queue, signals, entries):  # type: ignore[no-untyped-def]
    for delta, status in entries:
        queue(BIG_ID, delta, status)
    result = runner.invoke(args=["email-cancel", "cancel", str(BIG_ID)])
    assert result.exit_code == EXIT_NOTHING
    assert result.output == "No cancellable messages found\n"
    assert signals == []


@pytest.mark.parametrize(
    "text", ["abc", "0", "-5", "+5", "9223372036854775808", "1.5", "\uff11\uff12", " 12"]
)
def test_cancel_rejects_a_malformed_id(runner, queue, engine, queue_table, text):  # type: ignore[no-untyped-def]
    queue(12, 3600)
    result = runner.invoke(args=["email-cancel", "cancel", "--", text])
    assert result.exit_code == EXIT_MALFORMED
    assert result.output == MALFORMED + "\n"
    assert statuses(engine, queue_table, 12) == ["Initial"]


def test_cancel_accepts_the_largest_id_and_leading_zeros(runner, queue, engine, queue_table):  # type: ignore[no-untyped-def]
    largest = 2**63 - 1
    queue(largest, 3600)
    queue(42, 3600)
    assert runner.invoke(args=["email-cancel", "cancel", str(largest)]).exit_code == EXIT_OK
    result = runner.invoke(args=["email-cancel", "cancel", "00042"])
    assert result.exit_code == EXIT_OK
    assert result.output.endswith("EmailRequest with ID : 42\n")
    assert statuses(engine, queue_table, largest) == ["Cancelled"]


def test_cancel_needs_an_id(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["email-cancel", "cancel"])
    assert result.exit_code == 2
    assert "Missing argument 'ID'" in result.output


@pytest.mark.parametrize(
    ("args", "cancelled", "code"),
    [
        pytest.param([], [], EXIT_NOTHING, id="no-tenant"),
        pytest.param(["--tenant", "b"], ["b"], EXIT_OK, id="tenant-b"),
        pytest.param(["--tenant", "c"], [], EXIT_NOTHING, id="unknown-tenant"),
    ],
)
def test_cancel_as_a_tenant(engine, queue_table, queue, signals, args, cancelled, code):  # type: ignore[no-untyped-def]
    runner = make_app(engine, queue_table, tenant="tenant").test_cli_runner()
    queue(BIG_ID, 3600, tenant="a")
    queue(BIG_ID, 3600, tenant="b")
    result = runner.invoke(args=["email-cancel", "cancel", str(BIG_ID), *args])
    assert result.exit_code == code
    with engine.connect() as connection:
        query = sa.select(queue_table.c.tenant).where(queue_table.c.status == "Cancelled")
        assert sorted(connection.scalars(query)) == cancelled
    if cancelled:
        assert signals[0]["principal"] == Principal(id="cli", tenant="b")


def test_a_failing_receiver_does_not_fail_the_cancel(runner, queue, engine, queue_table, caplog):  # type: ignore[no-untyped-def]
    def broken(sender: Flask, **kwargs: Any) -> None:
        raise RuntimeError("receiver down")

    email_request_cancelled.connect(broken)
    try:
        queue(BIG_ID, 3600)
        with caplog.at_level(logging.ERROR):
            result = runner.invoke(args=["email-cancel", "cancel", str(BIG_ID)])
    finally:
        email_request_cancelled.disconnect(broken)
    assert result.exit_code == EXIT_OK
    assert statuses(engine, queue_table, BIG_ID) == ["Cancelled"]
    assert "receiver of email_request_cancelled failed" in caplog.text


def test_cancel_reports_a_repository_failure(engine, queue_table, caplog):  # type: ignore[no-untyped-def]
    # The table was never created: the UPDATE fails.
    runner = make_app(engine, queue_table).test_cli_runner()
    with caplog.at_level(logging.ERROR):
        result = runner.invoke(args=["email-cancel", "cancel", str(BIG_ID)])
    assert result.exit_code == EXIT_FAILURE
    assert result.output.startswith("Server failure to process request: OperationalError: ")
    assert "no such table" in result.output
    assert "email cancel failed for request" in caplog.text


def test_cancel_reports_entries_held_by_a_sender(signals: list[dict[str, Any]]) -> None:
    def held(request_id: int, principal: Principal) -> int:
        raise LockTimeout("a sender holds the entries")

    app = Flask(__name__)
    EmailCancel(app, repository=held, authenticator=lambda request: None)
    result = app.test_cli_runner().invoke(args=["email-cancel", "cancel", str(BIG_ID)])
    assert result.exit_code == EXIT_BUSY
    assert result.output == "Email entries of this request are being sent; try again later\n"
    assert signals == []


def test_check_prints_the_configuration(runner, queue, queue_table):  # type: ignore[no-untyped-def]
    result = runner.invoke(args=["email-cancel", "check"])
    assert result.exit_code == EXIT_OK, result.output
    assert result.output.splitlines() == [
        "prefix: /api/v1/email",
        "routes:",
        "  DELETE /api/v1/email/<id>",
        "  POST /api/v1/email/<id>/cancel",
        "authenticator: TokenHeaderAuth (header=X-VoltMX-Authorization)",
        "repository: SQLAlchemyQueueRepository",
        f"  table: {queue_table.name}",
        "  request_id: 'request_id'",
        "  scheduled_at: 'send_at'",
        "  status: 'status'",
        "  cancellable: 'Initial'",
        "  cancelled: 'Cancelled'",
        "  delete: false",
    ]


def test_check_follows_the_configured_prefix(engine, queue_table, queue):  # type: ignore[no-untyped-def]
    app = Flask(__name__)
    app.config["EMAIL_CANCEL_URL_PREFIX"] = "/ops/mail/"
    EmailCancel(app, repository=InMemoryQueueRepository(), authenticator=lambda request: None)
    result = app.test_cli_runner().invoke(args=["email-cancel", "check"])
    assert result.exit_code == EXIT_OK, result.output
    lines = result.output.splitlines()
    assert lines[:4] == [
        "prefix: /ops/mail",
        "routes:",
        "  DELETE /ops/mail/<id>",
        "  POST /ops/mail/<id>/cancel",
    ]
    assert lines[4].startswith("authenticator: callable ")
    assert lines[4].endswith("test_check_follows_the_configured_prefix.<locals>.<lambda>")
    assert lines[5:] == ["repository: InMemoryQueueRepository"]


def test_check_warns_without_an_authenticator(engine, queue_table, queue):  # type: ignore[no-untyped-def]
    runner = make_app(engine, queue_table, authenticated=False).test_cli_runner()
    result = runner.invoke(args=["email-cancel", "check"])
    assert result.exit_code == EXIT_NOTHING
    assert "authenticator: none" in result.output
    assert (
        "warning: no authenticator configured: every cancel request is answered 401"
        in result.output
    )


@pytest.fixture
def unindexed_table(metadata: sa.MetaData, table_name: str, engine: sa.Engine) -> sa.Table:
    table = sa.Table(
        table_name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("request_id", sa.BigInteger),
        sa.Column("status", sa.String(16)),
        sa.Column("send_at", sa.DateTime),
        # An index that does not start with the request id does not help a cancel.
        sa.Index(f"ix_{table_name}_status_request", "status", "request_id"),
    )
    metadata.create_all(engine)
    return table


def test_check_warns_about_an_unindexed_request_id(engine, unindexed_table):  # type: ignore[no-untyped-def]
    result = (
        make_app(engine, unindexed_table).test_cli_runner().invoke(args=["email-cancel", "check"])
    )
    assert result.exit_code == EXIT_NOTHING
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1
    assert f"column 'request_id' of table '{unindexed_table.name}' has no index" in warnings[0]
    assert warnings[0].endswith(
        f"CREATE INDEX ix_{unindexed_table.name}_request_id ON {unindexed_table.name} (request_id)"
    )


@pytest.mark.parametrize(
    "constraint",
    [
        pytest.param(lambda: sa.Index("ix_rid_status", "request_id", "status"), id="composite"),
        pytest.param(lambda: sa.UniqueConstraint("request_id", "id"), id="unique"),
    ],
)
def test_check_accepts_an_index_led_by_the_request_id(engine, metadata, table_name, constraint):  # type: ignore[no-untyped-def]
    table = sa.Table(
        table_name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("request_id", sa.BigInteger),
        sa.Column("status", sa.String(16)),
        sa.Column("send_at", sa.DateTime),
        constraint(),
    )
    metadata.create_all(engine)
    result = make_app(engine, table).test_cli_runner().invoke(args=["email-cancel", "check"])
    assert result.exit_code == EXIT_OK, result.output
    assert "warning" not in result.output


def test_check_warns_when_the_table_is_missing(engine, queue_table):  # type: ignore[no-untyped-def]
    result = make_app(engine, queue_table).test_cli_runner().invoke(args=["email-cancel", "check"])
    assert result.exit_code == EXIT_NOTHING
    assert f"warning: table '{queue_table.name}' does not exist in the database" in result.output
