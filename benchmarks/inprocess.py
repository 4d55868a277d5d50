"""The figures measured inside one process: the blueprint's overhead over a
bare view, the cost against table size, and a large fan-out."""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from flask_email_cancel import (
    EmailCancel,
    Principal,
    SQLAlchemyQueueRepository,
    TokenHeaderAuth,
    email_request_cancelled,
)

from .bare import add_bare_route, bare_update
from .databases import (
    CANCELLED,
    PENDING,
    Namespace,
    background,
    fill,
    index,
    naive_utc_now,
    queue_table,
)
from .measure import Comparison, Row, alternate, interleaved, timed

__all__ = ["TOKEN", "Plan", "fan_out", "make_app", "overhead", "receiver", "table_scale"]

TOKEN = "bench-token"
HEADERS = {"X-VoltMX-Authorization": TOKEN}
PRINCIPAL = Principal(id="bench")


@dataclass(frozen=True)
class Plan:
    """How much each figure measures."""

    repetitions: int
    overhead_batch: int
    overhead_background: int
    scale_sizes: tuple[int, ...]
    scale_batch: int
    fan_out: int
    fan_out_repetitions: int
    http_seconds: float
    http_repetitions: int
    memory_requests: int
    memory_seeded: int
    profile_requests: int
    client: str = "auto"
    """The HTTP load client: ``wrk``, ``python``, or ``auto`` (wrk when installed)."""


def repository(engine: sa.Engine, table: sa.Table) -> SQLAlchemyQueueRepository:
    """The repository over a benchmark queue table, mapped as the example app
    maps its own."""
    return SQLAlchemyQueueRepository(
        engine,
        table,
        request_id="request_id",
        status="status",
        scheduled_at="scheduled_at",
        cancellable=[PENDING],
        cancelled=CANCELLED,
        cancelled_at="updated_at",
    )


def make_app(engine: sa.Engine, table: sa.Table) -> Flask:
    """An app serving both the blueprint and the bare route over ``table``."""
    app = Flask(__name__)
    EmailCancel(
        app,
        repository=repository(engine, table),
        authenticator=TokenHeaderAuth({TOKEN: PRINCIPAL}),
    )
    add_bare_route(app, table.name, lambda: engine)
    app.logger.addFilter(_FirstOnly())
    return app


