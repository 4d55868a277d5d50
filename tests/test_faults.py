"""Faults under the HTTP API: connections killed, the database unreachable, a
row held by a sender. Each answer is the spec's JSON; nothing is half done;
the app recovers without a restart."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_email_cancel import EmailCancel, Principal, TokenHeaderAuth

from .conftest import (
    NOW,
    TOKEN,
    backend_of,
    create_test_engine,
    finish_held,
    hold_row_lock,
    queue_repository,
)

SERVER_FAILURE = {"id": "", "message": "Server failure to process request"}
ENTRIES_BUSY = {
    "id": "",
    "message": "Email entries of this request are being sent; try again later",
}
LATER = (NOW + timedelta(hours=1)).replace(tzinfo=None)


def make_app(engine: sa.Engine, table: sa.Table, clock: Any, **options: Any) -> Flask:
    app = Flask(__name__)
    EmailCancel(
        app,
        repository=queue_repository(engine, table, clock=clock, **options),
        authenticator=TokenHeaderAuth({TOKEN: Principal("ops")}),
    )
    return app


def cancel(app: Flask, request_id: int) -> tuple[int, Any]:
    """The status and the spec's part of the JSON body (id, message)."""
    response = app.test_client().post(
        f"/api/v1/email/{request_id}/cancel", headers={"X-VoltMX-Authorization": TOKEN}
    )
    body = response.get_json()
    return response.status_code, {"id": body["id"], "message": body["message"]}


def seed(engine: sa.Engine, table: sa.Table, request_ids: list[int], per_request: int) -> None:
    rows = [
        {"request_id": r, "status": "pending", "scheduled_at": LATER}
        for r in request_ids
        for _ in range(per_request)
    ]
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)


def statuses(engine: sa.Engine, table: sa.Table, request_id: int) -> list[str]:
    with engine.connect() as conn:
        query = sa.select(table.c.status).where(table.c.request_id == request_id)
        return list(conn.execute(query.order_by(table.c.id)).scalars())


def track_backends(engine: sa.Engine) -> list[int]:
    """The server-side ids of every connection ``engine`` opens."""
    ids: list[int] = []
    query = (
        "SELECT pg_backend_pid()"
        if backend_of(engine) == "postgresql"
        else "SELECT CONNECTION_ID()"
    )

    @sa.event.listens_for(engine, "connect")
    def remember(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(query)
        ids.append(int(cursor.fetchone()[0]))
        cursor.close()

    return ids


def kill(admin: sa.Engine, backend_id: int) -> None:
    with admin.connect() as conn:
        if backend_of(admin) == "postgresql":
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": backend_id})
        else:
            conn.exec_driver_sql(f"KILL {int(backend_id)}")


def wait_until_blocked(admin: sa.Engine, backend_id: int) -> None:
    """Wait until the connection is waiting for a row lock (at most 10 s)."""
    if backend_of(admin) == "postgresql":
        query = sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = :id AND wait_event_type = 'Lock'"
        )
    else:
        query = sa.text(
            "SELECT count(*) FROM information_schema.innodb_trx "
            "WHERE trx_mysql_thread_id = :id AND trx_state = 'LOCK WAIT'"
        )
    for _ in range(200):
        with admin.connect() as conn:
            if conn.execute(query, {"id": backend_id}).scalar():
                return
        time.sleep(0.05)
    raise AssertionError("the cancel never waited for the sender's lock")


@pytest.mark.backends("postgresql", "mysql")
def test_connection_killed_mid_cancel_leaves_nothing_half_done(
    engine, engine_factory, queue, clock
):
    seed(engine, queue, [1], 5)
    app_engine = engine_factory(pool_size=1, max_overflow=0)
    ids = track_backends(app_engine)
    app = make_app(app_engine, queue, clock, lock_timeout=30)
    opened_at_start_up = len(ids)  # the start-up check closes its own
    first_row = statuses(engine, queue, 1)
    with engine.connect() as conn:
        entry_ids = list(conn.execute(sa.select(queue.c.id).order_by(queue.c.id)).scalars())
    sender = hold_row_lock(engine, queue, entry_ids[2])
    answers: list[tuple[int, Any]] = []
    try:
        request = threading.Thread(target=lambda: answers.append(cancel(app, 1)))
        request.start()
        for _ in range(200):
            if len(ids) > opened_at_start_up:
                break
            time.sleep(0.05)
        wait_until_blocked(engine, ids[-1])
        kill(engine, ids[-1])
        request.join(30)
        assert answers == [(500, SERVER_FAILURE)]
        # Entries the statement had reached before it waited are untouched.
        assert statuses(engine, queue, 1) == first_row == ["pending"] * 5
    finally:
        finish_held(sender)

    # The next request gets a fresh connection and skips the entry being sent.
    assert cancel(app, 1) == (200, cancel_body(1, 4))
    assert statuses(engine, queue, 1) == [
        "cancelled",
        "cancelled",
        "sending",
        "cancelled",
        "cancelled",
    ]


