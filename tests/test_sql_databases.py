"""The SQL repository on each database of the matrix: time zones and the
cutoff, the database clock, exact counts, lock timeouts, the index check."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.dialects import mysql

from flask_email_cancel import (
    DATABASE_CLOCK,
    EmailCancel,
    LockTimeout,
    Principal,
    SQLAlchemyQueueRepository,
    TokenHeaderAuth,
)

from .conftest import (
    NOW,
    PRECISE_DATETIME,
    SERVER_CONNECT_TIMEOUT,
    TOKEN,
    finish_held,
    hold_row_lock,
    queue_repository,
    queue_table,
)

OPS = Principal("ops")
REQUEST = 7131002087805116277
OTHER_REQUEST = 42

# Per kind of database, the two datetime column forms hosts use.
COLUMN_TYPES: dict[str, dict[str, Any]] = {
    "naive": {
        "sqlite": sa.DateTime(),
        "postgresql": sa.DateTime(),  # timestamp without time zone
        "mysql": mysql.DATETIME(fsp=6),
    },
    "zoned": {
        "sqlite": sa.DateTime(timezone=True),  # still text, kept in UTC
        "postgresql": sa.DateTime(timezone=True),  # timestamp with time zone
        "mysql": mysql.TIMESTAMP(fsp=6),  # UTC inside, session zone outside
    },
}


def stored(value: datetime, column_type: Any) -> datetime:
    """``value`` (aware) as the column stores and returns it."""
    utc = value.astimezone(timezone.utc)
    return utc if getattr(column_type, "timezone", False) else utc.replace(tzinfo=None)


def as_utc(value: datetime | None) -> datetime | None:
    """A datetime read back, as aware UTC (naive columns hold UTC)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


def snapshot(engine: sa.Engine, table: sa.Table) -> dict[int, tuple[Any, ...]]:
    with engine.connect() as conn:
        return {row.id: tuple(row) for row in conn.execute(sa.select(table))}


def insert(engine: sa.Engine, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"status": "pending", **row} for row in rows])


@pytest.mark.parametrize("foreign_zone", [False, True], ids=["utc-session", "kolkata-session"])
@pytest.mark.parametrize("kind", ["naive", "zoned"])
def test_cutoff_is_strictly_later_than_now_in_every_column_form_and_session_zone(
    engine, engine_factory, backend, metadata, table_name, clock, kind, foreign_zone
):
    column_type = COLUMN_TYPES[kind][backend]
    table = queue_table(metadata, table_name, scheduled_type=column_type, stamp_type=column_type)
    metadata.create_all(engine)
    offsets = [-1, 0, 1, 3600]
    insert(
        engine,
        table,
        [
            {
                "id": n,
                "request_id": REQUEST,
                "scheduled_at": stored(NOW + timedelta(seconds=s), column_type),
            }
            for n, s in enumerate(offsets, 1)
        ],
    )
    host_engine = engine_factory(foreign_time_zone=foreign_zone)
    repo = queue_repository(host_engine, table, clock=clock)

    assert repo.cancel(REQUEST, OPS) == 2

    with engine.connect() as conn:
        got = conn.execute(
            sa.select(
                table.c.id, table.c.status, table.c.scheduled_at, table.c.cancelled_at
            ).order_by(table.c.id)
        ).all()
    assert [(r.id, r.status) for r in got] == [
        (1, "pending"),
        (2, "pending"),
        (3, "cancelled"),
        (4, "cancelled"),
    ]
    # Neither the schedules nor the stamp moved with the session's zone.
    assert [as_utc(r.scheduled_at) for r in got] == [NOW + timedelta(seconds=s) for s in offsets]
    assert [as_utc(r.cancelled_at) for r in got] == [None, None, NOW, NOW]


