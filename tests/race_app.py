"""The two sides of the multi-process race: the host app gunicorn serves, and
the sender process. Both read their table from the environment.

``EMAIL_CANCEL_RACE_URL``
    the database's SQLAlchemy URL.
``EMAIL_CANCEL_RACE_TABLE``
    the queue table (as made by ``tests.conftest.queue_table``).
``EMAIL_CANCEL_RACE_TOKEN``
    the token cancel clients send in ``X-VoltMX-Authorization``.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from flask import Flask

from flask_email_cancel import (
    DATABASE_CLOCK,
    EmailCancel,
    Principal,
    QueueClaimer,
    SQLAlchemyQueueRepository,
    TokenHeaderAuth,
)

ENGINE_OPTIONS: dict[str, Any] = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 5}}


def _repository(url: str, table_name: str, **options: Any) -> SQLAlchemyQueueRepository:
    engine = sa.create_engine(url, **ENGINE_OPTIONS)
    table = sa.Table(table_name, sa.MetaData(), autoload_with=engine)
    return SQLAlchemyQueueRepository(
        engine,
        table,
        request_id="request_id",
        scheduled_at="scheduled_at",
        status="status",
        cancellable=["pending"],
        cancelled="cancelled",
        cancelled_at="cancelled_at",
        **options,
    )


def create_app() -> Flask:
    """The host app: the blueprint over the race table, on the database's clock."""
    app = Flask(__name__)
    repository = _repository(
        os.environ["EMAIL_CANCEL_RACE_URL"],
        os.environ["EMAIL_CANCEL_RACE_TABLE"],
        clock=DATABASE_CLOCK,
        lock_timeout=30,
    )
    EmailCancel(
        app,
        repository=repository,
        authenticator=TokenHeaderAuth({os.environ["EMAIL_CANCEL_RACE_TOKEN"]: Principal("ops")}),
    )
    return app


def send_until_drained(
    url: str, table_name: str, lead_seconds: float, stop: Any, sent: Any
) -> None:
    """A sender process: put ``0`` on ``sent`` when ready, then claim, "send"
    (put the id on ``sent``) and finish due entries, with a clock
    ``lead_seconds`` ahead, until ``stop`` is set and nothing is left to
    claim; then put ``None`` on ``sent``. Set ``stop`` only once every entry
    is due."""
    lead = timedelta(seconds=lead_seconds)
    repository = _repository(
        url, table_name, clock=lambda: datetime.now(timezone.utc) + lead, lock_timeout=30
    )
    claimer = QueueClaimer(repository, sending="sending", sent="sent")
    try:
        claimer.claim(limit=1)  # connected, and nothing is seeded yet
        sent.put(0)
        while True:
            over = stop.is_set()
            claimed = claimer.claim(limit=10)
            if not claimed:
                if over:
                    return
                time.sleep(0.005)
                continue
            for row in claimed:
                sent.put(row.id)
                if not claimer.finish(row.id):
                    sent.put(-row.id)  # a claim lost under the sender: a violation
    finally:
        sent.put(None)
        repository.engine.dispose()