@pytest.mark.backends("postgresql", "mysql")
def test_connections_killed_between_requests_are_replaced(engine, engine_factory, queue, clock):
    seed(engine, queue, [1, 2], 2)
    app_engine = engine_factory()
    ids = track_backends(app_engine)
    app = make_app(app_engine, queue, clock)
    opened_at_start_up = len(ids)  # the start-up check closes its own
    assert cancel(app, 1) == (200, cancel_body(1, 2))
    pooled = ids[opened_at_start_up:]
    assert pooled
    for backend_id in pooled:
        kill(engine, backend_id)
    # pool_pre_ping finds the pooled connection dead and opens another.
    assert cancel(app, 2) == (200, cancel_body(2, 2))
    assert len(ids) > opened_at_start_up + len(pooled)


def cancel_body(request_id: int, count: int) -> dict[str, Any]:
    return {
        "id": "",
        "message": f"Cancelled {count} Email entries of the EmailRequest with ID : {request_id}",
    }


class Proxy:
    """A TCP forwarder to the database server that the test takes down
    (connections cut, new ones refused), turns into a black hole (accepts,
    never answers) or brings back, on the same loopback port."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.mode = "up"
        self.sockets: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.lock = threading.Lock()

    def start(self, mode: str = "up") -> None:
        self.mode = mode
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self.lock:
                self.sockets.append(client)
            if self.mode == "blackhole":
                continue
            server = socket.create_connection(self.target)
            with self.lock:
                self.sockets.append(server)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        if self.listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone
            # would leave the port accepting until that call returns.
            try:
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.listener.close()
            self.listener = None
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


@pytest.fixture
def proxy(database_url: str) -> Any:
    url = sa.make_url(database_url)
    proxy = Proxy(
        url.host or "127.0.0.1",
        url.port or (5432 if url.get_backend_name() == "postgresql" else 3306),
    )
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.mark.slow
@pytest.mark.backends("postgresql", "mysql")
def test_unreachable_database_answers_json_500_then_recovers(
    engine, database_url, queue, clock, proxy
):
    seed(engine, queue, [1, 2], 2)
    proxied = sa.make_url(database_url).set(host="127.0.0.1", port=proxy.port)
    # libpq bounds the whole handshake by connect_timeout (whole seconds, at
    # least 2); PyMySQL bounds only the TCP connect by it, and the server's
    # greeting by read_timeout.
    timeouts: dict[str, Any] = {"connect_timeout": 2}
    if backend_of(engine) == "mysql":
        timeouts.update(read_timeout=5, write_timeout=5)
    app_engine = create_test_engine(
        proxied.render_as_string(hide_password=False), connect_args=timeouts
    )
    try:
        app = make_app(app_engine, queue, clock)
        assert cancel(app, 1) == (200, cancel_body(1, 2))

        proxy.stop()  # the server is gone: connections cut, new ones refused
        assert cancel(app, 2) == (500, SERVER_FAILURE)

        proxy.start("blackhole")  # a host that takes the connection, never answers
        assert cancel(app, 2) == (500, SERVER_FAILURE)
        proxy.stop()
        assert statuses(engine, queue, 2) == ["pending", "pending"]

        proxy.start()  # back
        assert cancel(app, 2) == (200, cancel_body(2, 2))
    finally:
        app_engine.dispose()


@pytest.mark.slow
def test_row_held_by_a_sender_times_out_as_json_503_then_is_not_counted(engine, queue, clock):
    seed(engine, queue, [1], 3)
    app = make_app(engine, queue, clock, lock_timeout=0.5)
    with engine.connect() as conn:
        entry_ids = list(conn.execute(sa.select(queue.c.id).order_by(queue.c.id)).scalars())
    sender = hold_row_lock(engine, queue, entry_ids[1])
    try:
        assert cancel(app, 1) == (503, ENTRIES_BUSY)
        assert statuses(engine, queue, 1) == ["pending"] * 3
    finally:
        finish_held(sender)
    assert cancel(app, 1) == (200, cancel_body(1, 2))
    assert statuses(engine, queue, 1) == ["cancelled", "sending", "cancelled"]
