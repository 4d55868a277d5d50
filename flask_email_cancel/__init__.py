"""flask-email-cancel: the Cancel Email API as a Flask blueprint mounted onto
the host application's own email queue tables."""

from __future__ import annotations

from .auth import (
    AccessTokenAuth,
    AnyOf,
    Authenticator,
    BasicAuth,
    BearerAuth,
    Principal,
    TokenHeaderAuth,
)
from .claim import QueueClaimer
from .exceptions import EmailCancelError, LockTimeout, MappingError
from .extension import EmailCancel, EmailCancelState
from .repository import InMemoryQueueRepository, QueueEntry, QueueRepository
from .signals import email_request_cancelled
from .sql import DATABASE_CLOCK, SQLAlchemyQueueRepository

__all__ = [
    "AccessTokenAuth",
    "AnyOf",
    "Authenticator",
    "BasicAuth",
    "BearerAuth",
    "DATABASE_CLOCK",
    "EmailCancel",
    "EmailCancelError",
    "EmailCancelState",
    "InMemoryQueueRepository",
    "LockTimeout",
    "MappingError",
    "Principal",
    "QueueClaimer",
    "QueueEntry",
    "QueueRepository",
    "SQLAlchemyQueueRepository",
    "TokenHeaderAuth",
    "email_request_cancelled",
]

__version__ = "0.1.0"
