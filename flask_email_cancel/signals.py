"""The signal sent after a successful cancel."""

from __future__ import annotations

from blinker import Namespace

__all__ = ["email_request_cancelled"]

_signals = Namespace()

email_request_cancelled = _signals.signal(
    "email-request-cancelled",
    doc="""Sent after a cancel that cancelled at least one entry, once its
    transaction has committed, with ``sender`` the Flask app and the keywords
    ``request_id`` (:class:`int`), ``count`` (:class:`int`, entries cancelled)
    and ``principal`` (the :class:`~flask_email_cancel.Principal` who asked).
    Not sent when nothing was cancelled.""",
)
