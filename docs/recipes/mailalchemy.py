"""A Flask-MailAlchemy-like table: no status column. An email is pending
while ``sent_at`` is NULL; cancel stamps ``cancelled_at``, a column the host
adds, and a stamped email is no longer pending.

The table holds one row per recipient, so the host also adds ``batch_id`` to
group the rows of one request.
"""

from datetime import datetime

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import BigInteger, DateTime, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_email_cancel import SQLAlchemyQueueRepository


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Email(db.Model):
    __tablename__ = "email"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recipient: Mapped[str] = mapped_column(String(255), index=True)
    subject: Mapped[str] = mapped_column(String(80))
    message_txt: Mapped[str | None] = mapped_column(Text)
    scheduled_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)  # naive UTC
    sent_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    # Added by the host:
    batch_id: Mapped[int] = mapped_column(BigInteger, index=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime)


repository = SQLAlchemyQueueRepository(
    db,
    Email,
    request_id="batch_id",
    scheduled_at="scheduled_at",
    unsent="sent_at",
    cancelled_at="cancelled_at",
)
