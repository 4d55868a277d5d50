"""The app gunicorn serves in the HTTP figures: the blueprint and the bare
route over one queue table, as in the in-process figures.

Configured from the environment: ``BENCH_DATABASE_URL`` and ``BENCH_TABLE``.
"""

from __future__ import annotations

import os

import sqlalchemy as sa

from flask_email_cancel import email_request_cancelled

from .databases import queue_table
from .inprocess import make_app, receiver

__all__ = ["app"]

engine = sa.create_engine(os.environ["BENCH_DATABASE_URL"])
app = make_app(engine, queue_table(sa.MetaData(), os.environ["BENCH_TABLE"]))
email_request_cancelled.connect(receiver)