@pytest.mark.backends("postgresql", "mysql")
@pytest.mark.parametrize("clock_kind", ["python", "database"])
@pytest.mark.parametrize(("actual", "declared"), [("zoned", "naive"), ("naive", "zoned")])
def test_a_model_declaring_the_other_datetime_form_does_not_move_the_cutoff(
    engine, engine_factory, backend, metadata, table_name, clock, actual, declared, clock_kind
):
    """The database's own column form wins over the model's declaration, in a
    session whose time zone is not UTC."""
    actual_type = COLUMN_TYPES[actual][backend]
    table = queue_table(metadata, table_name, scheduled_type=actual_type, stamp_type=actual_type)
    metadata.create_all(engine)
    base = datetime.now(timezone.utc) if clock_kind == "database" else NOW
    offsets = [-600, -1, 1, 600] if clock_kind == "python" else [-600, 600]
    insert(
        engine,
        table,
        [
            {
                "id": n,
                "request_id": REQUEST,
                "scheduled_at": stored(base + timedelta(seconds=s), actual_type),
            }
            for n, s in enumerate(offsets, 1)
        ],
    )
    declared_type = COLUMN_TYPES[declared][backend]
    as_declared = queue_table(
        sa.MetaData(), table_name, scheduled_type=declared_type, stamp_type=declared_type
    )
    repo = queue_repository(
        engine_factory(foreign_time_zone=True),
        as_declared,
        clock=DATABASE_CLOCK if clock_kind == "database" else clock,
    )

    assert repo.cancel(REQUEST, OPS) == len(offsets) // 2

    with engine.connect() as conn:
        got = conn.execute(
            sa.select(table.c.status, table.c.cancelled_at).order_by(table.c.id)
        ).all()
    half = len(offsets) // 2
    assert [r.status for r in got] == ["pending"] * half + ["cancelled"] * half
    if clock_kind == "python":
        assert [as_utc(r.cancelled_at) for r in got] == [None] * half + [NOW] * half


@pytest.mark.parametrize("foreign_zone", [False, True], ids=["utc-session", "kolkata-session"])
@pytest.mark.parametrize("kind", ["naive", "zoned"])
def test_database_clock_reads_the_servers_utc_time(
    engine, engine_factory, backend, metadata, table_name, kind, foreign_zone
):
    column_type = COLUMN_TYPES[kind][backend]
    table = queue_table(metadata, table_name, scheduled_type=column_type, stamp_type=column_type)
    metadata.create_all(engine)
    real_now = datetime.now(timezone.utc)
    # Far enough from now that the test's own duration cannot cross them, and
    # far nearer than a session zone's offset of 5.5 hours.
    offsets = [-600, 600]
    insert(
        engine,
        table,
        [
            {
                "id": n,
                "request_id": REQUEST,
                "scheduled_at": stored(real_now + timedelta(seconds=s), column_type),
            }
            for n, s in enumerate(offsets, 1)
        ],
    )
    repo = queue_repository(
        engine_factory(foreign_time_zone=foreign_zone), table, clock=DATABASE_CLOCK
    )

    before = datetime.now(timezone.utc)
    assert repo.cancel(REQUEST, OPS) == 1
    after = datetime.now(timezone.utc)

    with engine.connect() as conn:
        got = conn.execute(sa.select(table).order_by(table.c.id)).all()
    assert [r.status for r in got] == ["pending", "cancelled"]
    stamp = as_utc(got[1].cancelled_at)
    # The server's clock, read in UTC (a zone slip would be hours off).
    assert before - timedelta(seconds=60) <= stamp <= after + timedelta(seconds=60)


