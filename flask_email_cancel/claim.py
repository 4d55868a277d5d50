"""The sender's half of the contract: claim due entries before sending them,
and finish each with a guarded update.

A cancel only touches entries whose status is still one of the repository's
``cancellable`` values. A sender that flips an entry to its ``sending`` status
in a transaction of its own *before* it sends, and writes the final status
only where the entry is still ``sending``, can therefore never send an entry
that was cancelled, and a cancel can never count an entry that is being sent
or was sent.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from .exceptions import EmailCancelError, MappingError
from .sql import SQLAlchemyQueueRepository, run_write

__all__ = ["QueueClaimer"]

_SAME: Any = object()


class QueueClaimer:
    """Claims due entries of the table a :class:`~flask_email_cancel.SQLAlchemyQueueRepository`
    cancels in, with the same mapping, for a sender (dispatcher) to send.

    An entry is due when it is pending (as the repository defines it: a
    ``cancellable`` status, ``unsent`` columns NULL) and scheduled at or
    before now, or not scheduled at all. :meth:`claim` flips due entries to
    ``sending`` in one transaction:

    - PostgreSQL::

        UPDATE entries SET status = :sending
        WHERE id IN (SELECT id FROM entries
                     WHERE status IN (:cancellable...)
                       AND (scheduled_at IS NULL OR scheduled_at <= :now)
                     ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED)
          AND status IN (:cancellable...)
        RETURNING *

    - SQLite: the same statement (without ``FOR UPDATE``) in a ``BEGIN
      IMMEDIATE`` transaction, which no other writer can interleave with.
    - MySQL/MariaDB, which cannot update a table it selects from in a
      subquery, at ``READ COMMITTED``: ``SELECT id ... FOR UPDATE SKIP
      LOCKED``, then ``UPDATE ... SET status = :sending WHERE id IN (:ids)
      AND status IN (:cancellable...)``, then the rows are read back.

    Entries of every tenant are claimed. Rows locked by another claimer or by
    a cancel are skipped, never waited for. After sending, :meth:`finish`
    writes the outcome only where the entry is still ``sending``.

    :param repository: the repository whose table and mapping to use; it must
        map a ``status`` column. Its clock (Python or database) decides what
        is due, and its engine is used.
    :param sending: the status written on claim. Must not be cancellable.
    :param sent: the status :meth:`finish` writes by default. Must not be
        cancellable.
    :param lock_timeout: the longest a claim or finish waits for a lock, in
        seconds; defaults to the repository's.
    :raises MappingError: when the repository maps no status column, the
        table has no single-column primary key, or the statuses collide.
    """

    def __init__(
        self,
        repository: SQLAlchemyQueueRepository,
        *,
        sending: Hashable,
        sent: Hashable,
        lock_timeout: float | None = _SAME,
    ) -> None:
        status = repository.columns.get("status")
        if status is None:
            raise MappingError(
                "claiming needs a status column: map status=, cancellable= and cancelled= "
                "on the repository"
            )
        cancellable = tuple(repository.mapping["cancellable"])
        for name, value in (("sending", sending), ("sent", sent)):
            if value in cancellable:
                raise MappingError(f"{name}={value!r} must not be one of cancellable=")
        if sending == sent or sending == repository.mapping.get("cancelled", _SAME):
            raise MappingError(f"sending={sending!r} must differ from sent= and cancelled=")
        key = list(repository.table.primary_key.columns)
        if len(key) != 1:
            raise MappingError(
                f"table {repository.table.name!r} needs a primary key of one column to be claimed"
            )
        self.repository = repository
        self.sending = sending
        self.sent = sent
        self.lock_timeout = repository.lock_timeout if lock_timeout is _SAME else lock_timeout
        self.key: sa.Column[Any] = key[0]
        self.status: sa.Column[Any] = status
        self._statements: dict[tuple[str, bool], Any] = {}
        table = repository.table
        self._finish = (
            sa.update(table)
            .where(
                self.key == sa.bindparam("ec_id", type_=self.key.type),
                status == sa.bindparam("ec_sending", type_=status.type),
            )
            .values({status: sa.bindparam("ec_status", type_=status.type)})
        )

    def _due(self, dialect: Dialect, aware: bool) -> sa.Select[Any]:
        scheduled = self.repository.columns["scheduled_at"]
        now = self.repository.now_expression(dialect, scheduled, "ec_now", aware=aware)
        return (
            sa.select(self.key)
            .where(
                *self.repository.pending_criteria,
                sa.or_(scheduled.is_(None), scheduled <= now),
            )
            .order_by(self.key)
            .limit(sa.bindparam("ec_limit", type_=sa.Integer))
            .with_for_update(skip_locked=True)
        )

    def _one_statement(self, dialect: Dialect) -> bool:
        return bool(dialect.update_returning) and dialect.name not in ("mysql", "mariadb")

    def _flip(self, dialect: Dialect, aware: bool) -> Any:
        statement = self._statements.get((dialect.name, aware))
        if statement is None:
            due = self._due(dialect, aware)
            table = self.repository.table
            flip = sa.update(table).values({self.status: self.sending})
            pending = self.repository.pending_criteria
            if self._one_statement(dialect):
                statement = flip.where(self.key.in_(due.scalar_subquery()), *pending).returning(
                    *table.c
                )
            else:
                ids = sa.bindparam("ec_ids", expanding=True, type_=self.key.type)
                statement = (due, flip.where(self.key.in_(ids), *pending))
            self._statements[(dialect.name, aware)] = statement
        return statement

    def claim(self, limit: int = 100) -> list[sa.Row[Any]]:
        """Claim up to ``limit`` due entries, oldest key first: flip them to
        ``sending`` and return their rows as claimed (in key order).

        Send each returned entry, then call :meth:`finish` with its key.

        :raises LockTimeout: when the table stayed locked longer than
            ``lock_timeout`` (SQLite); nothing was claimed.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive int, not {limit!r}")
        engine = self.repository.engine
        dialect = engine.dialect
        params = {"ec_limit": limit}
        params.update(
            {k: v for k, v in self.repository.clock_parameters(engine).items() if k == "ec_now"}
        )
        forms = self.repository.column_forms(engine)
        statement = self._flip(dialect, forms.scheduled_aware)

        def work(connection: Connection) -> list[sa.Row[Any]]:
            if not isinstance(statement, tuple):
                rows = connection.execute(statement, params).all()
                return sorted(rows, key=lambda row: row._mapping[self.key])
            due, flip = statement
            ids = connection.execute(due, params).scalars().all()
            if not ids:
                return []
            flipped = connection.execute(flip, {"ec_ids": ids}).rowcount
            if flipped != len(ids):
                # Cannot happen while the rows are locked; roll back rather
                # than hand out entries this claim does not hold.
                raise EmailCancelError(f"claimed {len(ids)} locked entries but flipped {flipped}")
            table = self.repository.table
            select = sa.select(table).where(self.key.in_(ids)).order_by(self.key)
            return list(connection.execute(select).all())

        return run_write(
            engine,
            work,
            lock_timeout=self.lock_timeout,
            read_committed=True,
            utc_session=forms.utc_session,
        )

    def finish(self, entry_id: Any, status: Hashable = _SAME) -> bool:
        """Write the outcome of a claimed entry, only where it is still
        ``sending``; return whether it was.

        :param entry_id: the entry's primary key.
        :param status: the outcome; defaults to ``sent``. A ``cancellable``
            status puts the entry back in the queue (to be sent again later,
            or cancelled).
        :raises LockTimeout: when the row stayed locked longer than
            ``lock_timeout``; nothing was written.
        """
        outcome = self.sent if status is _SAME else status
        if outcome == self.sending:
            raise ValueError("the outcome of a send must differ from the sending status")
        params = {"ec_id": entry_id, "ec_sending": self.sending, "ec_status": outcome}

        def work(connection: Connection) -> bool:
            return int(connection.execute(self._finish, params).rowcount) == 1

        engine = self.repository.engine
        return run_write(
            engine,
            work,
            lock_timeout=self.lock_timeout,
            utc_session=self.repository.column_forms(engine).utc_session,
        )
