"""The databases the benchmarks run on, each in a namespace of its own.

Every run creates its tables under names no other run uses (a temporary file
on SQLite, a schema on PostgreSQL, a database on MariaDB) and drops them
afterwards, so benchmarks never touch a table of the test suite or of another
run. Queue tables are filled with one ``INSERT ... SELECT`` over a generated
series, which loads a million rows in seconds.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

__all__ = [
    "DATABASES",
    "FAR_FUTURE",
    "PENDING",
    "Database",
    "Namespace",
    "fill",
    "queue_table",
]

PENDING = "Initial"
CANCELLED = "Cancelled"
SENT = "Submitted"

#: Pending entries are scheduled here: always later than now.
FAR_FUTURE = datetime(2100, 1, 1)
#: Entries already sent were scheduled here.
PAST = datetime(2000, 1, 1)


@dataclass(frozen=True)
class Database:
    """A database server (or SQLite) the benchmarks can run on."""

    name: str
    label: str
    url: str | None
    """The server's URL; ``None`` for SQLite, which gets a temporary file."""


DATABASES: dict[str, Database] = {
    "sqlite": Database("sqlite", "SQLite", None),
    "postgresql": Database(
        "postgresql",
        "PostgreSQL",
        os.environ.get("BENCH_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    ),
    "mysql": Database(
        "mysql",
        "MariaDB",
        os.environ.get("BENCH_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
    ),
}


@dataclass
class Namespace:
    """Where one run's tables live, and the URL that reaches them."""

    database: Database
    url: str
    prefix: str
    engines: list[sa.Engine] = field(default_factory=list)

    def engine(self, **kwargs: Any) -> sa.Engine:
        """A new engine on this namespace (disposed when the namespace ends)."""
        engine = sa.create_engine(self.url, **kwargs)
        if self.database.name == "sqlite":
            # WAL lets the HTTP workers read while one of them writes.
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        self.engines.append(engine)
        return engine

    def table_name(self, role: str) -> str:
        """A table name unique to this run."""
        return f"{self.prefix}_{role}"


def _sqlite_pragmas(dbapi_connection: Any, record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def available(database: Database) -> str | None:
    """``None`` when the database can be reached, else why not."""
    if database.url is None:
        return None
    try:
        engine = sa.create_engine(database.url)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "skip it"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    return None


def server_version(database: Database) -> str:
    """The server's own version string."""
    if database.url is None:
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"
    engine = sa.create_engine(database.url)
    try:
        with engine.connect() as conn:
            version = str(conn.execute(sa.text("SELECT version()")).scalar())
    finally:
        engine.dispose()
    if database.name == "mysql" and "MariaDB" in version:
        return f"MariaDB {version}"
    return version.split(" on ")[0]


@contextmanager
def namespace(database: Database) -> Iterator[Namespace]:
    """A namespace of this run's own on ``database``, dropped at the end."""
    prefix = f"bench_{uuid.uuid4().hex[:10]}"
    if database.url is None:
        folder = tempfile.mkdtemp(prefix="flask-email-cancel-bench-")
        ns = Namespace(database, f"sqlite:///{folder}/queue.db", prefix)
        try:
            yield ns
        finally:
            _dispose(ns)
            shutil.rmtree(folder, ignore_errors=True)
        return

    admin = sa.create_engine(database.url, isolation_level="AUTOCOMMIT")
    url = sa.make_url(database.url)
    if database.name == "postgresql":
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {prefix}"))
        query = dict(url.query)
        query["options"] = f"-csearch_path={prefix}"
        ns_url = url.set(query=query)
        drop = f"DROP SCHEMA {prefix} CASCADE"
    else:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {prefix}"))
        ns_url = url.set(database=prefix)
        drop = f"DROP DATABASE {prefix}"
    ns = Namespace(database, ns_url.render_as_string(hide_password=False), prefix)
    try:
        yield ns
    finally:
        _dispose(ns)
        with admin.connect() as conn:
            conn.execute(sa.text(drop))
        admin.dispose()


def _dispose(ns: Namespace) -> None:
    for engine in ns.engines:
        engine.dispose()
    ns.engines.clear()


def queue_table(metadata: sa.MetaData, name: str) -> sa.Table:
    """A queue table shaped like the example app's (the request-id index is
    created after the bulk load, see :func:`index`)."""
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("request_id", sa.BigInteger, nullable=False),
        sa.Column("address", sa.String(254), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("scheduled_at", sa.DateTime),
        sa.Column("updated_at", sa.DateTime),
    )


def _series(dialect: str, count: int) -> str:
    """A SELECT of one column ``g`` running from 0 to ``count - 1``."""
    if dialect == "postgresql":
        return f"SELECT g FROM generate_series(0, {count - 1}) AS s(g)"
    if dialect == "mysql":
        # MariaDB's built-in sequence engine.
        return f"SELECT seq AS g FROM seq_0_to_{count - 1}"
    return (
        "SELECT g FROM (WITH RECURSIVE s(g) AS "
        f"(SELECT 0 UNION ALL SELECT g + 1 FROM s WHERE g + 1 < {count}) SELECT g FROM s)"
    )


def fill(
    conn: sa.Connection,
    table: sa.Table,
    *,
    first_id: int,
    count: int,
    first_request: int,
    per_request: int,
    status: str = PENDING,
    scheduled_at: datetime = FAR_FUTURE,
) -> None:
    """Insert ``count`` entries, ``per_request`` to each request id from
    ``first_request`` up, in one statement."""
    if count <= 0:
        return
    dialect = conn.dialect.name
    div = "DIV" if dialect == "mysql" else "/"
    quote = conn.dialect.identifier_preparer.quote
    columns = ", ".join(quote(c) for c in ("id", "request_id", "address", "status", "scheduled_at"))
    sql = (
        f"INSERT INTO {quote(table.name)} ({columns}) "
        f"SELECT :first_id + g, :first_request + g {div} :per, :address, :status, :at "
        f"FROM ({_series(dialect, count)}) AS series"
    )
    conn.execute(
        sa.text(sql),
        {
            "first_id": first_id,
            "first_request": first_request,
            "per": per_request,
            "address": "someone@example.com",
            "status": status,
            "at": scheduled_at,
        },
    )


def index(conn: sa.Connection, table: sa.Table) -> None:
    """Index the request-id column and refresh the planner's statistics."""
    quote = conn.dialect.identifier_preparer.quote
    conn.execute(
        sa.text(f"CREATE INDEX {quote(table.name + '_rid')} ON {quote(table.name)} (request_id)")
    )
    analyze(conn, table)


def analyze(conn: sa.Connection, table: sa.Table) -> None:
    """Refresh the planner's statistics of ``table``."""
    quote = conn.dialect.identifier_preparer.quote
    name = conn.dialect.name
    if name == "mysql":
        conn.execute(sa.text(f"ANALYZE TABLE {quote(table.name)}")).fetchall()
    else:
        conn.execute(sa.text(f"ANALYZE {quote(table.name)}"))


def background(conn: sa.Connection, table: sa.Table, rows: int, *, first_id: int = 10**12) -> None:
    """Fill ``rows`` entries that no benchmark cancels: already sent, ten to a
    request, under request ids of their own."""
    fill(
        conn,
        table,
        first_id=first_id,
        count=rows,
        first_request=first_id,
        per_request=10,
        status=SENT,
        scheduled_at=PAST,
    )


def naive_utc_now() -> datetime:
    """Now, as the naive UTC the queue tables store."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def later(seconds: float) -> datetime:
    """A naive UTC time ``seconds`` from now."""
    return naive_utc_now() + timedelta(seconds=seconds)
