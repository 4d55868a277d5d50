"""A Volt MX-like schema: one row per email request, one row per recipient
entry, and the entry's status says whether it is still waiting to be sent."""

from datetime import datetime

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_email_cancel import SQLAlchemyQueueRepository


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class EmailRequest(db.Model):
    __tablename__ = "email_request"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # the id clients cancel
    subject: Mapped[str] = mapped_column(String(255))


class EmailEntry(db.Model):
    __tablename__ = "email_entry"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("email_request.id"), index=True)
    recipient: Mapped[str] = mapped_column(String(254))
    # Volt MX's statuses: Initial until sent, then Submitted, Undelivered,
    # Rejected or Opened; or Cancelled.
    status: Mapped[str] = mapped_column(String(16), default="Initial")
    scheduled_at: Mapped[datetime | None] = mapped_column(DateTime)  # naive UTC
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)


repository = SQLAlchemyQueueRepository(
    db,
    EmailEntry,
    request_id="request_id",
    scheduled_at="scheduled_at",
    status="status",
    cancellable=["Initial"],
    cancelled="Cancelled",
    cancelled_at="updated_at",
)
