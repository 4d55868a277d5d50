"""Shared fixtures: apps with the extension, clocks, and database engines."""

from __future__ import annotations

import os
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.dialects import mysql

from flask_email_cancel import (
    EmailCancel,
    InMemoryQueueRepository,
    Principal,
    SQLAlchemyQueueRepository,
    TokenHeaderAuth,
)

TOKEN = "t0ken-for-tests"
TENANT_TOKEN = "t0ken-of-tenant-b"
BIG_ID = 7131002087805116277
NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


class FrozenClock:
    """A clock tests can set; the repositories' ``clock=``."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def memory_repo(clock: FrozenClock) -> InMemoryQueueRepository:
    return InMemoryQueueRepository(clock=clock)


@pytest.fixture(autouse=True)
def conforming_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test client checks every answer of the API against the OpenAPI
    document the extension generates."""
    from .openapi_conformance import ConformingClient

    monkeypatch.setattr(Flask, "test_client_class", ConformingClient)


@pytest.fixture
def app(memory_repo: InMemoryQueueRepository) -> Flask:
    """The app pytest-flask's ``client`` uses: in-memory queue, token auth."""
    app = Flask(__name__)
    app.config["TESTING"] = True
    EmailCancel(
        app,
        repository=memory_repo,
        authenticator=TokenHeaderAuth(
            {TOKEN: Principal(id="ops"), TENANT_TOKEN: Principal(id="b", tenant="b")}
        ),
    )
    return app


@pytest.fixture
def auth_headers() -> dict[str, str]:
    return {"X-VoltMX-Authorization": TOKEN}


@pytest.fixture(
    params=[("POST", "/api/v1/email/{id}/cancel"), ("DELETE", "/api/v1/email/{id}")],
    ids=["POST-cancel", "DELETE"],
)
def route(request: pytest.FixtureRequest) -> tuple[str, str]:
    """Both routes of the API: (method, URL template)."""
    return request.param  # type: ignore[no-any-return]


def later(seconds: float = 3600) -> datetime:
    return NOW + timedelta(seconds=seconds)


DATABASES_VARIABLE = "EMAIL_CANCEL_TEST_DATABASES"
"""Names the databases the SQL tests run on: SQLAlchemy URLs separated by
whitespace or commas, ``sqlite`` for a temporary SQLite file. Unset: SQLite."""

SERVER_CONNECT_TIMEOUT = 5
"""Seconds a test engine waits to connect to a database server."""

SERVER_READ_TIMEOUT = 120
"""Seconds a MySQL test engine waits for any answer: longer than every lock
timeout the tests set."""


def _database_params() -> list[Any]:
    urls = re.split(r"[\s,]+", os.environ.get(DATABASES_VARIABLE, "").strip())
    urls = [url for url in urls if url] or ["sqlite"]
    seen: Counter[str] = Counter()
    params = []
    for url in urls:
        backend = "sqlite" if url == "sqlite" else sa.make_url(url).get_backend_name()
        seen[backend] += 1
        params.append(
            pytest.param(url, id=backend if seen[backend] == 1 else f"{backend}{seen[backend]}")
        )
    return params


DATABASES = _database_params()

# Session time zones far from UTC, set on every connection by
# ``engine_factory(foreign_time_zone=True)``.
FOREIGN_TIME_ZONE = {
    "postgresql": "SET TIME ZONE 'Asia/Kolkata'",
    "mysql": "SET time_zone = '+05:30'",
}

PRECISE_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
"""A naive datetime column keeping microseconds on MySQL/MariaDB too."""


def backend_of(engine: sa.Engine) -> str:
    """``sqlite``, ``postgresql`` or ``mysql`` (MariaDB included)."""
    return "mysql" if engine.dialect.name in ("mysql", "mariadb") else engine.dialect.name


