"""The SQL queue repository: one conditional ``UPDATE`` (or ``DELETE``) on the
host's own queue table.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.dml import Delete, Update

from .auth import Principal
from .exceptions import MappingError
from .repository import Clock, utc_now

__all__ = ["SQLAlchemyQueueRepository"]

_UNSET: Any = object()


def _is_aware(column: sa.Column[Any]) -> bool:
    """Whether a datetime column stores time zones (else it holds naive UTC)."""
    type_ = column.type
    if isinstance(type_, sa.types.TypeDecorator):
        type_ = type_.impl_instance
    return bool(getattr(type_, "timezone", False))


def _for_column(now: datetime, aware: bool) -> datetime:
    now = now.astimezone(timezone.utc)
    return now if aware else now.replace(tzinfo=None)


class SQLAlchemyQueueRepository:
    """Cancels entries in the host's existing queue table with one atomic
    conditional statement whose row count is the answer.

    The statement is, for the status shape::

        UPDATE entries SET status = :cancelled [, cancelled_at = :now]
        WHERE request_id = :id AND status IN (:cancellable...)
          AND scheduled_at > :now [AND tenant = :tenant]

    It runs on a connection of its own in a transaction of its own: pending
    work in the host's session is neither committed nor rolled back.

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
        clock: Clock = utc_now,
    ) -> None:
        self._engine = self._engine_getter(db_or_engine, model_or_table)
        self.table, column = self._columns(model_or_table)
        self.clock = clock
        self.mapping: dict[str, Any] = {"request_id": request_id, "scheduled_at": scheduled_at}

        rid = column(request_id, "request_id")
        scheduled = column(scheduled_at, "scheduled_at")
        self._scheduled_aware = _is_aware(scheduled)
        where: list[sa.ColumnElement[bool]] = [
            rid == sa.bindparam("ec_request_id", type_=rid.type),
            scheduled > sa.bindparam("ec_now", type_=scheduled.type),
        ]
        values: dict[sa.Column[Any], Any] = {}

        cancellable = tuple(cancellable)
        if status is not None:
            status_col = column(status, "status")
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
            where.append(status_col.in_(cancellable))
            self.mapping.update(status=status, cancellable=cancellable)
            if not delete:
                self.mapping["cancelled"] = cancelled
        elif cancellable or cancelled is not _UNSET:
            raise MappingError("cancellable= and cancelled= need status=")

        unsent_names = (unsent,) if isinstance(unsent, str) else tuple(unsent)
        for name in unsent_names:
            where.append(column(name, "unsent").is_(None))
        if unsent_names:
            self.mapping["unsent"] = unsent_names

        self._cancelled_at_aware = False
        if cancelled_at is not None:
            if delete:
                raise MappingError("cancelled_at= has no meaning with delete=True")
            stamp = column(cancelled_at, "cancelled_at")
            self._cancelled_at_aware = _is_aware(stamp)
            values[stamp] = sa.bindparam("ec_cancelled_at", type_=stamp.type)
            if status is None:
                # Without a status the stamp is the marker: a stamped entry is done.
                where.append(stamp.is_(None))
            self.mapping["cancelled_at"] = cancelled_at

        if not delete and not values:
            raise MappingError(
                "nothing to write on cancel: give status=/cancellable=/cancelled=, "
                "cancelled_at= (with unsent=), or delete=True"
            )

        self._tenant = tenant is not None
        if tenant is not None:
            tenant_col = column(tenant, "tenant")
            where.append(tenant_col == sa.bindparam("ec_tenant", type_=tenant_col.type))
            self.mapping["tenant"] = tenant
        self.delete = delete
        self.mapping["delete"] = delete

        self.request_id_column = rid
        self.statement: Update | Delete = (
            sa.delete(self.table).where(*where)
            if delete
            else sa.update(self.table).where(*where).values(values)
        )

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

    def cancel(self, request_id: int, principal: Principal) -> int:
        """Cancel the pending, later-scheduled entries of ``request_id`` that
        ``principal`` may cancel, in one statement; return how many."""
        params: dict[str, Any] = {"ec_request_id": request_id}
        if self._tenant:
            if principal.tenant is None:
                return 0
            params["ec_tenant"] = principal.tenant
        now = self.clock()
        if now.utcoffset() is None:
            raise ValueError("the repository's clock must return an aware datetime")
        params["ec_now"] = _for_column(now, self._scheduled_aware)
        if "cancelled_at" in self.mapping:
            params["ec_cancelled_at"] = _for_column(now, self._cancelled_at_aware)
        with self.engine.begin() as connection:
            return self._execute(connection, params)

    def _execute(self, connection: Connection, params: dict[str, Any]) -> int:
        result = connection.execute(self.statement, params)
        return int(result.rowcount)
