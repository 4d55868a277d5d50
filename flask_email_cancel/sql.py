"""The SQL queue repository: one conditional ``UPDATE`` (or ``DELETE``) on the
host's own queue table, run in a write transaction fitted to each database.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.sql.dml import Delete, Update

from .auth import Principal
from .exceptions import EmailCancelError, LockTimeout, MappingError
from .repository import Clock, utc_now

if TYPE_CHECKING:
    from flask import Flask

__all__ = [
    "DATABASE_CLOCK",
    "ColumnForms",
    "SQLAlchemyQueueRepository",
    "run_write",
    "write_transaction",
]

DATABASE_CLOCK: Literal["database"] = "database"
"""Pass as ``clock=`` to compare against the database server's clock."""

_UNSET: Any = object()
T = TypeVar("T")

#: How many times a statement rolled back by a deadlock or a serialization
#: failure is run again. Both roll the whole statement back, so a retry can
#: neither double nor split its effect.
_ATTEMPTS = 3


def _stored_type(column: sa.Column[Any]) -> Any:
    """The column's type as the database sees it (a TypeDecorator's impl)."""
    type_ = column.type
    return type_.impl_instance if isinstance(type_, sa.types.TypeDecorator) else type_


def _is_aware(column: sa.Column[Any]) -> bool:
    """Whether a datetime column stores time zones (else it holds naive UTC)."""
    return bool(getattr(_stored_type(column), "timezone", False))


def _is_timestamp(column: sa.Column[Any]) -> bool:
    """Whether a column is SQL ``TIMESTAMP``, which MySQL/MariaDB read and
    compare in the session's time zone."""
    return isinstance(_stored_type(column), sa.types.TIMESTAMP)


def _for_column(now: datetime, aware: bool) -> datetime:
    now = now.astimezone(timezone.utc)
    return now if aware else now.replace(tzinfo=None)


def _is_mysql(dialect: Dialect) -> bool:
    return dialect.name in ("mysql", "mariadb")


def _mysql_errno(orig: BaseException | None) -> object:
    args = getattr(orig, "args", ())
    return args[0] if args else None


def _lock_timed_out(exc: sa.exc.DBAPIError, dialect: Dialect) -> bool:
    orig = exc.orig
    if dialect.name == "postgresql":
        return getattr(orig, "sqlstate", None) == "55P03"  # lock_not_available
    if _is_mysql(dialect):
        return _mysql_errno(orig) == 1205  # ER_LOCK_WAIT_TIMEOUT
    if dialect.name == "sqlite":
        code = getattr(orig, "sqlite_errorcode", None)
        if isinstance(code, int):
            return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED
        return "database is locked" in str(orig)
    return False


def _transient(exc: sa.exc.DBAPIError, dialect: Dialect) -> bool:
    """A deadlock victim or serialization failure: rolled back as a whole."""
    orig = exc.orig
    if dialect.name == "postgresql":
        return getattr(orig, "sqlstate", None) in ("40P01", "40001")
    if _is_mysql(dialect):
        return _mysql_errno(orig) == 1213  # ER_LOCK_DEADLOCK
    return False