@pytest.mark.parametrize(
    "shape",
    [
        {"status": "status", "cancellable": ["pending", "retry"], "cancelled": "cancelled"},
        {
            "status": "status",
            "cancellable": ["pending"],
            "cancelled": "cancelled",
            "cancelled_at": "cancelled_at",
        },
        {"unsent": "tenant", "cancelled_at": "cancelled_at"},
        {"delete": True, "status": "status", "cancellable": ["pending", "retry"]},
    ],
    ids=["status", "status-stamped", "unsent-marker", "delete"],
)
def test_reported_count_is_exactly_the_rows_changed(engine, metadata, table_name, clock, shape):
    table = queue_table(metadata, table_name)
    metadata.create_all(engine)
    rows = []
    for n in range(40):
        rows.append(
            {
                "id": n + 1,
                "request_id": REQUEST if n % 4 else OTHER_REQUEST,
                "status": ["pending", "retry", "sending", "sent"][n % 4 if n % 3 else 0],
                "scheduled_at": stored(NOW + timedelta(seconds=(n % 7) - 3), PRECISE_DATETIME),
                "tenant": None if n % 5 else "x",
            }
        )
    insert(engine, table, rows)
    repo = SQLAlchemyQueueRepository(
        engine,
        table,
        request_id="request_id",
        scheduled_at="scheduled_at",
        clock=clock,
        **{k: v for k, v in shape.items() if k != "cancelled_at"},
        **({"cancelled_at": shape["cancelled_at"]} if "cancelled_at" in shape else {}),
    )
    before = snapshot(engine, table)
    count = repo.cancel(REQUEST, OPS)
    after = snapshot(engine, table)
    changed = {i for i in before if after.get(i) != before[i]}

    assert count == len(changed) > 0
    assert all(before[i][1] == REQUEST for i in changed)
    assert repo.cancel(REQUEST, OPS) == 0
    assert snapshot(engine, table) == after


@pytest.mark.backends("mysql")
@pytest.mark.parametrize("found_rows", [True, False], ids=["found-rows", "changed-rows"])
def test_count_is_exact_whatever_the_mysql_client_flags(
    engine, engine_factory, queue, clock, found_rows
):
    options: dict[str, Any] = {}
    if not found_rows:
        # SQLAlchemy adds CLIENT.FOUND_ROWS; connect_args win over it.
        options["connect_args"] = {"client_flag": 0, "connect_timeout": SERVER_CONNECT_TIMEOUT}
    host_engine = engine_factory(**options)
    insert(
        engine,
        queue,
        [
            {
                "id": n,
                "request_id": REQUEST,
                "scheduled_at": stored(NOW + timedelta(hours=1), PRECISE_DATETIME),
            }
            for n in (1, 2, 3)
        ]
        + [
            {
                "id": 4,
                "request_id": REQUEST,
                "status": "sent",
                "scheduled_at": stored(NOW + timedelta(hours=1), PRECISE_DATETIME),
            }
        ],
    )
    # The engines really differ: an UPDATE that matches a row it leaves as it
    # is counts the row only when the driver reports matched rows.
    with host_engine.begin() as conn:
        same = conn.execute(sa.update(queue).where(queue.c.id == 4).values(status="sent"))
        assert same.rowcount == (1 if found_rows else 0)

    repo = queue_repository(host_engine, queue, clock=clock)
    before = snapshot(engine, queue)
    assert repo.cancel(REQUEST, OPS) == 3
    after = snapshot(engine, queue)
    assert sorted(i for i in before if before[i] != after[i]) == [1, 2, 3]
    assert repo.cancel(REQUEST, OPS) == 0


@pytest.mark.slow
@pytest.mark.parametrize("isolation", [None, "AUTOCOMMIT"], ids=["default", "autocommit-engine"])
def test_row_locked_mid_send_times_out_without_partial_effect(
    engine, engine_factory, queue, clock, isolation
):
    later = stored(NOW + timedelta(hours=1), PRECISE_DATETIME)
    insert(
        engine,
        queue,
        [{"id": n, "request_id": REQUEST, "scheduled_at": later} for n in range(1, 6)],
    )
    host_engine = engine_factory(**({"isolation_level": isolation} if isolation else {}))
    repo = queue_repository(host_engine, queue, clock=clock, lock_timeout=0.5)
    before = snapshot(engine, queue)
    sender = hold_row_lock(engine, queue, 3)
    try:
        with pytest.raises(LockTimeout, match="rolled back"):
            repo.cancel(REQUEST, OPS)
        # Rows 1 and 2, which the statement may have reached first, are untouched.
        assert snapshot(engine, queue) == before
    finally:
        finish_held(sender)

    assert repo.cancel(REQUEST, OPS) == 4
    after = snapshot(engine, queue)
    assert [after[i][2] for i in sorted(after)] == [
        "cancelled",
        "cancelled",
        "sending",
        "cancelled",
        "cancelled",
    ]
    # The host's engine keeps its own transaction mode.
    with host_engine.connect() as conn:
        dbapi_connection = conn.connection.dbapi_connection
        autocommit = host_engine.dialect.detect_autocommit_setting(dbapi_connection)
    assert autocommit is (isolation == "AUTOCOMMIT")


