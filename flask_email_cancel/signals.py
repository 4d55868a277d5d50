"""The signal sent after a successful cancel."""

from __future__ import annotations

from typing import TYPE_CHECKING

from blinker import Namespace

if TYPE_CHECKING:
    from flask import Flask

    from .auth import Principal

__all__ = ["email_request_cancelled", "notify_cancelled"]

_signals = Namespace()

email_request_cancelled = _signals.signal(
    "email-request-cancelled",
    doc="""Sent after a cancel that cancelled at least one entry, once its
    transaction has committed, with ``sender`` the Flask app and the keywords
    ``request_id`` (:class:`int`), ``count`` (:class:`int`, entries cancelled)
    and ``principal`` (the :class:`~flask_email_cancel.Principal` who asked).
    Not sent when nothing was cancelled.""",
)


def notify_cancelled(app: Flask, request_id: int, count: int, principal: Principal) -> None:
    """Send :data:`email_request_cancelled` for a committed cancel.

    A failing receiver is logged on ``app.logger`` and otherwise ignored: the
    cancel has committed, and reporting it as failed would invite a retry
    answered with "No cancellable messages found".
    """
    if not email_request_cancelled.receivers:
        return
    try:
        email_request_cancelled.send(app, request_id=request_id, count=count, principal=principal)
    except Exception:
        app.logger.exception(
            "a receiver of email_request_cancelled failed for request %s", request_id
        )
