"""QueueClaimer: the sender's claim and guarded finish, on each database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from flask_email_cancel import (
    DATABASE_CLOCK,
    MappingError,
    Principal,
    QueueClaimer,
    SQLAlchemyQueueRepository,
)

from .conftest import NOW, PRECISE_DATETIME, queue_repository, queue_table

OPS = Principal("ops")
REQUEST = 99


def naive(seconds: float) -> Any:
    return (NOW + timedelta(seconds=seconds)).replace(tzinfo=None)


def statuses(engine: sa.Engine, table: sa.Table) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(table.c.status).order_by(table.c.id)).scalars())


@pytest.fixture
def seeded(engine, queue):
    """Entries 1-6: due, due, due now, later, unscheduled (due), sent."""
    with engine.begin() as conn:
        conn.execute(
            queue.insert(),
            [
                {"id": 1, "request_id": REQUEST, "status": "pending", "scheduled_at": naive(-60)},
                {"id": 2, "request_id": REQUEST, "status": "retry", "scheduled_at": naive(-1)},
                {"id": 3, "request_id": REQUEST, "status": "pending", "scheduled_at": naive(0)},
                {"id": 4, "request_id": REQUEST, "status": "pending", "scheduled_at": naive(1)},
                {"id": 5, "request_id": REQUEST, "status": "pending", "scheduled_at": None},
                {"id": 6, "request_id": REQUEST, "status": "sent", "scheduled_at": naive(-60)},
            ],
        )
    return queue


def claimer_for(engine: sa.Engine, table: sa.Table, clock: Any, **options: Any) -> QueueClaimer:
    repo = queue_repository(engine, table, clock=clock, cancellable=["pending", "retry"])
    return QueueClaimer(repo, sending="sending", sent="sent", **options)


def test_claim_flips_due_pending_entries_and_returns_their_rows(engine, seeded, clock):
    claimer = claimer_for(engine, seeded, clock)

    rows = claimer.claim(limit=10)

    assert [(r.id, r.status) for r in rows] == [
        (1, "sending"),
        (2, "sending"),
        (3, "sending"),
        (5, "sending"),
    ]
    assert statuses(engine, seeded) == [
        "sending",
        "sending",
        "sending",
        "pending",
        "sending",
        "sent",
    ]
    assert claimer.claim(limit=10) == []


def test_claim_takes_at_most_limit_in_key_order(engine, seeded, clock):
    claimer = claimer_for(engine, seeded, clock)
    assert [r.id for r in claimer.claim(limit=2)] == [1, 2]
    assert [r.id for r in claimer.claim(limit=2)] == [3, 5]


def test_claimed_entries_are_not_cancellable_and_cancelled_ones_not_claimable(
    engine, seeded, clock
):
    claimer = claimer_for(engine, seeded, clock)
    claimer.claim(limit=1)  # entry 1
    clock.now = NOW - timedelta(hours=1)  # everything but entry 5 is later now
    assert claimer.repository.cancel(REQUEST, OPS) == 3  # 2, 3, 4
    clock.now = NOW + timedelta(hours=1)
    assert [r.id for r in claimer.claim(limit=10)] == [5]
    assert statuses(engine, seeded) == [
        "sending",
        "cancelled",
        "cancelled",
        "cancelled",
        "sending",
        "sent",
    ]


def test_finish_is_guarded_by_the_sending_status(engine, seeded, clock):
    claimer = claimer_for(engine, seeded, clock)
    (first, *_) = claimer.claim(limit=1)

    assert claimer.finish(first.id) is True
    assert claimer.finish(first.id) is False  # already sent: nothing written
    assert claimer.finish(4) is False  # never claimed
    assert statuses(engine, seeded)[:4] == ["sent", "retry", "pending", "pending"]


def test_finish_with_a_cancellable_status_puts_the_entry_back(engine, seeded, clock):
    claimer = claimer_for(engine, seeded, clock)
    claimer.claim(limit=1)
    assert claimer.finish(1, "retry") is True
    assert statuses(engine, seeded)[0] == "retry"
    assert [r.id for r in claimer.claim(limit=1)] == [1]
    with pytest.raises(ValueError, match="differ"):
        claimer.finish(1, "sending")


def test_database_clock_decides_what_is_due(engine, metadata, table_name):
    table = queue_table(metadata, table_name)
    metadata.create_all(engine)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [
                {
                    "id": 1,
                    "request_id": 1,
                    "status": "pending",
                    "scheduled_at": now - timedelta(minutes=10),
                },
                {
                    "id": 2,
                    "request_id": 1,
                    "status": "pending",
                    "scheduled_at": now + timedelta(minutes=10),
                },
            ],
        )
    claimer = claimer_for(engine, table, DATABASE_CLOCK)
    assert [r.id for r in claimer.claim()] == [1]


def test_claimer_needs_a_status_mapping(engine, queue):
    repo = SQLAlchemyQueueRepository(
        engine,
        queue,
        request_id="request_id",
        scheduled_at="scheduled_at",
        unsent="tenant",
        cancelled_at="cancelled_at",
    )
    with pytest.raises(MappingError, match="status column"):
        QueueClaimer(repo, sending="sending", sent="sent")


@pytest.mark.parametrize(
    "sending, sent, message",
    [
        ("pending", "sent", "sending='pending' must not be one of cancellable"),
        ("sending", "pending", "sent='pending' must not be one of cancellable"),
        ("sending", "sending", "must differ"),
        ("cancelled", "sent", "must differ"),
    ],
)
def test_claimer_refuses_colliding_statuses(engine, queue, sending, sent, message):
    with pytest.raises(MappingError, match=message):
        QueueClaimer(queue_repository(engine, queue), sending=sending, sent=sent)


def test_claimer_needs_a_single_column_key(engine, metadata, table_name):
    table = sa.Table(
        table_name,
        metadata,
        sa.Column("a", sa.Integer, primary_key=True),
        sa.Column("b", sa.Integer, primary_key=True),
        sa.Column("request_id", sa.BigInteger),
        sa.Column("status", sa.String(16)),
        sa.Column("scheduled_at", PRECISE_DATETIME),
    )
    repo = queue_repository(engine, table, cancelled_at=None)
    with pytest.raises(MappingError, match="primary key of one column"):
        QueueClaimer(repo, sending="sending", sent="sent")


@pytest.mark.parametrize("limit", [0, -1, True, 1.5])
def test_claim_limit_must_be_positive(engine, queue, clock, limit):
    with pytest.raises(ValueError, match="limit"):
        claimer_for(engine, queue, clock).claim(limit=limit)