class _FirstOnly(logging.Filter):
    """Let the first error through and drop the rest: the figures count the
    failed requests, and one traceback tells why."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        seen, self.seen = self.seen, True
        return not seen


def receiver(sender: Any, **kwargs: Any) -> None:
    """A receiver of ``email_request_cancelled`` that does nothing."""


@contextmanager
def one_receiver() -> Iterator[None]:
    """Keep one receiver connected to the cancel signal, as a host would."""
    email_request_cancelled.connect(receiver)
    try:
        yield
    finally:
        email_request_cancelled.disconnect(receiver)


class Requests:
    """Sends cancels for consecutive request ids and counts other answers."""

    def __init__(self, client: FlaskClient, path: str, first: int, headers: dict[str, str]):
        self.client = client
        self.path = path
        self.ids = itertools.count(first)
        self.headers = headers
        self.unexpected = 0

    def __call__(self) -> None:
        response = self.client.post(self.path.format(next(self.ids)), headers=self.headers)
        if response.status_code != 200:
            self.unexpected += 1


def overhead(ns: Namespace, plan: Plan) -> Row:
    """Figure 1: a cancel through the blueprint against the bare view."""
    engine = ns.engine()
    table = queue_table(sa.MetaData(), ns.table_name("overhead"))
    per_side = (plan.repetitions + 1) * plan.overhead_batch
    with engine.begin() as conn:
        table.create(conn)
        background(conn, table, plan.overhead_background)
        fill(conn, table, first_id=1, count=8 * per_side, first_request=1, per_request=4)
        index(conn, table)
    app = make_app(engine, table)
    client = app.test_client()
    blueprint = Requests(client, "/api/v1/email/{}/cancel", 1, HEADERS)
    bare = Requests(client, "/bare/{}/cancel", 1 + per_side, {})
    batch = plan.overhead_batch
    with one_receiver():
        # The warm-up (caches, pool, compiled statements) also counts what each
        # side sends to the database; the timed batches run without listeners.
        with round_trips(engine) as sent:
            timed(blueprint, batch)
            blueprint_sent = sent.copy()
            timed(bare, batch)
        bare_sent = sent - blueprint_sent
        comparison = Comparison()
        for _ in range(plan.repetitions):
            comparison.add(*interleaved([blueprint, bare], batch))
    details = (
        f"median of {batch} interleaved requests per repetition per side, 4 entries each; "
        "per request, "
        f"statements + DBAPI commits: blueprint {_per(blueprint_sent, batch)}, "
        f"bare {_per(bare_sent, batch)}"
    )
    if blueprint.unexpected or bare.unexpected:
        details += f"; UNEXPECTED non-200: {blueprint.unexpected} / {bare.unexpected}"
    return _row(
        "1 Overhead",
        ns,
        comparison,
        ("blueprint", _us(comparison.a_median)),
        ("bare view", _us(comparison.b_median)),
        target=1.15,
        details=details,
    )


@contextmanager
def round_trips(engine: sa.Engine) -> Iterator[Counter[str]]:
    """Count the statements and the DBAPI commits ``engine`` sends."""
    sent: Counter[str] = Counter()

    def statement(*args: Any) -> None:
        sent["statements"] += 1

    def commit(*args: Any) -> None:
        sent["commits"] += 1

    sa.event.listen(engine, "before_cursor_execute", statement)
    sa.event.listen(engine, "commit", commit)
    try:
        yield sent
    finally:
        sa.event.remove(engine, "before_cursor_execute", statement)
        sa.event.remove(engine, "commit", commit)


def _per(sent: Counter[str], requests: int) -> str:
    return f"{sent['statements'] / requests:g} + {sent['commits'] / requests:g}"


def table_scale(ns: Namespace, plan: Plan) -> Row:
    """Figure 2: cancelling a 10-entry request in tables of growing size."""
    engine = ns.engine()
    # Every cancel takes a fresh request, and the smallest table must hold them all.
    batch = max(1, min(plan.scale_batch, min(plan.scale_sizes) // (10 * (plan.repetitions + 1))))
    targets = (plan.repetitions + 1) * batch
    cancels: list[Callable[[], None]] = []
    for size in plan.scale_sizes:
        table = queue_table(sa.MetaData(), ns.table_name(f"scale_{size}"))
        target_rows = min(size, 10 * targets)
        with engine.begin() as conn:
            table.create(conn)
            background(conn, table, size - target_rows)
            fill(conn, table, first_id=1, count=target_rows, first_request=1, per_request=10)
            index(conn, table)
        cancels.append(_repository_cancels(repository(engine, table)))
    interleaved(cancels, batch)  # warm-up
    results: list[list[float]] = [[] for _ in cancels]
    for _ in range(plan.repetitions):
        for i, seconds in enumerate(interleaved(cancels, batch)):
            results[i].append(seconds)
    comparison = Comparison(results[-1], results[0])
    middle = ", ".join(
        f"10^{len(str(size)) - 1}: {_us(_median(r))}"
        for size, r in zip(plan.scale_sizes, results, strict=True)
    )
    return _row(
        "2 Table scale",
        ns,
        comparison,
        (f"{_power(plan.scale_sizes[-1])} rows", _us(comparison.a_median)),
        (f"{_power(plan.scale_sizes[0])} rows", _us(comparison.b_median)),
        target=1.5,
        details=(
            f"repository.cancel of a 10-entry request, median of {batch} interleaved "
            f"per table per repetition; {middle}"
        ),
    )


def _repository_cancels(repo: SQLAlchemyQueueRepository) -> Callable[[], None]:
    ids = itertools.count(1)

    def cancel() -> None:
        request_id = next(ids)
        count = repo.cancel(request_id, PRINCIPAL)
        if count != 10:
            raise RuntimeError(f"request {request_id} cancelled {count} entries, not 10")

    return cancel


def fan_out(ns: Namespace, plan: Plan) -> Row:
    """Figure 3: one request of many entries, cancelled through the blueprint
    against the raw UPDATE executed directly."""
    engine = ns.engine()
    table = queue_table(sa.MetaData(), ns.table_name("fan_out"))
    size = plan.fan_out
    requests = 2 * (plan.fan_out_repetitions + 1)
    with engine.begin() as conn:
        table.create(conn)
        background(conn, table, 10_000)
        fill(conn, table, first_id=1, count=size * requests, first_request=1, per_request=size)
        index(conn, table)
    client = make_app(engine, table).test_client()
    statement = bare_update(table.name)
    ids = itertools.count(1)
    counts: list[int] = []

    def through_blueprint(rep: int) -> float:
        url = f"/api/v1/email/{next(ids)}/cancel"

        def post() -> None:
            document = client.post(url, headers=HEADERS).get_json()
            counts.append(int(document["count"]) if document else 0)

        return timed(post, 1)

    def raw(rep: int) -> float:
        params = {
            "cancelled": CANCELLED,
            "pending": PENDING,
            "request_id": next(ids),
            "now": naive_utc_now(),
        }

        def run() -> None:
            with engine.begin() as conn:
                counts.append(conn.execute(statement, params).rowcount)

        return timed(run, 1)

    with one_receiver():
        through_blueprint(-1)
        raw(-1)
        a, b = alternate(plan.fan_out_repetitions, [through_blueprint, raw])
    comparison = Comparison(a, b)
    details = f"{size:,} entries cancelled per call"
    if any(count != size for count in counts):
        details += f"; UNEXPECTED counts {sorted(set(counts))}"
    return _row(
        "3 Fan-out",
        ns,
        comparison,
        ("blueprint", _ms(comparison.a_median)),
        ("raw UPDATE", _ms(comparison.b_median)),
        target=1.2,
        details=details,
    )


def _row(
    figure: str,
    ns: Namespace,
    comparison: Comparison,
    a: tuple[str, str],
    b: tuple[str, str],
    *,
    target: float,
    details: str,
) -> Row:
    return Row(
        figure=figure,
        database=ns.database.label,
        a_label=a[0],
        a=a[1],
        b_label=b[0],
        b=b[1],
        ratio=comparison.ratio,
        spread=comparison.spread,
        repetitions=len(comparison.a),
        target=f"<= {target}",
        met=comparison.ratio <= target,
        details=details,
    )


def _median(values: list[float]) -> float:
    return Comparison(values, values).a_median


def _power(n: int) -> str:
    exponent = len(str(n)) - 1
    return f"10^{exponent}" if n == 10**exponent else f"{n:,}"


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} µs"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms"