def test_cancel_waits_for_a_sender_then_skips_the_entry_it_claimed(engine, queue, clock):
    later = stored(NOW + timedelta(hours=1), PRECISE_DATETIME)
    insert(
        engine, queue, [{"id": n, "request_id": REQUEST, "scheduled_at": later} for n in (1, 2, 3)]
    )
    repo = queue_repository(engine, queue, clock=clock, lock_timeout=30)
    sender = hold_row_lock(engine, queue, 2)
    counts: list[int] = []
    worker = threading.Thread(target=lambda: counts.append(repo.cancel(REQUEST, OPS)))
    worker.start()
    worker.join(0.3)  # let the cancel block on the sender's lock
    finish_held(sender)
    worker.join()
    assert counts == [2]
    after = snapshot(engine, queue)
    assert [after[i][2] for i in sorted(after)] == [
        "cancelled",
        "sending",
        "cancelled",
    ]


def test_lock_timeout_must_be_seconds(engine, queue):
    for bad in (-1, float("nan"), float("inf"), "1", True):
        with pytest.raises(ValueError, match="lock_timeout"):
            queue_repository(engine, queue, lock_timeout=bad)


def test_clock_must_be_callable_or_the_database(engine, queue):
    with pytest.raises(TypeError, match="clock"):
        queue_repository(engine, queue, clock="server")


def test_index_warning_names_table_column_and_the_fixing_ddl(engine, metadata, table_name):
    table = queue_table(metadata, table_name, indexed=False)
    metadata.create_all(engine)
    repo = queue_repository(engine, table)

    warning = repo.index_warning()

    assert warning is not None
    assert repr(table_name) in warning and "'request_id'" in warning
    ddl = warning[warning.index("CREATE INDEX") :]
    with engine.begin() as conn:
        conn.exec_driver_sql(ddl)
    assert repo.index_warning() is None


def test_index_warning_accepts_a_composite_index_led_by_the_column(engine, metadata, table_name):
    table = queue_table(metadata, table_name, indexed=False)
    sa.Index(f"ix_{table_name}_rt", table.c.request_id, table.c.tenant)
    metadata.create_all(engine)
    assert queue_repository(engine, table).index_warning() is None


def test_index_warning_rejects_an_index_the_column_only_follows(engine, metadata, table_name):
    table = queue_table(metadata, table_name, indexed=False)
    sa.Index(f"ix_{table_name}_tr", table.c.tenant, table.c.request_id)
    metadata.create_all(engine)
    assert queue_repository(engine, table).index_warning() is not None


def test_missing_index_is_logged_at_start_up(engine, metadata, table_name, caplog):
    table = queue_table(metadata, table_name, indexed=False)
    metadata.create_all(engine)
    app = Flask(__name__)
    with caplog.at_level(logging.WARNING):
        EmailCancel(
            app,
            repository=queue_repository(engine, table),
            authenticator=TokenHeaderAuth({TOKEN: OPS}),
        )
    assert [r.getMessage() for r in caplog.records if "CREATE INDEX" in r.getMessage()] != []