@contextmanager
def write_transaction(
    engine: Engine,
    *,
    lock_timeout: float | None = None,
    read_committed: bool = False,
    utc_session: bool = False,
) -> Iterator[Connection]:
    """Open a write transaction on a connection of its own, commit it when the
    block ends and roll it back when the block raises.

    Only what is asked for costs a statement; by default the transaction is
    the statement and its commit, as a hand-written one would be.

    - SQLite: ``BEGIN IMMEDIATE``, so the write lock is taken before anything
      is read; a deferred transaction that reads first and then writes fails
      with ``SQLITE_BUSY`` whatever the busy timeout. The ``sqlite3`` module
      issues it itself (``isolation_level = "IMMEDIATE"`` for this
      transaction); on a connection the host runs in autocommit mode it is
      sent explicitly. ``lock_timeout`` sets the busy timeout for this
      transaction only.
    - PostgreSQL: ``lock_timeout`` is set with ``set_config(..., true)``
      (``SET LOCAL``), so it ends with the transaction.
    - MySQL/MariaDB: ``innodb_lock_wait_timeout`` (and, with ``utc_session``,
      the session's ``time_zone``) are set for the transaction, then put back
      as they were (a connection that cannot be put back is invalidated).
      Lock timeouts are rounded up to whole seconds there.

    :param lock_timeout: the longest wait for a lock, in seconds; ``None``
        keeps the connection's own setting.
    :param read_committed: run the transaction at ``READ COMMITTED`` on
        MySQL/MariaDB (no gap locks), as queue claims want; other databases
        already default to it or need no isolation level.
    :param utc_session: make the session time zone UTC on MySQL/MariaDB,
        whose ``TIMESTAMP`` columns read and compare in the session's zone.
        Other databases compare bound datetimes without the session's zone.
    :raises LockTimeout: when a lock wait timed out; the transaction is
        rolled back.
    """
    dialect = engine.dialect
    connection = engine.connect()
    restore: list[Callable[[], object]] = []
    explicit = False
    try:
        try:
            explicit = _begin(
                connection, dialect, lock_timeout, read_committed, utc_session, restore
            )
            yield connection
            if explicit:
                connection.exec_driver_sql("COMMIT")
            else:
                connection.commit()
        except BaseException:
            _rollback(connection, explicit)
            raise
    except sa.exc.DBAPIError as exc:
        if _lock_timed_out(exc, dialect):
            raise LockTimeout(
                "a lock wait timed out"
                + (f" (lock timeout {lock_timeout} s)" if lock_timeout is not None else "")
                + "; the transaction was rolled back and nothing was changed"
            ) from exc
        raise
    finally:
        for undo in restore:
            try:
                undo()
            except Exception:
                # A connection whose settings could not be put back must not
                # be handed to the host's own code.
                connection.invalidate()
                break
        connection.close()


def _begin(
    connection: Connection,
    dialect: Dialect,
    lock_timeout: float | None,
    read_committed: bool,
    utc_session: bool,
    restore: list[Callable[[], object]],
) -> bool:
    """Prepare the transaction; return whether it was begun explicitly (and
    so must be ended with explicit SQL)."""
    if dialect.name == "sqlite":
        return _begin_sqlite(connection, lock_timeout, restore)
    if _in_autocommit(connection):
        # An engine in autocommit mode would end the transaction after each
        # statement, and with it the settings and locks below. The pool puts
        # the engine's own level back when the connection is returned.
        connection.execution_options(isolation_level=connection.default_isolation_level)
    if dialect.name == "postgresql":
        if lock_timeout is not None:
            # lock_timeout = 0 would mean "wait forever": a 0 s timeout is 1 ms.
            connection.execute(
                sa.text("SELECT set_config('lock_timeout', :ms, true)"),
                {"ms": f"{max(1, round(lock_timeout * 1000))}ms"},
            )
    elif _is_mysql(dialect):
        if read_committed:
            # Applies to the next transaction only, which is this one.
            connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        saved, settings, back = [], [], []
        if utc_session:
            saved.append("@flask_email_cancel_time_zone = @@SESSION.time_zone")
            settings.append("SESSION time_zone = '+00:00'")
            back.append("SESSION time_zone = @flask_email_cancel_time_zone")
        if lock_timeout is not None:
            saved.append("@flask_email_cancel_lock_wait = @@SESSION.innodb_lock_wait_timeout")
            settings.append(f"SESSION innodb_lock_wait_timeout = {max(1, math.ceil(lock_timeout))}")
            back.append("SESSION innodb_lock_wait_timeout = @flask_email_cancel_lock_wait")
        if settings:
            # Put back even when the SET itself fails half-way: the saved
            # values are assigned first, left to right.
            restore.append(partial(connection.exec_driver_sql, f"SET {', '.join(back)}"))
            connection.exec_driver_sql(f"SET {', '.join(saved + settings)}")
    return False


def _begin_sqlite(
    connection: Connection, lock_timeout: float | None, restore: list[Callable[[], object]]
) -> bool:
    raw: Any = connection.connection.dbapi_connection
    legacy = getattr(sqlite3, "LEGACY_TRANSACTION_CONTROL", -1)
    # A host that drives transactions itself (autocommit mode, with its own
    # BEGIN) gets BEGIN IMMEDIATE from us, on a connection in autocommit.
    explicit = raw.isolation_level is None or getattr(raw, "autocommit", legacy) != legacy
    if explicit:
        connection.execution_options(isolation_level="AUTOCOMMIT")
    if lock_timeout is not None:
        previous = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
        restore.append(
            partial(connection.exec_driver_sql, f"PRAGMA busy_timeout = {int(previous or 0)}")
        )
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {round(lock_timeout * 1000)}")
    if explicit:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        # The sqlite3 module issues the BEGIN before the first write; have it
        # begin IMMEDIATE, for this transaction only.
        restore.append(partial(setattr, raw, "isolation_level", raw.isolation_level))
        raw.isolation_level = "IMMEDIATE"
    return explicit