def create_test_engine(url: str, *, foreign_time_zone: bool = False, **options: Any) -> sa.Engine:
    """An engine with the options the docs recommend to hosts: pre-ping and a
    bounded connect timeout on servers; WAL and a busy timeout on SQLite
    (``wal=False`` keeps SQLite's rollback journal)."""
    backend = sa.make_url(url).get_backend_name()
    wal = options.pop("wal", True)
    if backend != "sqlite":
        options.setdefault("pool_pre_ping", True)
        connect_args = options.setdefault("connect_args", {})
        connect_args.setdefault("connect_timeout", SERVER_CONNECT_TIMEOUT)
        if backend in ("mysql", "mariadb"):
            # PyMySQL's connect_timeout does not cover the server's greeting.
            connect_args.setdefault("read_timeout", SERVER_READ_TIMEOUT)
            connect_args.setdefault("write_timeout", SERVER_READ_TIMEOUT)
    else:
        options.setdefault("connect_args", {}).setdefault("timeout", 30)
    engine = sa.create_engine(url, **options)
    if backend == "sqlite" and wal:

        @sa.event.listens_for(engine, "connect")
        def use_wal(dbapi_connection: Any, record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.close()

    if foreign_time_zone and backend in FOREIGN_TIME_ZONE:
        statement = FOREIGN_TIME_ZONE[backend]

        @sa.event.listens_for(engine, "connect")
        def set_time_zone(dbapi_connection: Any, record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(statement)
            cursor.close()
            if backend == "postgresql":
                dbapi_connection.commit()

    return engine


def pytest_sessionstart(session: pytest.Session) -> None:
    """A database that is named but unreachable fails the run, never skips."""
    for param in DATABASES:
        url = param.values[0]
        if url == "sqlite":
            continue
        engine = create_test_engine(url)
        try:
            with engine.connect():
                pass
        except Exception as exc:
            raise pytest.UsageError(
                f"{DATABASES_VARIABLE} names {param.id} database {url}, which is unreachable: {exc}"
            ) from exc
        finally:
            engine.dispose()


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each database of the test matrix in turn; SQLite is a fresh file."""
    url: str = request.param
    return f"sqlite:///{tmp_path}/queue.db" if url == "sqlite" else url


@pytest.fixture
def engine_factory(database_url: str) -> Iterator[Callable[..., sa.Engine]]:
    """Makes more engines on the test's database (other options, session time
    zones); they are disposed of after the test."""
    engines: list[sa.Engine] = []

    def make(**options: Any) -> sa.Engine:
        engines.append(create_test_engine(database_url, **options))
        return engines[-1]

    yield make
    for engine in engines:
        engine.dispose()


@pytest.fixture
def engine(engine_factory: Callable[..., sa.Engine]) -> sa.Engine:
    """A database engine for repository tests, on each database of the matrix."""
    return engine_factory()


@pytest.fixture
def backend(engine: sa.Engine) -> str:
    """The engine's kind of database: ``sqlite``, ``postgresql`` or ``mysql``."""
    return backend_of(engine)


@pytest.fixture
def metadata(engine: sa.Engine) -> Iterator[sa.MetaData]:
    """A MetaData whose tables are dropped after the test."""
    metadata = sa.MetaData()
    yield metadata
    metadata.drop_all(engine)


@pytest.fixture
def table_name() -> str:
    """A table name unique to this test, so runs never share tables."""
    return f"q_{uuid.uuid4().hex[:12]}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "backends(*names): run only on these kinds of database (sqlite, postgresql, mysql); "
        "on the others the test is not generated",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect (never skip) the database variants a ``backends`` mark excludes."""
    keep, drop = [], []
    for item in items:
        mark = item.get_closest_marker("backends")
        callspec = getattr(item, "callspec", None)
        url = callspec.params.get("database_url") if callspec is not None else None
        if mark is None or url is None:
            keep.append(item)
            continue
        backend = "sqlite" if url == "sqlite" else sa.make_url(url).get_backend_name()
        backend = "mysql" if backend == "mariadb" else backend
        (keep if backend in mark.args else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def queue_table(
    metadata: sa.MetaData,
    name: str,
    *,
    scheduled_type: Any = PRECISE_DATETIME,
    stamp_type: Any = PRECISE_DATETIME,
    indexed: bool = True,
) -> sa.Table:
    """A host's queue table: a status, a schedule, a cancel stamp, a tenant,
    and the indexes the docs recommend."""
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("request_id", sa.BigInteger, nullable=False, index=indexed),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("scheduled_at", scheduled_type, nullable=True),
        sa.Column("cancelled_at", stamp_type, nullable=True),
        sa.Column("tenant", sa.String(20)),
        sa.Index(f"ix_{name}_due", "status", "scheduled_at"),
    )


def queue_repository(engine: Any, table: Any, **options: Any) -> SQLAlchemyQueueRepository:
    """The repository over :func:`queue_table`: ``pending`` is cancelled."""
    mapping: dict[str, Any] = {
        "request_id": "request_id",
        "scheduled_at": "scheduled_at",
        "status": "status",
        "cancellable": ["pending"],
        "cancelled": "cancelled",
        "cancelled_at": "cancelled_at",
    }
    mapping.update(options)
    return SQLAlchemyQueueRepository(engine, table, **mapping)


@pytest.fixture
def queue(engine: sa.Engine, metadata: sa.MetaData, table_name: str) -> sa.Table:
    """A created :func:`queue_table` on the test's database."""
    table = queue_table(metadata, table_name)
    metadata.create_all(engine)
    return table


def hold_row_lock(engine: sa.Engine, table: sa.Table, entry_id: int) -> sa.Connection:
    """A sender mid-send: its claim of one entry is written but not committed."""
    if backend_of(engine) == "sqlite":
        conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn = engine.connect()
    conn.execute(sa.update(table).where(table.c.id == entry_id).values(status="sending"))
    return conn


def finish_held(conn: sa.Connection) -> None:
    if backend_of(conn.engine) == "sqlite":
        conn.exec_driver_sql("COMMIT")
    else:
        conn.commit()
    conn.close()
