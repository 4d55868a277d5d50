"""The baseline: the cancel a host could write by hand in a bare Flask view.

No authentication, no validation beyond Flask's ``int`` converter, no schema
and no signal: the same single conditional ``UPDATE`` the blueprint's
repository runs, as hand-written SQL, and the spec's JSON answer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from flask import Flask

from .databases import CANCELLED, PENDING

__all__ = ["BARE_PATH", "add_bare_route", "bare_update"]

BARE_PATH = "/bare/<int:request_id>/cancel"


def bare_update(table_name: str) -> sa.TextClause:
    """The hand-written UPDATE the repository's statement amounts to."""
    return sa.text(
        f"UPDATE {table_name} SET status = :cancelled, updated_at = :now "
        "WHERE request_id = :request_id AND status IN (:pending) AND scheduled_at > :now"
    )


def add_bare_route(app: Flask, table_name: str, engine: Callable[[], sa.Engine]) -> None:
    """Mount ``POST /bare/<request_id>/cancel`` on ``app``."""
    statement = bare_update(table_name)

    @app.post(BARE_PATH)
    def bare_cancel(request_id: int) -> Any:
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        params = {"cancelled": CANCELLED, "pending": PENDING, "now": now, "request_id": request_id}
        with engine().begin() as conn:
            count = conn.execute(statement, params).rowcount
        if not count:
            return {"id": "", "message": "No cancellable messages found"}, 400
        message = f"Cancelled {count} Email entries of the EmailRequest with ID : {request_id}"
        return {"id": "", "message": message}