def _in_autocommit(connection: Connection) -> bool:
    detect = getattr(connection.dialect, "detect_autocommit_setting", None)
    if detect is None:  # pragma: no cover - SQLAlchemy before 2.0.x
        return False
    try:
        return bool(detect(connection.connection.dbapi_connection))
    except NotImplementedError:  # pragma: no cover - a dialect that cannot tell
        return False


def _rollback(connection: Connection, explicit: bool) -> None:
    try:
        if not explicit:
            connection.rollback()
        elif connection.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
            connection.exec_driver_sql("ROLLBACK")
    except Exception:
        # The connection is gone or broken: the database rolls back itself.
        connection.invalidate()


def run_write(
    engine: Engine,
    work: Callable[[Connection], T],
    *,
    lock_timeout: float | None = None,
    read_committed: bool = False,
    utc_session: bool = False,
) -> T:
    """Call ``work`` with the connection of a :func:`write_transaction` and
    return what it returns, after the commit.

    A transaction the database chose as a deadlock victim (or failed as not
    serializable) was rolled back as a whole, so it is run again, up to three
    times in all; ``work`` must only touch the database.

    :raises LockTimeout: when a lock wait timed out; nothing was changed.
    """
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            with write_transaction(
                engine,
                lock_timeout=lock_timeout,
                read_committed=read_committed,
                utc_session=utc_session,
            ) as connection:
                return work(connection)
        except sa.exc.DBAPIError as exc:
            if attempt == _ATTEMPTS or not _transient(exc, engine.dialect):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class ColumnForms:
    """How a database stores the repository's datetime columns, which decides
    the form "now" is given in (see :meth:`SQLAlchemyQueueRepository.column_forms`)."""

    #: ``scheduled_at`` holds time zones (else it holds naive UTC).
    scheduled_aware: bool
    #: ``cancelled_at`` holds time zones.
    stamp_aware: bool
    #: A MySQL/MariaDB ``TIMESTAMP`` column, read in the session's time zone:
    #: statements run in a UTC session.
    utc_session: bool


