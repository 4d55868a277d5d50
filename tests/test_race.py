"""The race between cancels and senders, in threads, on each database.

Senders claim due entries with :class:`QueueClaimer`, record each send and
finish it; cancel clients cancel requests whose entries straddle "now" while
"now" moves on. The invariants are the library's promise: no entry both sent
and cancelled, every entry in exactly one final state, and every reported
count equal to the rows its own call changed.
"""

from __future__ import annotations

import copy
import queue as queues
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from flask_email_cancel import Principal, QueueClaimer

from .conftest import NOW, backend_of, queue_repository, queue_table

OPS = Principal("ops")
ENTRIES = 5000
REQUESTS = 500
REPEATS = 100  # requests cancelled twice, by racing clients
SENDERS = 4
CANCELLERS = 4
ROUNDS = 3
WINDOW = timedelta(seconds=100)  # simulated time the cancels span
# The senders' clock runs this far ahead of the cancels' (as clocks of two
# machines may): entries scheduled in between are wanted by both at once.
LEAD = timedelta(seconds=10)
SAFETY = 300  # seconds: a stuck round fails instead of hanging


class RaceClock:
    """Simulated UTC time, strictly increasing, that moves through the window
    as cancels complete; remembers each thread's last reading."""

    def __init__(self, start: datetime, cancels: int) -> None:
        self.start = start
        self.cancels = cancels
        self.done = 0
        self.last = start - timedelta(microseconds=1)
        self.local = threading.local()
        self._lock = threading.Lock()

    def advance(self) -> None:
        with self._lock:
            self.done += 1

    def run_out(self) -> None:
        """Jump past the window: every entry is due."""
        with self._lock:
            self.done = 2 * self.cancels

    def __call__(self) -> datetime:
        with self._lock:
            target = self.start + WINDOW * (self.done / self.cancels)
            self.last = max(target, self.last + timedelta(microseconds=1))
            self.local.last = self.last
            return self.last


@dataclass
class Round:
    cancels: list[tuple[int, datetime, int]] = field(default_factory=list)  # request, now, count
    sends: list[int] = field(default_factory=list)
    failed_finishes: list[int] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)


def seed(engine: sa.Engine, table: sa.Table, first_id: int, start: datetime) -> None:
    rng = random.Random(first_id)
    per_request = ENTRIES // REQUESTS
    rows = []
    for n in range(ENTRIES):
        # From a little before the window to a little after it, to the microsecond.
        offset = timedelta(microseconds=rng.randrange(-(10**7), 110 * 10**6))
        rows.append(
            {
                "id": first_id + n,
                "request_id": first_id + n // per_request,
                "status": "pending",
                "scheduled_at": (start + offset).replace(tzinfo=None),
            }
        )
    with engine.begin() as conn:
        conn.execute(table.delete())
        conn.execute(table.insert(), rows)


