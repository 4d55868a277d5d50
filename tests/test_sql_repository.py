"""SQLAlchemyQueueRepository on the three table shapes, with Core tables and
Flask-SQLAlchemy models."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_email_cancel import MappingError, Principal, SQLAlchemyQueueRepository

from .conftest import NOW

OPS = Principal("ops")
NAIVE_NOW = NOW.replace(tzinfo=None)


def ahead(seconds: float) -> datetime:
    return NAIVE_NOW + timedelta(seconds=seconds)


class Status(enum.Enum):
    INITIAL = "initial"
    SENT = "sent"
    CANCELLED = "cancelled"


@pytest.fixture
def statements(engine: sa.Engine) -> Iterator[list[str]]:
    """The SQL statements the engine runs during the test."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        keyword = statement.split()[0].upper()
        # Transaction control and per-transaction settings are not statements
        # of the cancel itself.
        if (
            keyword in {"BEGIN", "COMMIT", "ROLLBACK", "PRAGMA", "SET"}
            or "set_config(" in statement
        ):
            return
        seen.append(keyword)

    sa.event.listen(engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(engine, "before_cursor_execute", record)


def status_table(metadata: sa.MetaData, name: str, status_type: Any = None) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("request_id", sa.BigInteger, index=True, nullable=False),
        sa.Column(
            "state", status_type if status_type is not None else sa.String(16), nullable=False
        ),
        sa.Column("send_at", sa.DateTime),
        sa.Column("updated", sa.DateTime),
        sa.Column("tenant_id", sa.String(20)),
    )


def rows(engine: sa.Engine, table: sa.Table) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(table).order_by(table.c.id)))


# -- status column -----------------------------------------------------------


@pytest.fixture
def entries(engine, metadata, table_name):  # type: ignore[no-untyped-def]
    table = status_table(metadata, table_name)
    metadata.create_all(engine)
    big = 2**63 - 1
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [
                {"request_id": big, "state": "Initial", "send_at": ahead(3600)},
                {"request_id": big, "state": "Initial", "send_at": ahead(1)},
                {"request_id": big, "state": "Initial", "send_at": ahead(0)},
                {"request_id": big, "state": "Initial", "send_at": ahead(-1)},
                {"request_id": big, "state": "Initial", "send_at": None},
                {"request_id": big, "state": "Submitted", "send_at": ahead(3600)},
                {"request_id": big, "state": "Cancelled", "send_at": ahead(3600)},
                {"request_id": 5, "state": "Initial", "send_at": ahead(3600)},
            ],
        )
    return table


def test_status_shape_cancels_exactly_the_pending_later_entries(engine, entries, clock, statements):
    repo = SQLAlchemyQueueRepository(
        engine,
        entries,
        request_id="request_id",
        status="state",
        scheduled_at="send_at",
        cancellable=["Initial"],
        cancelled="Cancelled",
        cancelled_at="updated",
        clock=clock,
    )
    repo.column_forms(engine)  # read once per engine, on its own connection
    statements.clear()
    assert repo.cancel(2**63 - 1, OPS) == 2
    assert statements == ["UPDATE"]
    got = [(r.state, r.updated) for r in rows(engine, entries)]
    assert got == [
        ("Cancelled", NAIVE_NOW),
        ("Cancelled", NAIVE_NOW),
        ("Initial", None),
        ("Initial", None),
        ("Initial", None),
        ("Submitted", None),
        ("Cancelled", None),
        ("Initial", None),
    ]
    assert repo.cancel(2**63 - 1, OPS) == 0


def test_clock_decides_what_is_later(engine, entries, clock):
    repo = SQLAlchemyQueueRepository(
        engine,
        entries,
        request_id="request_id",
        status="state",
        scheduled_at="send_at",
        cancellable=["Initial"],
        cancelled="Cancelled",
        clock=clock,
    )
    clock.now = NOW - timedelta(seconds=2)  # now every "1 s behind" entry is later
    assert repo.cancel(2**63 - 1, OPS) == 4


def test_aware_clock_in_another_zone_is_converted_to_utc(engine, entries):
    ist = timezone(timedelta(hours=5, minutes=30))
    repo = SQLAlchemyQueueRepository(
        engine,
        entries,
        request_id="request_id",
        status="state",
        scheduled_at="send_at",
        cancellable=["Initial"],
        cancelled="Cancelled",
        clock=lambda: NOW.astimezone(ist),
    )
    assert repo.cancel(2**63 - 1, OPS) == 2


def test_naive_clock_is_refused(engine, entries):
    repo = SQLAlchemyQueueRepository(
        engine,
        entries,
        request_id="request_id",
        status="state",
        scheduled_at="send_at",
        cancellable=["Initial"],
        cancelled="Cancelled",
        clock=lambda: NAIVE_NOW,
    )
    with pytest.raises(ValueError, match="aware"):
        repo.cancel(2**63 - 1, OPS)
    assert [r.state for r in rows(engine, entries)].count("Cancelled") == 1