class SQLAlchemyQueueRepository:
    """Cancels entries in the host's existing queue table with one atomic
    conditional statement whose row count is the answer.

    The statement is, for the status shape::

        UPDATE entries SET status = :cancelled [, cancelled_at = :now]
        WHERE request_id = :id AND status IN (:cancellable...)
          AND scheduled_at > :now [AND tenant = :tenant]

    It runs on a connection of its own in a write transaction of its own (see
    :func:`write_transaction`): pending work in the host's session is neither
    committed nor rolled back. Every row it matches it also changes, so the
    count is exact whether or not a MySQL driver reports matched rows
    (``CLIENT.FOUND_ROWS``) or changed rows.

    Three table shapes are supported, chosen by the keywords given:

    status column
        ``status``, ``cancellable`` and ``cancelled``: pending entries have one
        of the ``cancellable`` values, and cancel writes ``cancelled``.
        ``cancelled_at`` optionally stamps the time of the cancel.
    "not sent yet" columns, no status
        ``unsent`` names columns (such as ``sent_at``) that are NULL while an
        entry is pending, and ``cancelled_at`` is the marker: cancel stamps it,
        and an entry whose marker is set is no longer pending.
    presence means pending
        ``delete=True``: cancel deletes the entries. ``unsent`` and the status
        keywords may still narrow which rows count as pending.

    :param db_or_engine: a Flask-SQLAlchemy ``SQLAlchemy`` object (its engine,
        or the bind of the table's bind key, is looked up in the current app
        context at each cancel) or a SQLAlchemy :class:`~sqlalchemy.engine.Engine`.
    :param model_or_table: the host's mapped class or :class:`~sqlalchemy.Table`.
    :param request_id: attribute (or column) holding the email request id.
    :param scheduled_at: attribute holding the scheduled send time. Only
        entries scheduled strictly after now are cancellable; NULL means "send
        as soon as possible" and is never cancellable. Naive columns hold UTC.
    :param status: attribute holding the entry's status.
    :param cancellable: the status values that may be cancelled, as the host
        stores them (strings, integers, enum members).
    :param cancelled: the status value written on cancel.
    :param cancelled_at: attribute stamped with the time of the cancel.
    :param tenant: attribute that must equal the principal's tenant; rows of
        other tenants are never touched, and a principal without a tenant
        cancels nothing.
    :param unsent: attribute, or attributes, that are NULL while an entry has
        not been sent.
    :param delete: cancel by deleting the rows.
    :param clock: returns the current aware time; defaults to UTC now.
        :data:`DATABASE_CLOCK` (``"database"``) compares against the database
        server's ``CURRENT_TIMESTAMP`` in UTC instead (on SQLite, which runs
        in-process, that is this process's UTC clock).
    :param lock_timeout: the longest a cancel waits for a row locked by
        someone else (a sender mid-send), in seconds; then it raises
        :class:`~flask_email_cancel.exceptions.LockTimeout` having changed
        nothing. ``None`` keeps the database's own limit (PostgreSQL: none;
        MariaDB: ``innodb_lock_wait_timeout``; SQLite: the driver's busy
        timeout).
    :raises MappingError: when the keywords do not describe a usable table.
    """

    def __init__(
        self,
        db_or_engine: Any,
        model_or_table: Any,
        *,
        request_id: str,
        scheduled_at: str,
        status: str | None = None,
        cancellable: Iterable[Hashable] = (),
        cancelled: Hashable = _UNSET,
        cancelled_at: str | None = None,
        tenant: str | None = None,
        unsent: str | Sequence[str] = (),
        delete: bool = False,
        clock: Clock | Literal["database"] = utc_now,
        lock_timeout: float | None = None,
    ) -> None:
        if clock != DATABASE_CLOCK and not callable(clock):
            raise TypeError(f"clock must be a callable or {DATABASE_CLOCK!r}, not {clock!r}")
        if lock_timeout is not None and not (
            isinstance(lock_timeout, (int, float))
            and not isinstance(lock_timeout, bool)
            and 0 <= lock_timeout < math.inf
        ):
            raise ValueError(f"lock_timeout must be a number of seconds >= 0, not {lock_timeout!r}")
        self._engine = self._engine_getter(db_or_engine, model_or_table)
        self.table, column = self._columns(model_or_table)
        self.clock = clock
        self.lock_timeout = lock_timeout
        self.mapping: dict[str, Any] = {"request_id": request_id, "scheduled_at": scheduled_at}

        rid = column(request_id, "request_id")
        scheduled = column(scheduled_at, "scheduled_at")
        self.columns: dict[str, sa.Column[Any]] = {
            "request_id": rid,
            "scheduled_at": scheduled,
        }
        # What makes an entry pending, whatever its schedule and request.
        pending: list[sa.ColumnElement[bool]] = []
        values: dict[sa.Column[Any], Any] = {}

        cancellable = tuple(cancellable)
        if status is not None:
            status_col = self.columns["status"] = column(status, "status")
            if not cancellable:
                raise MappingError("status= needs cancellable= naming at least one status value")
            if delete:
                if cancelled is not _UNSET:
                    raise MappingError("cancelled= has no meaning with delete=True")
            elif cancelled is _UNSET:
                raise MappingError("status= needs cancelled=, the status value written on cancel")
            elif cancelled in cancellable:
                raise MappingError(f"cancelled={cancelled!r} must not be one of cancellable=")
            else:
                values[status_col] = cancelled
            # One bound parameter per value: an "expanding" IN would be
            # rewritten into SQL again at every execution.
            pending.append(
                status_col.in_(
                    [
                        sa.bindparam(f"ec_cancellable_{n}", value, type_=status_col.type)
                        for n, value in enumerate(cancellable)
                    ]
                )
            )
            self.mapping.update(status=status, cancellable=cancellable)
            if not delete:
                self.mapping["cancelled"] = cancelled
        elif cancellable or cancelled is not _UNSET:
            raise MappingError("cancellable= and cancelled= need status=")

        unsent_names = (unsent,) if isinstance(unsent, str) else tuple(unsent)
        self.unsent_columns = tuple(column(name, "unsent") for name in unsent_names)
        pending.extend(c.is_(None) for c in self.unsent_columns)
        if unsent_names:
            self.mapping["unsent"] = unsent_names

        self._stamp: sa.Column[Any] | None = None
        if cancelled_at is not None:
            if delete:
                raise MappingError("cancelled_at= has no meaning with delete=True")
            stamp = self._stamp = self.columns["cancelled_at"] = column(
                cancelled_at, "cancelled_at"
            )
            if status is None:
                # Without a status the stamp is the marker: a stamped entry is done.
                pending.append(stamp.is_(None))
            self.mapping["cancelled_at"] = cancelled_at

        if not delete and not values and self._stamp is None:
            raise MappingError(
                "nothing to write on cancel: give status=/cancellable=/cancelled=, "
                "cancelled_at= (with unsent=), or delete=True"
            )

        where: list[sa.ColumnElement[bool]] = [
            rid == sa.bindparam("ec_request_id", type_=rid.type),
            *pending,
        ]
        self._tenant = tenant is not None
        if tenant is not None:
            tenant_col = self.columns["tenant"] = column(tenant, "tenant")
            where.append(tenant_col == sa.bindparam("ec_tenant", type_=tenant_col.type))
            self.mapping["tenant"] = tenant
        self.delete = delete
        self.mapping["delete"] = delete
        #: The datetime columns' forms as the model or table declares them.
        self.declared_forms = ColumnForms(
            scheduled_aware=_is_aware(scheduled),
            stamp_aware=self._stamp is not None and _is_aware(self._stamp),
            utc_session=any(_is_timestamp(c) for c in (scheduled, self._stamp) if c is not None),
        )
        self._forms: WeakKeyDictionary[Engine, ColumnForms] = WeakKeyDictionary()

        self.pending_criteria: tuple[sa.ColumnElement[bool], ...] = tuple(pending)
        self.request_id_column = rid
        self._where = where
        self._values = values
        self._statements: dict[tuple[str, ColumnForms], Update | Delete] = {}
        self.statement: Update | Delete = self._build(None, self.declared_forms)

    def _build(self, dialect: Dialect | None, forms: ColumnForms) -> Update | Delete:
        """The cancel statement; ``dialect`` is given when the database clock
        is in use, whose SQL differs from one database to the next."""
        scheduled = self.columns["scheduled_at"]
        now = self.now_expression(dialect, scheduled, "ec_now", aware=forms.scheduled_aware)
        where = [*self._where, scheduled > now]
        if self.delete:
            return sa.delete(self.table).where(*where)
        values = dict(self._values)
        if self._stamp is not None:
            values[self._stamp] = self.now_expression(
                dialect, self._stamp, "ec_cancelled_at", aware=forms.stamp_aware
            )
        return sa.update(self.table).where(*where).values(values)

    def column_forms(self, engine: Engine) -> ColumnForms:
        """How ``engine``'s database stores the datetime columns, read from
        the database on first use and then remembered.

        A model may declare ``DateTime`` for a column the database keeps as
        ``timestamp with time zone`` (or the other way round); comparing a
        datetime of the wrong form would go through the session's time zone.
        What the database says wins: PostgreSQL's with or without time zone,
        and MySQL/MariaDB's ``TIMESTAMP`` or ``DATETIME``. SQLite, which keeps
        text, and a database that cannot be inspected yet get the declared
        forms (:attr:`declared_forms`); the latter is asked again next time.
        """
        forms = self._forms.get(engine)
        if forms is None:
            forms = self._read_forms(engine)
            if forms is None:
                return self.declared_forms
            self._forms[engine] = forms
        return forms

    def _read_forms(self, engine: Engine) -> ColumnForms | None:
        dialect = engine.dialect
        declared = self.declared_forms
        if dialect.name != "postgresql" and not _is_mysql(dialect):
            return declared
        try:
            with engine.connect() as connection:
                found = {
                    c["name"]: c["type"]
                    for c in sa.inspect(connection).get_columns(
                        self.table.name, schema=self.table.schema
                    )
                }
        except sa.exc.SQLAlchemyError:
            return None
        scheduled, stamp = self.columns["scheduled_at"], self._stamp
        if _is_mysql(dialect):
            kinds = [found.get(c.name) for c in (scheduled, stamp) if c is not None]
            if any(kind is None for kind in kinds):
                return declared
            return replace(
                declared,
                utc_session=any(isinstance(kind, sa.types.TIMESTAMP) for kind in kinds),
            )

        def aware(column: sa.Column[Any] | None, fallback: bool) -> bool:
            kind = found.get(column.name) if column is not None else None
            return fallback if kind is None else bool(getattr(kind, "timezone", False))

        return replace(
            declared,
            scheduled_aware=aware(scheduled, declared.scheduled_aware),
            stamp_aware=aware(stamp, declared.stamp_aware),
        )

    def uses_database_clock(self, dialect: Dialect) -> bool:
        """Whether "now" is read from the database server's clock on ``dialect``."""
        return self.clock == DATABASE_CLOCK and dialect.name != "sqlite"

    def now_expression(
        self,
        dialect: Dialect | None,
        column: sa.Column[Any],
        name: str,
        *,
        aware: bool | None = None,
    ) -> sa.ColumnElement[Any]:
        """ "Now" as compared with, or written to, the datetime ``column``.

        A bound parameter called ``name`` (filled by :meth:`clock_parameters`)
        for a Python clock; the server's ``CURRENT_TIMESTAMP`` in UTC, in the
        column's own form (aware or naive UTC), for the database clock.
        ``aware`` says which form the database keeps; by default the
        column's declared one.
        """
        if dialect is None or not self.uses_database_clock(dialect):
            return sa.bindparam(name, type_=column.type)
        if dialect.name == "postgresql":
            now = sa.func.current_timestamp()
            if aware is None:
                aware = _is_aware(column)
            return now if aware else sa.func.timezone("UTC", now)
        if _is_mysql(dialect):
            # TIMESTAMP columns read in the session time zone, which
            # write_transaction makes UTC for the statement.
            return sa.func.utc_timestamp(6)
        raise EmailCancelError(
            f"clock={DATABASE_CLOCK!r} is supported on PostgreSQL, MySQL/MariaDB and "
            f"SQLite, not on {dialect.name}"
        )

    def clock_parameters(self, engine: Engine) -> dict[str, Any]:
        """The bound "now" parameters of a statement built with
        :meth:`now_expression`: ``ec_now`` for the schedule and
        ``ec_cancelled_at`` for the stamp, each in the form ``engine``'s
        database keeps its column in (:meth:`column_forms`). Empty on the
        database clock.

        :raises ValueError: when the clock returns a naive datetime.
        """
        if self.uses_database_clock(engine.dialect):
            return {}
        forms = self.column_forms(engine)
        clock = self.clock
        now = clock() if callable(clock) else utc_now()
        if not isinstance(now, datetime) or now.utcoffset() is None:
            raise ValueError("the repository's clock must return an aware datetime")
        params = {"ec_now": _for_column(now, forms.scheduled_aware)}
        if self._stamp is not None:
            params["ec_cancelled_at"] = _for_column(now, forms.stamp_aware)
        return params

    @staticmethod
    def _columns(
        model_or_table: Any,
    ) -> tuple[sa.Table, Callable[[str, str], sa.Column[Any]]]:
        if isinstance(model_or_table, sa.Table):
            table = model_or_table
            lookup: Any = table.c
            label = f"table {table.name!r}"
        else:
            try:
                mapper = sa.inspect(model_or_table)
            except sa.exc.NoInspectionAvailable:
                raise MappingError(
                    "model_or_table must be a mapped class or a Table, "
                    f"not {type(model_or_table).__name__}"
                ) from None
            if not isinstance(mapper, sa.orm.Mapper) or not isinstance(
                mapper.local_table, sa.Table
            ):
                raise MappingError("model_or_table must be a mapped class or a Table")
            table = mapper.local_table
            lookup = mapper.columns
            label = f"model {mapper.class_.__name__}"

        def column(name: str, keyword: str) -> sa.Column[Any]:
            try:
                found = lookup[name]
            except KeyError:
                raise MappingError(
                    f"{label} has no column {name!r} (given as {keyword}=)"
                ) from None
            if not isinstance(found, sa.Column) or found.table is not table:
                raise MappingError(
                    f"{keyword}={name!r} must be a column of table {table.name!r} itself"
                )
            return found

        return table, column

    @staticmethod
    def _engine_getter(db_or_engine: Any, model_or_table: Any) -> Callable[[], Engine]:
        if isinstance(db_or_engine, Engine):
            return lambda: db_or_engine
        engines = getattr(type(db_or_engine), "engines", None)
        if engines is None:
            raise TypeError(
                "db_or_engine must be a Flask-SQLAlchemy SQLAlchemy object or an Engine, "
                f"not {type(db_or_engine).__name__}"
            )
        table = (
            model_or_table
            if isinstance(model_or_table, sa.Table)
            else getattr(model_or_table, "__table__", None)
        )
        bind_key = None
        if isinstance(table, sa.Table):
            bind_key = table.info.get("bind_key", table.metadata.info.get("bind_key"))
        return lambda: db_or_engine.engines[bind_key]

    @property
    def engine(self) -> Engine:
        """The engine the cancel runs on (needs an app context with
        Flask-SQLAlchemy)."""
        return self._engine()

    def statement_for(self, engine: Engine) -> Update | Delete:
        """The cancel statement as run on ``engine``."""
        dialect = engine.dialect
        if not self.uses_database_clock(dialect):
            return self.statement
        key = (dialect.name, self.column_forms(engine))
        statement = self._statements.get(key)
        if statement is None:
            statement = self._statements[key] = self._build(dialect, key[1])
        return statement

    def cancel(self, request_id: int, principal: Principal) -> int:
        """Cancel the pending, later-scheduled entries of ``request_id`` that
        ``principal`` may cancel, in one statement; return how many.

        :raises LockTimeout: when an entry stayed locked (by a sender) longer
            than ``lock_timeout``; nothing was cancelled.
        """
        params: dict[str, Any] = {"ec_request_id": request_id}
        if self._tenant:
            if principal.tenant is None:
                return 0
            params["ec_tenant"] = principal.tenant
        engine = self.engine
        params.update(self.clock_parameters(engine))
        statement = self.statement_for(engine)

        def work(connection: Connection) -> int:
            return int(connection.execute(statement, params).rowcount)

        return run_write(
            engine,
            work,
            lock_timeout=self.lock_timeout,
            utc_session=self.column_forms(engine).utc_session,
        )

    def index_warning(self) -> str | None:
        """Inspect the database: ``None`` when an index (or the primary key)
        leads with the request-id column, else a warning naming the table, the
        column and the ``CREATE INDEX`` statement that would fix it.

        Without such an index every cancel scans the whole queue table and, on
        MySQL/MariaDB, locks every row it scans.

        :raises sqlalchemy.exc.NoSuchTableError: when the table does not exist.
        """
        with self.engine.connect() as connection:
            return self._index_warning(connection)

    def _index_warning(self, connection: Connection) -> str | None:
        dialect = connection.dialect
        inspector = sa.inspect(connection)
        name, schema = self.table.name, self.table.schema
        leading: set[str] = set()
        found: list[Sequence[str | None] | None] = [
            inspector.get_pk_constraint(name, schema=schema).get("constrained_columns")
        ]
        found.extend(ix.get("column_names") for ix in inspector.get_indexes(name, schema=schema))
        try:
            unique = inspector.get_unique_constraints(name, schema=schema)
        except NotImplementedError:  # pragma: no cover - every supported dialect has it
            unique = []
        found.extend(uq.get("column_names") for uq in unique)
        for columns in found:
            if columns and columns[0] is not None:
                leading.add(columns[0].lower())
        column = self.request_id_column.name
        if column.lower() in leading:
            return None
        preparer = dialect.identifier_preparer
        index = preparer.quote(f"ix_{name}_{column}"[: dialect.max_identifier_length or 63])
        target = f"{preparer.format_table(self.table)} ({preparer.quote(column)})"
        ddl = f"CREATE INDEX {index} ON {target}"
        label = f"{schema}.{name}" if schema else name
        return (
            f"flask-email-cancel: the request-id column {column!r} of table {label!r} has no "
            "index, so every cancel scans the whole table (and, on MySQL/MariaDB, locks "
            f"every row it scans). Create one: {ddl}"
        )

    def init_app(self, app: Flask) -> None:
        """Check the table once when the extension is set up on ``app``:
        log :meth:`index_warning` as a warning on ``app.logger``.

        A database that cannot be inspected yet (not reachable, table not
        created) is logged at debug level and does not stop the app.
        """
        try:
            with app.app_context(), self.engine.connect() as connection:
                try:
                    warning = self._index_warning(connection)
                finally:
                    if connection.dialect.name != "sqlite":
                        # This may run before a server forks its workers
                        # (gunicorn --preload): a connection left in the pool
                        # would be shared by all of them.
                        connection.invalidate()
        except Exception as exc:
            app.logger.debug("flask-email-cancel: could not check the queue table's index: %s", exc)
            return
        if warning is not None:
            app.logger.warning("%s", warning)