def run_round(engine: sa.Engine, table: sa.Table, number: int) -> dict[str, int]:
    first_id = 1 + number * ENTRIES
    start = NOW + timedelta(days=number)
    seed(engine, table, first_id, start)
    requests = [first_id + r for r in range(REQUESTS)]
    plan = requests + random.Random(number).sample(requests, REPEATS)
    random.Random(-number).shuffle(plan)
    clock = RaceClock(start, len(plan))
    repo = queue_repository(engine, table, clock=clock, lock_timeout=30)
    sender_repo = queue_repository(engine, table, clock=lambda: clock() + LEAD, lock_timeout=30)
    claimer = QueueClaimer(sender_repo, sending="sending", sent="sent")
    result = Round()
    work: queues.SimpleQueue[int] = queues.SimpleQueue()
    for request_id in plan:
        work.put(request_id)
    cancels_over = threading.Event()

    def cancel_client() -> None:
        try:
            while True:
                try:
                    request_id = work.get_nowait()
                except queues.Empty:
                    return
                count = repo.cancel(request_id, OPS)
                result.cancels.append((request_id, clock.local.last, count))
                clock.advance()
        except BaseException as exc:
            result.errors.append(exc)

    def sender() -> None:
        try:
            while True:
                over = cancels_over.is_set()
                claimed = claimer.claim(limit=10)
                if not claimed:
                    if over:
                        return
                    time.sleep(0.001)
                    continue
                for row in claimed:
                    result.sends.append(row.id)  # "sent"
                    if not claimer.finish(row.id):
                        result.failed_finishes.append(row.id)
        except BaseException as exc:
            result.errors.append(exc)

    senders = [threading.Thread(target=sender) for _ in range(SENDERS)]
    clients = [threading.Thread(target=cancel_client) for _ in range(CANCELLERS)]
    for thread in senders + clients:
        thread.start()
    for thread in clients:
        thread.join(SAFETY)
    clock.run_out()
    cancels_over.set()
    for thread in senders:
        thread.join(SAFETY)
    assert not any(t.is_alive() for t in senders + clients), "a worker is stuck"
    assert result.errors == []

    with engine.connect() as conn:
        final = conn.execute(
            sa.select(
                table.c.id,
                table.c.request_id,
                table.c.status,
                table.c.scheduled_at,
                table.c.cancelled_at,
            )
        ).all()
    status = {row.id: row.status for row in final}
    cancelled = {row.id for row in final if row.status == "cancelled"}
    sent_rows = {row.id for row in final if row.status == "sent"}
    sends = Counter(result.sends)
    stamps = Counter(row.cancelled_at for row in final if row.status == "cancelled")

    violations = (
        len(set(sends) & cancelled)  # sent and cancelled
        + sum(n - 1 for n in sends.values())  # sent twice
        + sum(1 for s in status.values() if s not in ("sent", "cancelled"))  # no final state
        + len(set(sends) ^ sent_rows)  # a send without its row, or the reverse
        + len(result.failed_finishes)
        + sum(  # a count that is not the rows its own call changed
            1
            for _, now, count in result.cancels
            if stamps.get(now.astimezone(timezone.utc).replace(tzinfo=None), 0) != count
        )
    )
    # Entries a cancel would have taken by their schedule, but a sender had
    # claimed first.
    first_cancel: dict[int, datetime] = {}
    for request_id, now, _ in result.cancels:
        first_cancel[request_id] = min(now, first_cancel.get(request_id, now))
    raced = sum(
        1
        for row in final
        if row.status == "sent"
        and row.scheduled_at.replace(tzinfo=timezone.utc) > first_cancel[row.request_id]
    )
    figures = {
        "entries": len(final),
        "requests": REQUESTS,
        "cancels": len(result.cancels),
        "cancelled": len(cancelled),
        "counted": sum(count for _, _, count in result.cancels),
        "sends": len(result.sends),
        "raced": raced,
        "violations": violations,
    }
    assert len(final) == ENTRIES
    assert len(result.cancels) == REQUESTS + REPEATS
    assert figures["counted"] == len(cancelled)
    assert len(cancelled) + len(sent_rows) == ENTRIES
    assert violations == 0, figures
    return figures


@pytest.mark.slow
def test_cancels_and_senders_never_share_an_entry(engine, metadata, table_name, capsys):
    table = queue_table(metadata, table_name)
    metadata.create_all(engine)
    totals: Counter[str] = Counter()
    for number in range(ROUNDS):
        figures = run_round(engine, table, number)
        totals.update(figures)
        with capsys.disabled():
            print(
                f"\n[race {backend_of(engine)} round {number + 1}] "
                + " ".join(f"{k}={v}" for k, v in figures.items())
            )
    with capsys.disabled():
        print(
            f"\n[race {backend_of(engine)} total] "
            + " ".join(f"{k}={v}" for k, v in totals.items())
        )
    assert totals["violations"] == 0
    assert totals["cancelled"] > 0 and totals["sends"] > 0


@pytest.mark.slow
@pytest.mark.parametrize(
    "options",
    [
        # SQLite's default journal, as a host that has not turned WAL on has.
        pytest.param({"wal": False}, id="rollback-journal", marks=pytest.mark.backends("sqlite")),
        # MySQL drivers reporting changed rather than matched rows.
        pytest.param(
            {"connect_args": {"client_flag": 0}},
            id="changed-rows",
            marks=pytest.mark.backends("mysql"),
        ),
    ],
)
def test_race_holds_on_other_engine_settings(
    engine, engine_factory, metadata, table_name, capsys, request, options
):
    table = queue_table(metadata, table_name)
    metadata.create_all(engine)
    figures = run_round(engine_factory(**copy.deepcopy(options)), table, ROUNDS)
    with capsys.disabled():
        print(
            f"\n[race {request.node.callspec.id}] "
            + " ".join(f"{k}={v}" for k, v in figures.items())
        )
    assert figures["violations"] == 0