@pytest.mark.parametrize(
    ("status_type", "cancellable", "cancelled", "stored"),
    [
        pytest.param(sa.SmallInteger(), [2, 3], 4, [2, 3, 0, 4], id="smallint"),
        pytest.param(
            sa.Enum(Status),
            [Status.INITIAL],
            Status.CANCELLED,
            [Status.INITIAL, Status.INITIAL, Status.SENT, Status.CANCELLED],
            id="enum",
        ),
        pytest.param(sa.Boolean(), [False], True, [False, False, True, True], id="boolean-flag"),
    ],
)
def test_status_values_of_any_type(
    engine, metadata, table_name, clock, status_type, cancellable, cancelled, stored
):
    table = status_table(metadata, table_name, status_type)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [{"request_id": 1, "state": s, "send_at": ahead(60)} for s in stored],
        )
    repo = SQLAlchemyQueueRepository(
        engine,
        table,
        request_id="request_id",
        status="state",
        scheduled_at="send_at",
        cancellable=cancellable,
        cancelled=cancelled,
        clock=clock,
    )
    expected = sum(1 for s in stored if s in cancellable)
    assert repo.cancel(1, OPS) == expected
    states = [r.state for r in rows(engine, table)]
    assert states == [cancelled if s in cancellable else s for s in stored]


def test_tenant_column_confines_the_cancel(engine, metadata, table_name, clock):
    table = status_table(metadata, table_name)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [
                {"request_id": 1, "state": "Initial", "send_at": ahead(60), "tenant_id": t}
                for t in ["a", "a", "b", None]
            ],
        )
    repo = SQLAlchemyQueueRepository(
        engine,
        table,
        request_id="request_id",
        status="state",
        scheduled_at="send_at",
        cancellable=["Initial"],
        cancelled="Cancelled",
        tenant="tenant_id",
        clock=clock,
    )
    assert repo.cancel(1, Principal("x")) == 0  # no tenant: nothing
    assert repo.cancel(1, Principal("x", tenant="c")) == 0
    assert repo.cancel(1, Principal("x", tenant="a")) == 2
    assert [r.state for r in rows(engine, table)] == [
        "Cancelled",
        "Cancelled",
        "Initial",
        "Initial",
    ]
    assert repo.cancel(1, Principal("x", tenant="b")) == 1


def test_aware_columns_are_compared_in_utc(engine, metadata, table_name, clock):
    table = sa.Table(
        table_name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("rid", sa.BigInteger),
        sa.Column("status", sa.String(10)),
        sa.Column("at", sa.DateTime(timezone=True)),
        sa.Column("done", sa.DateTime(timezone=True)),
    )
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [
                {"rid": 1, "status": "q", "at": NOW + timedelta(seconds=1)},
                {"rid": 1, "status": "q", "at": NOW},
                {"rid": 1, "status": "q", "at": NOW - timedelta(seconds=1)},
            ],
        )
    repo = SQLAlchemyQueueRepository(
        engine,
        table,
        request_id="rid",
        status="status",
        scheduled_at="at",
        cancellable=["q"],
        cancelled="x",
        cancelled_at="done",
        clock=clock,
    )
    assert repo.cancel(1, OPS) == 1
    assert [r.status for r in rows(engine, table)] == ["x", "q", "q"]


# -- no status: pending while "sent at" is NULL, the stamp is the marker ------


def test_unsent_shape_stamps_a_marker(engine, metadata, table_name, clock, statements):
    table = sa.Table(
        table_name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("batch", sa.BigInteger, nullable=False),
        sa.Column("recipient", sa.String(100)),
        sa.Column("send_at", sa.DateTime),
        sa.Column("sent_at", sa.DateTime),
        sa.Column("cancelled_at", sa.DateTime),
    )
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [
                {"batch": 1, "recipient": "a", "send_at": ahead(60), "sent_at": None},
                {"batch": 1, "recipient": "b", "send_at": ahead(60), "sent_at": None},
                {"batch": 1, "recipient": "c", "send_at": ahead(60), "sent_at": ahead(-5)},
                {"batch": 1, "recipient": "d", "send_at": ahead(-60), "sent_at": None},
                {"batch": 2, "recipient": "e", "send_at": ahead(60), "sent_at": None},
            ],
        )
    repo = SQLAlchemyQueueRepository(
        engine,
        table,
        request_id="batch",
        scheduled_at="send_at",
        unsent="sent_at",
        cancelled_at="cancelled_at",
        clock=clock,
    )
    repo.column_forms(engine)  # read once per engine, on its own connection
    statements.clear()
    assert repo.cancel(1, OPS) == 2
    assert statements == ["UPDATE"]
    stamped = [(r.recipient, r.cancelled_at) for r in rows(engine, table)]
    assert stamped == [
        ("a", NAIVE_NOW),
        ("b", NAIVE_NOW),
        ("c", None),
        ("d", None),
        ("e", None),
    ]
    clock.now = NOW + timedelta(seconds=1)
    assert repo.cancel(1, OPS) == 0  # stamped entries are no longer pending
    assert [r.cancelled_at for r in rows(engine, table)][:2] == [NAIVE_NOW, NAIVE_NOW]


