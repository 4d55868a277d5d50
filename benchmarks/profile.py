"""Where a blueprint request's time goes, by cProfile.

The profile runs the same requests as the overhead figure, alternating the
blueprint and the bare view under two profilers, and attributes the
server-side time (``Flask.wsgi_app``) of a blueprint request to its steps. cProfile
inflates every function call alike, so the shares matter, not the absolute
numbers. It also counts SQL compilations per request: zero means the cancel
statement is served from SQLAlchemy's compiled cache.
"""

from __future__ import annotations

import cProfile
import io
import pstats
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from .databases import Namespace, background, fill, index, queue_table
from .inprocess import HEADERS, Plan, Requests, make_app, one_receiver

__all__ = ["Step", "profile"]

#: (label, file suffix, function name), in the order a request meets them.
STEPS: tuple[tuple[str, str, str], ...] = (
    ("whole request in Flask (wsgi_app)", "flask/app.py", "wsgi_app"),
    ("blueprint view (cancel)", "flask_email_cancel/views.py", "cancel"),
    ("  authenticate", "flask_email_cancel/auth.py", "authenticate"),
    ("  parse the path id", "flask_email_cancel/schemas.py", "parse_request_id"),
    ("  read the optional body", "flask_email_cancel/views.py", "_body_request_id"),
    ("  repository cancel", "flask_email_cancel/sql.py", "cancel"),
    ("    transaction set-up and end", "flask_email_cancel/sql.py", "write_transaction"),
    ("    statements sent (do_execute)", "sqlalchemy/engine/default.py", "do_execute"),
    ("    DBAPI commit (do_commit)", "sqlalchemy/engine/default.py", "do_commit"),
    ("    statement cache key", "sqlalchemy/sql/cache_key.py", "_generate_cache_key"),
    ("    SQL compilation (cache miss)", "sqlalchemy/sql/compiler.py", "__init__"),
    ("    IN list expansion", "sqlalchemy/sql/compiler.py", "_process_parameters_for_postcompile"),
    ("    execution context", "sqlalchemy/engine/default.py", "_init_compiled"),
    ("  signal (one receiver)", "flask_email_cancel/views.py", "_notify"),
    ("  signal (one receiver)", "flask_email_cancel/signals.py", "notify_cancelled"),
    ("  response schema dump", "marshmallow/schema.py", "dump"),
    ("  JSON response", "flask_email_cancel/views.py", "_json"),
    ("bare request in Flask (wsgi_app)", "flask/app.py", "wsgi_app"),
    ("bare view (bare_cancel)", "benchmarks/bare.py", "bare_cancel"),
    ("  statements sent (do_execute)", "sqlalchemy/engine/default.py", "do_execute"),
    ("  DBAPI commit (do_commit)", "sqlalchemy/engine/default.py", "do_commit"),
)
"""(label, file suffix, function name). Lines from "bare" on are read from the
bare view's profile. A step listed twice (a function that moved) is shown
once, from whichever of its entries the profile saw."""


@dataclass
class Step:
    """One line of the profile table."""

    label: str
    calls_per_request: float
    microseconds: float
    share: float


def _find(stats: pstats.Stats, suffix: str, name: str) -> tuple[int, float]:
    # Several functions may match (a method and the base-class method it
    # calls): the outermost one, with the largest cumulative time, counts.
    calls = 0
    cumulative = 0.0
    for (filename, _line, function), entry in stats.stats.items():  # type: ignore[attr-defined]
        if function == name and filename.replace("\\", "/").endswith(suffix):
            if entry[3] > cumulative:
                calls, cumulative = entry[0], entry[3]
    return calls, cumulative


def profile(ns: Namespace, plan: Plan, text_out: Path | None = None) -> list[Step]:
    """Profile ``plan.profile_requests`` blueprint cancels (and as many bare
    ones) and return the breakdown."""
    engine = ns.engine()
    table = queue_table(sa.MetaData(), ns.table_name("profile"))
    count = plan.profile_requests
    with engine.begin() as conn:
        table.create(conn)
        background(conn, table, plan.overhead_background)
        fill(conn, table, first_id=1, count=4 * 2 * (count + 20), first_request=1, per_request=4)
        index(conn, table)
    client = make_app(engine, table).test_client()
    blueprint = Requests(client, "/api/v1/email/{}/cancel", 1, HEADERS)
    bare = Requests(client, "/bare/{}/cancel", 1 + count + 20, {})
    profilers = {"blueprint": cProfile.Profile(), "bare": cProfile.Profile()}
    with one_receiver():
        for _ in range(20):
            blueprint()
            bare()
        for _ in range(count):
            profilers["blueprint"].enable()
            blueprint()
            profilers["blueprint"].disable()
            profilers["bare"].enable()
            bare()
            profilers["bare"].disable()
    if blueprint.unexpected or bare.unexpected:
        raise RuntimeError("profiled requests did not all answer 200")
    stats = {side: pstats.Stats(p) for side, p in profilers.items()}
    steps: list[Step] = []
    side = "blueprint"
    for label, suffix, name in STEPS:
        if label.startswith("bare"):
            side = "bare"
        calls, cumulative = _find(stats[side], suffix, name)
        step = Step(label, calls / count, cumulative / count * 1e6, 0.0)
        if steps and steps[-1].label == label:
            if steps[-1].calls_per_request < step.calls_per_request:
                steps[-1] = step
            continue
        steps.append(step)
    total = steps[0].microseconds
    for step in steps:
        step.share = step.microseconds / total if total else 0.0
    if text_out is not None:
        buffer = io.StringIO()
        pstats.Stats(profilers["blueprint"], stream=buffer).sort_stats("cumulative").print_stats(45)
        text_out.write_text(
            f"# cProfile of {count} blueprint and {count} bare cancels "
            f"on {ns.database.label}, sorted by cumulative time\n\n{buffer.getvalue()}"
        )
    return steps
