"""Shared fixtures: apps with the extension, clocks, and database engines."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_email_cancel import EmailCancel, InMemoryQueueRepository, Principal, TokenHeaderAuth

TOKEN = "t0ken-for-tests"
TENANT_TOKEN = "t0ken-of-tenant-b"
BIG_ID = 7131002087805116277
NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


class FrozenClock:
    """A clock tests can set; the repositories' ``clock=``."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def memory_repo(clock: FrozenClock) -> InMemoryQueueRepository:
    return InMemoryQueueRepository(clock=clock)


@pytest.fixture
def app(memory_repo: InMemoryQueueRepository) -> Flask:
    """The app pytest-flask's ``client`` uses: in-memory queue, token auth."""
    app = Flask(__name__)
    app.config["TESTING"] = True
    EmailCancel(
        app,
        repository=memory_repo,
        authenticator=TokenHeaderAuth(
            {TOKEN: Principal(id="ops"), TENANT_TOKEN: Principal(id="b", tenant="b")}
        ),
    )
    return app


@pytest.fixture
def auth_headers() -> dict[str, str]:
    return {"X-VoltMX-Authorization": TOKEN}


@pytest.fixture(
    params=[("POST", "/api/v1/email/{id}/cancel"), ("DELETE", "/api/v1/email/{id}")],
    ids=["POST-cancel", "DELETE"],
)
def route(request: pytest.FixtureRequest) -> tuple[str, str]:
    """Both routes of the API: (method, URL template)."""
    return request.param  # type: ignore[no-any-return]


def later(seconds: float = 3600) -> datetime:
    return NOW + timedelta(seconds=seconds)


@pytest.fixture
def engine(tmp_path: object) -> Iterator[sa.Engine]:
    """A database engine for repository tests (a SQLite file)."""
    engine = sa.create_engine(f"sqlite:///{tmp_path}/queue.db")
    yield engine
    engine.dispose()


@pytest.fixture
def metadata(engine: sa.Engine) -> Iterator[sa.MetaData]:
    """A MetaData whose tables are dropped after the test."""
    metadata = sa.MetaData()
    yield metadata
    metadata.drop_all(engine)


@pytest.fixture
def table_name() -> str:
    """A table name unique to this test, so runs never share tables."""
    return f"q_{uuid.uuid4().hex[:12]}"
