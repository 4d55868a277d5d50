"""The :class:`QueueRepository` protocol and the in-memory repository.

A repository cancels, in one atomic step, every entry of an email request that
is still pending and scheduled strictly after now, and says how many it
cancelled. The SQL implementation is
:class:`~flask_email_cancel.SQLAlchemyQueueRepository`.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Protocol, TypeAlias, runtime_checkable

from .auth import Principal

__all__ = [
    "Clock",
    "InMemoryQueueRepository",
    "QueueEntry",
    "QueueRepository",
    "utc_now",
]

Clock = Callable[[], datetime]
"""A callable returning the current time as an aware datetime."""


def utc_now() -> datetime:
    """The default clock: the current time, aware, in UTC."""
    return datetime.now(timezone.utc)


@runtime_checkable
class QueueRepository(Protocol):
    """Cancels the pending, later-scheduled entries of one email request.

    A plain callable ``(request_id, principal) -> int`` is accepted wherever a
    repository is.
    """

    def cancel(self, request_id: int, principal: Principal) -> int:
        """Cancel the entries of ``request_id`` that ``principal`` may cancel
        and that are pending and scheduled strictly after now, atomically.

        :returns: how many entries this call cancelled (0 when none).
        """


QueueRepositoryLike: TypeAlias = "QueueRepository | Callable[[int, Principal], int]"
"""A :class:`QueueRepository` or a plain callable of the same signature."""


def as_callable(repository: QueueRepositoryLike) -> Callable[[int, Principal], int]:
    """Return the bound ``cancel`` of a repository object, or the callable."""
    method = getattr(repository, "cancel", None)
    if callable(method):
        return method  # type: ignore[no-any-return]
    if callable(repository):
        return repository
    raise TypeError(
        "repository must have a cancel(request_id, principal) method or be a callable, "
        f"not {type(repository).__name__}"
    )


@dataclass(frozen=True)
class QueueEntry:
    """One recipient entry held by :class:`InMemoryQueueRepository`."""

    #: The entry's own id, given in order of :meth:`InMemoryQueueRepository.add`.
    id: int
    #: The email request the entry belongs to.
    request_id: int
    #: When it is to be sent (aware); ``None``: as soon as possible.
    scheduled_at: datetime | None
    #: Its status; one of the repository's ``cancellable`` while pending.
    status: Hashable = "pending"
    #: The tenant that owns it, if any.
    tenant: str | None = None
    #: When it was cancelled, once it was.
    cancelled_at: datetime | None = None


class InMemoryQueueRepository:
    """A thread-safe queue kept in memory, for tests and examples.

    Same semantics as the SQL repository: an entry is cancelled when its
    status is one of ``cancellable``, its ``scheduled_at`` is strictly after
    the clock's now (``None`` means "send as soon as possible" and is never
    cancellable) and, when the principal has a tenant or the entry has one,
    the two are equal.

    :param cancellable: statuses that may be cancelled.
    :param cancelled: the status written on cancel.
    :param clock: returns the current aware time; defaults to UTC now.
    """

    def __init__(
        self,
        *,
        cancellable: Iterable[Hashable] = ("pending",),
        cancelled: Hashable = "cancelled",
        clock: Clock = utc_now,
    ) -> None:
        self.cancellable = frozenset(cancellable)
        if not self.cancellable:
            raise ValueError("cancellable must name at least one status")
        if cancelled in self.cancellable:
            raise ValueError("the cancelled status must not itself be cancellable")
        self.cancelled = cancelled
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[int, QueueEntry] = {}
        self._ids = itertools.count(1)

    def add(
        self,
        request_id: int,
        scheduled_at: datetime | None,
        *,
        status: Hashable = "pending",
        tenant: str | None = None,
    ) -> QueueEntry:
        """Queue one entry and return it. ``scheduled_at`` must be aware."""
        if scheduled_at is not None and scheduled_at.utcoffset() is None:
            raise ValueError("scheduled_at must be an aware datetime")
        with self._lock:
            entry = QueueEntry(next(self._ids), request_id, scheduled_at, status, tenant)
            self._entries[entry.id] = entry
        return entry

    def set_status(self, entry_id: int, status: Hashable) -> QueueEntry:
        """Change one entry's status (as a sender would) and return it."""
        with self._lock:
            entry = self._entries[entry_id] = replace(self._entries[entry_id], status=status)
        return entry

    def entries(self, request_id: int | None = None) -> list[QueueEntry]:
        """A snapshot of the entries, of one request or of all."""
        with self._lock:
            return [e for e in self._entries.values() if request_id in (None, e.request_id)]

    def cancel(self, request_id: int, principal: Principal) -> int:
        """Cancel the matching entries atomically; return how many."""
        now = self.clock()
        with self._lock:
            hits = [
                e
                for e in self._entries.values()
                if e.request_id == request_id
                and e.status in self.cancellable
                and e.scheduled_at is not None
                and e.scheduled_at > now
                and e.tenant == principal.tenant
            ]
            for e in hits:
                self._entries[e.id] = replace(e, status=self.cancelled, cancelled_at=now)
        return len(hits)
