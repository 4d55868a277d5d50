"""django-post_office's ``post_office_email`` table, read from a Flask app.

Django owns the table, so only the columns the repository uses are declared.
One row is one email (with all its recipients), so the request id is the row's
primary key. Statuses are post_office's small integers.
"""

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Column, DateTime, Integer, SmallInteger

from flask_email_cancel import SQLAlchemyQueueRepository

# post_office.models.STATUS, plus a value of our own: post_office has no
# "cancelled", and its sender only ever picks QUEUED and REQUEUED rows.
SENT, FAILED, QUEUED, REQUEUED = 0, 1, 2, 3
CANCELLED = 4

db = SQLAlchemy()

post_office_email = db.Table(
    "post_office_email",
    Column("id", Integer, primary_key=True),
    Column("status", SmallInteger, index=True, nullable=True),
    # USE_TZ = True: aware values (timestamp with time zone on PostgreSQL).
    Column("scheduled_time", DateTime(timezone=True), index=True, nullable=True),
    Column("last_updated", DateTime(timezone=True), index=True),
)

repository = SQLAlchemyQueueRepository(
    db,
    post_office_email,
    request_id="id",
    scheduled_at="scheduled_time",
    status="status",
    cancellable=[QUEUED, REQUEUED],
    cancelled=CANCELLED,
    cancelled_at="last_updated",
)