def test_indexed_table_logs_nothing_at_start_up(engine, queue, caplog):
    app = Flask(__name__)
    with caplog.at_level(logging.DEBUG):
        EmailCancel(
            app,
            repository=queue_repository(engine, queue),
            authenticator=TokenHeaderAuth({TOKEN: OPS}),
        )
    assert [r for r in caplog.records if "index" in r.getMessage()] == []


def test_start_up_survives_a_table_not_created_yet(engine, metadata, table_name, caplog):
    table = queue_table(metadata, table_name, indexed=False)
    app = Flask(__name__)
    with caplog.at_level(logging.DEBUG):
        EmailCancel(
            app,
            repository=queue_repository(engine, table),
            authenticator=TokenHeaderAuth({TOKEN: OPS}),
        )
    assert [r.levelno for r in caplog.records if "index" in r.getMessage()] == [logging.DEBUG]


SESSION_SETTINGS = {
    "sqlite": "PRAGMA busy_timeout",
    "postgresql": "SELECT current_setting('TimeZone'), current_setting('lock_timeout')",
    "mysql": "SELECT @@SESSION.time_zone, @@SESSION.innodb_lock_wait_timeout",
}


def test_settings_end_with_the_cancel_and_never_reach_the_hosts_connections(
    engine, engine_factory, backend, queue, clock
):
    host_engine = engine_factory(foreign_time_zone=True, pool_size=1, max_overflow=0)
    with host_engine.connect() as conn:
        before = tuple(conn.exec_driver_sql(SESSION_SETTINGS[backend]).one())
    insert(
        engine,
        queue,
        [
            {
                "id": 1,
                "request_id": REQUEST,
                "scheduled_at": stored(NOW + timedelta(hours=1), PRECISE_DATETIME),
            }
        ],
    )
    repo = queue_repository(host_engine, queue, clock=clock, lock_timeout=3)

    assert repo.cancel(REQUEST, OPS) == 1

    # The pool's one connection, as the host's next checkout sees it.
    with host_engine.connect() as conn:
        after = tuple(conn.exec_driver_sql(SESSION_SETTINGS[backend]).one())
    assert after == before
    assert "UTC" not in str(before) and "+00:00" not in str(before)


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("host_mode", ["driver-transactions", "autocommit-engine"])
def test_sqlite_takes_the_write_lock_before_reading(engine, queue, clock, host_mode):
    host_engine = (
        engine.execution_options(isolation_level="AUTOCOMMIT")
        if host_mode == "autocommit-engine"
        else engine
    )
    engine.dispose()
    seen: list[str] = []

    def trace(dbapi_connection: Any, record: Any) -> None:
        # What SQLite itself runs, the sqlite3 module's own BEGIN included.
        dbapi_connection.set_trace_callback(
            lambda sql: seen.append(" ".join(sql.split()[:2]).upper())
        )

    sa.event.listen(engine, "connect", trace)
    try:
        queue_repository(host_engine, queue, clock=clock).cancel(REQUEST, OPS)
    finally:
        sa.event.remove(engine, "connect", trace)
        engine.dispose()
    assert seen[:3] == ["BEGIN IMMEDIATE", f"UPDATE {queue.name.upper()}", "COMMIT"]
    # After the commit only the pool's own reset of the connection's settings.
    assert all(statement.startswith("PRAGMA ") for statement in seen[3:])


@pytest.mark.backends("postgresql", "mysql")
def test_start_up_check_leaves_no_connection_for_forked_workers_to_share(
    engine_factory, backend, queue
):
    host_engine = engine_factory()
    opened: list[Any] = []
    sa.event.listen(
        host_engine, "connect", lambda dbapi_connection, _: opened.append(dbapi_connection)
    )
    app = Flask(__name__)
    EmailCancel(
        app,
        repository=queue_repository(host_engine, queue),
        authenticator=TokenHeaderAuth({TOKEN: OPS}),
    )
    assert len(opened) == 1
    closed = opened[0].closed if backend == "postgresql" else not opened[0].open
    assert closed
    assert queue_repository(host_engine, queue).index_warning() is None  # still usable