# -- presence means pending: cancel deletes ------------------------------------


def test_delete_shape_removes_the_rows(engine, metadata, table_name, clock, statements):
    table = sa.Table(
        table_name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("request_id", sa.BigInteger, nullable=False),
        sa.Column("when_scheduled", sa.DateTime),
    )
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [
                {"request_id": 1, "when_scheduled": ahead(60)},
                {"request_id": 1, "when_scheduled": ahead(61)},
                {"request_id": 1, "when_scheduled": ahead(-60)},
                {"request_id": 2, "when_scheduled": ahead(60)},
            ],
        )
    repo = SQLAlchemyQueueRepository(
        engine,
        table,
        request_id="request_id",
        scheduled_at="when_scheduled",
        delete=True,
        clock=clock,
    )
    repo.column_forms(engine)  # read once per engine, on its own connection
    statements.clear()
    assert repo.cancel(1, OPS) == 2
    assert statements == ["DELETE"]
    assert [(r.request_id, r.when_scheduled) for r in rows(engine, table)] == [
        (1, ahead(-60)),
        (2, ahead(60)),
    ]
    assert repo.cancel(1, OPS) == 0


def test_delete_shape_can_be_narrowed_by_status(engine, metadata, table_name, clock):
    table = status_table(metadata, table_name)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [{"request_id": 1, "state": s, "send_at": ahead(60)} for s in ["new", "sending"]],
        )
    repo = SQLAlchemyQueueRepository(
        engine,
        table,
        request_id="request_id",
        scheduled_at="send_at",
        status="state",
        cancellable=["new"],
        delete=True,
        clock=clock,
    )
    assert repo.cancel(1, OPS) == 1
    assert [r.state for r in rows(engine, table)] == ["sending"]


# -- Flask-SQLAlchemy models ---------------------------------------------------


@pytest.fixture
def fsa_app(engine, table_name, tmp_path):  # type: ignore[no-untyped-def]
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = engine.url.render_as_string(hide_password=False)
    db = SQLAlchemy(app)

    class Entry(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = table_name
        pk = db.Column("id", db.Integer, primary_key=True)
        request = db.Column("request_ref", db.BigInteger, nullable=False)
        state = db.Column("status_code", db.SmallInteger, nullable=False)
        due = db.Column("due_time", db.DateTime)
        note = db.Column(db.String(20))

    with app.app_context():
        db.create_all()
        db.session.add_all(
            [Entry(request=1, state=0, due=ahead(60)) for _ in range(3)]
            + [Entry(request=1, state=1, due=ahead(60))]
        )
        db.session.commit()
    yield app, db, Entry
    with app.app_context():
        db.drop_all()
        db.engine.dispose()


@pytest.fixture
def fsa_repo(fsa_app, clock):  # type: ignore[no-untyped-def]
    """The repository over ``fsa_app``'s model, by attribute names that differ
    from the column names."""
    app, db, Entry = fsa_app
    return SQLAlchemyQueueRepository(
        db,
        Entry,
        request_id="request",
        status="state",
        scheduled_at="due",
        cancellable=[0],
        cancelled=9,
        clock=clock,
    )


def test_model_attribute_names_map_to_their_columns(fsa_app, fsa_repo):
    app, db, Entry = fsa_app
    repo = fsa_repo
    with app.app_context():
        assert repo.cancel(1, OPS) == 3
        assert sorted(e.state for e in db.session.scalars(sa.select(Entry))) == [1, 9, 9, 9]


def test_cancel_leaves_the_hosts_pending_session_work_alone(fsa_app, fsa_repo):
    app, db, Entry = fsa_app
    repo = fsa_repo
    with app.app_context():
        first = db.session.get(Entry, 1)
        first.note = "edited"
        db.session.add(Entry(request=2, state=0, due=ahead(60), note="uncommitted"))
        assert repo.cancel(1, OPS) == 3
        # The host's own work is still pending: neither committed nor lost.
        assert first in db.session.dirty
        assert any(e.note == "uncommitted" for e in db.session.new)
        db.session.rollback()
        notes = [e.note for e in db.session.scalars(sa.select(Entry).order_by(Entry.pk))]
        assert notes == [None, None, None, None]
        assert db.session.scalar(sa.select(sa.func.count()).where(Entry.state == 9)) == 3


def test_failed_cancel_rolls_back_its_own_work(engine, entries, clock):
    repo = SQLAlchemyQueueRepository(
        engine,
        entries,
        request_id="request_id",
        status="state",
        scheduled_at="send_at",
        cancellable=["Initial"],
        cancelled="Cancelled",
        clock=clock,
    )

    def fail_after_update(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            raise RuntimeError("connection lost after the update")

    sa.event.listen(engine, "after_cursor_execute", fail_after_update)
    try:
        with pytest.raises(RuntimeError):
            repo.cancel(2**63 - 1, OPS)
    finally:
        sa.event.remove(engine, "after_cursor_execute", fail_after_update)
    assert [r.state for r in rows(engine, entries)].count("Cancelled") == 1


# -- misuse --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"request_id": "nope"}, "no column 'nope'"),
        ({"status": "state"}, "cancellable"),
        ({"status": "state", "cancellable": ["Initial"]}, "cancelled="),
        ({"status": "state", "cancellable": ["a"], "cancelled": "a"}, "must not be one of"),
        ({"cancellable": ["a"]}, "need status"),
        ({}, "nothing to write"),
        ({"unsent": "send_at"}, "nothing to write"),
        ({"delete": True, "cancelled_at": "updated"}, "no meaning with delete"),
        (
            {"delete": True, "status": "state", "cancellable": ["a"], "cancelled": "b"},
            "no meaning with delete",
        ),
    ],
)
def test_unusable_mappings_are_refused(engine, metadata, table_name, keywords, message):
    table = status_table(metadata, table_name)
    arguments: dict[str, Any] = {"request_id": "request_id", "scheduled_at": "send_at", **keywords}
    with pytest.raises(MappingError, match=message):
        SQLAlchemyQueueRepository(engine, table, **arguments)


