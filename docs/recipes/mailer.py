"""A django-mailer-like ``mailer_message`` table: a row exists while the
message waits, and the sender deletes it once sent. Cancel deletes too.

django-mailer sends as soon as it can; a host that schedules adds the
``send_after`` column (and ``request_id`` to group the messages of a request).
"""

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import BigInteger, Column, DateTime, Integer, SmallInteger, Text

from flask_email_cancel import SQLAlchemyQueueRepository

db = SQLAlchemy()

mailer_message = db.Table(
    "mailer_message",
    Column("id", Integer, primary_key=True),
    Column("message_data", Text, nullable=False),
    Column("when_added", DateTime, nullable=False),
    Column("priority", SmallInteger, nullable=False, default=2),
    # Added by the host:
    Column("request_id", BigInteger, index=True, nullable=False),
    Column("send_after", DateTime, index=True),  # naive UTC
)

repository = SQLAlchemyQueueRepository(
    db,
    mailer_message,
    request_id="request_id",
    scheduled_at="send_after",
    delete=True,
)