def test_non_table_targets_are_refused(engine):
    with pytest.raises(MappingError, match="mapped class or a Table"):
        SQLAlchemyQueueRepository(engine, object(), request_id="a", scheduled_at="b", delete=True)


def test_non_engine_is_refused(metadata, table_name):
    table = status_table(metadata, table_name)
    with pytest.raises(TypeError, match="Engine"):
        SQLAlchemyQueueRepository(
            "sqlite://", table, request_id="request_id", scheduled_at="send_at", delete=True
        )


def test_declares_no_tables_on_the_hosts_metadata(engine, metadata, table_name):
    table = status_table(metadata, table_name)
    before = set(metadata.tables)
    SQLAlchemyQueueRepository(
        engine,
        table,
        request_id="request_id",
        status="state",
        scheduled_at="send_at",
        cancellable=["Initial"],
        cancelled="Cancelled",
    )
    assert set(metadata.tables) == before


def test_default_clock_is_utc_now(engine, metadata, table_name):
    table = status_table(metadata, table_name)
    metadata.create_all(engine)
    real_now = datetime.now(timezone.utc).replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [
                {"request_id": 1, "state": "Initial", "send_at": real_now + timedelta(hours=1)},
                {"request_id": 1, "state": "Initial", "send_at": real_now - timedelta(hours=1)},
            ],
        )
    repo = SQLAlchemyQueueRepository(
        engine,
        table,
        request_id="request_id",
        status="state",
        scheduled_at="send_at",
        cancellable=["Initial"],
        cancelled="Cancelled",
    )
    assert repo.cancel(1, OPS) == 1


def test_flask_sqlalchemy_bind_key_selects_the_models_engine(tmp_path, clock):
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path}/main.db"
    app.config["SQLALCHEMY_BINDS"] = {"queue": f"sqlite:///{tmp_path}/queue.db"}
    db = SQLAlchemy(app)

    class Queued(db.Model):  # type: ignore[name-defined,misc]
        __bind_key__ = "queue"
        id = db.Column(db.Integer, primary_key=True)
        request_id = db.Column(db.BigInteger)
        status = db.Column(db.String(10))
        send_at = db.Column(db.DateTime)

    repo = SQLAlchemyQueueRepository(
        db,
        Queued,
        request_id="request_id",
        status="status",
        scheduled_at="send_at",
        cancellable=["new"],
        cancelled="cancelled",
        clock=clock,
    )
    with app.app_context():
        db.create_all()
        db.session.add(Queued(request_id=1, status="new", send_at=ahead(60)))
        db.session.commit()
        assert repo.engine is db.engines["queue"]
        assert repo.cancel(1, OPS) == 1
        assert db.session.scalar(db.select(Queued.status)) == "cancelled"
        db.engines["queue"].dispose()
        db.engine.dispose()
