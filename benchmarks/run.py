"""Run the benchmark suite, print the results table and write it as Markdown.

    python -m benchmarks            # every figure, on every database reachable
    python -m benchmarks --quick    # the same figures, small and short

See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from .databases import DATABASES, Database, Namespace, available, namespace, server_version
from .inprocess import Plan, fan_out, overhead, table_scale
from .machine import describe
from .measure import Row
from .profile import Step, profile
from .serve import http_load, memory

__all__ = ["FULL", "QUICK", "main"]

HERE = Path(__file__).resolve().parent

FULL = Plan(
    repetitions=15,
    overhead_batch=100,
    overhead_background=100_000,
    scale_sizes=(10**3, 10**5, 10**6),
    scale_batch=10,
    fan_out=100_000,
    fan_out_repetitions=9,
    http_seconds=2,
    http_repetitions=11,
    memory_requests=100_000,
    memory_seeded=10_000,
    profile_requests=1000,
    client="auto",
)

QUICK = Plan(
    repetitions=3,
    overhead_batch=20,
    overhead_background=1_000,
    scale_sizes=(10**3, 10**4, 10**5),
    scale_batch=10,
    fan_out=2_000,
    fan_out_repetitions=3,
    http_seconds=1,
    http_repetitions=2,
    memory_requests=1_000,
    memory_seeded=300,
    profile_requests=100,
    client="auto",
)

FIGURES: dict[str, str] = {
    "1": "Overhead: blueprint request / bare view request (Flask test client), 4 entries",
    "2": "Table scale: cancel latency in the largest table / in the smallest",
    "3": "Fan-out: one request of many entries, blueprint call / raw UPDATE",
    "4": "HTTP under load (gunicorn): blueprint throughput / bare route throughput",
    "5": "Memory (SQLite and PostgreSQL): worker RSS after the cancel requests / before",
}


#: Figures that run on some databases only. The memory figure measures the
#: Python worker, whatever the database: two of them are enough, and each run
#: takes minutes.
ONLY_ON: dict[str, tuple[str, ...]] = {"5": ("sqlite", "postgresql")}


def _run_figure(figure: str, ns: Namespace, plan: Plan, log: Path) -> list[Row]:
    runners: dict[str, Callable[[], list[Row]]] = {
        "1": lambda: [overhead(ns, plan)],
        "2": lambda: [table_scale(ns, plan)],
        "3": lambda: [fan_out(ns, plan)],
        "4": lambda: http_load(ns, plan, log),
        "5": lambda: [memory(ns, plan, log)],
    }
    return runners[figure]()


def _failed(figure: str, database: Database, exc: BaseException) -> Row:
    message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
    return Row(
        figure=f"{figure} {FIGURES[figure].split(':')[0]}",
        database=database.label,
        a_label="",
        a="",
        b_label="",
        b="",
        ratio=float("nan"),
        spread=(float("nan"), float("nan")),
        repetitions=0,
        target="",
        met=None,
        details=f"FAILED: {message}",
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(
    plan_name: str,
    machine: list[tuple[str, str]],
    rows: list[Row],
    profiles: dict[str, list[Step]],
    notes: list[str],
    elapsed: float,
) -> str:
    """The results as Markdown."""
    lines = [
        "# Benchmark results",
        "",
        f"Produced by `python -m benchmarks{' --quick' if plan_name == 'quick' else ''}` "
        f"({plan_name} plan, {elapsed / 60:.1f} min). Every ratio is A/B, "
        "two things measured alternately in the same run; the ratio is the median "
        "over the repetitions and the spread is their minimum and maximum.",
        "",
        "## Machine",
        "",
        "| | |",
        "| --- | --- |",
        *(f"| {label} | {_cell(value)} |" for label, value in machine),
        "",
        "## Figures",
        "",
        *(f"{number}. {text}" for number, text in FIGURES.items()),
        "",
        "| Figure | Database | A | B | A/B | Spread | Reps | Target | Met | Details |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        met = {True: "yes", False: "**no**", None: "n/a"}[row.met]
        a = f"{row.a_label}: {row.a}" if row.a_label else ""
        b = f"{row.b_label}: {row.b}" if row.b_label else ""
        lines.append(
            f"| {row.figure} | {row.database} | {_cell(a)} | {_cell(b)} | {row.ratio:.3f} | "
            f"{row.spread[0]:.3f}–{row.spread[1]:.3f} | {row.repetitions} | {row.target} | "
            f"{met} | {_cell(row.details)} |"
        )
    for database, steps in profiles.items():
        lines += [
            "",
            f"## Profile of a blueprint request ({database})",
            "",
            "cProfile, cumulative time per request; the profiler inflates every call, so "
            "read the shares. Calls per request of the compiler show whether the "
            "statement is compiled again (it should be 0).",
            "",
            "| Step | Calls / request | µs / request | Share of the request |",
            "| --- | --- | --- | --- |",
        ]
        for step in steps:
            label = step.label.replace("  ", "&nbsp;&nbsp;")
            lines.append(
                f"| {label} | {step.calls_per_request:.2f} | {step.microseconds:,.1f} | "
                f"{step.share:.1%} |"
            )
    if notes:
        lines += ["", "## Notes", "", *(f"- {note}" for note in notes)]
    return "\n".join(lines) + "\n"


def _progress(started: float, what: str) -> None:
    print(f"[{time.monotonic() - started:6.1f} s] {what}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="small and short: a smoke run")
    parser.add_argument(
        "--databases",
        default=",".join(DATABASES),
        help="comma-separated, of: " + ", ".join(DATABASES) + " (default: all)",
    )
    parser.add_argument(
        "--figures", default=",".join(FIGURES), help="comma-separated figure numbers"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="where to write the Markdown (default: benchmarks/results.md, or "
        "benchmarks/results-quick.md with --quick)",
    )
    parser.add_argument("--repetitions", type=int, help="override the plan's repetitions")
    parser.add_argument("--http-seconds", type=float, help="override each HTTP load run's length")
    parser.add_argument(
        "--memory-requests", type=int, help="override the memory figure's request count"
    )
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="HTTP load client: wrk when installed (auto), or the bundled Python client",
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile breakdown")
    args = parser.parse_args(argv)

    plan = QUICK if args.quick else FULL
    changes: dict[str, object] = {"client": args.client}
    if args.repetitions:
        changes.update(repetitions=args.repetitions, fan_out_repetitions=args.repetitions)
        changes.update(http_repetitions=args.repetitions)
    if args.http_seconds:
        changes["http_seconds"] = args.http_seconds
    if args.memory_requests:
        changes.update(
            memory_requests=args.memory_requests,
            memory_seeded=min(plan.memory_seeded, args.memory_requests // 2),
        )
    plan = dataclasses.replace(plan, **changes)  # type: ignore[arg-type]
    figures = [f.strip() for f in args.figures.split(",") if f.strip()]
    unknown = set(figures) - set(FIGURES)
    names = [d.strip() for d in args.databases.split(",") if d.strip()]
    unknown_db = set(names) - set(DATABASES)
    if unknown or unknown_db:
        parser.error(f"unknown figures or databases: {sorted(unknown | unknown_db)}")

    started = time.monotonic()
    notes: list[str] = []
    servers: dict[str, str] = {}
    reachable: list[Database] = []
    for name in names:
        database = DATABASES[name]
        reason = available(database)
        if reason:
            notes.append(f"{database.label} skipped: not reachable ({reason}).")
            continue
        reachable.append(database)
        servers[f"{database.label} server"] = server_version(database)
    machine = describe(servers)

    rows: list[Row] = []
    profiles: dict[str, list[Step]] = {}
    failed = False
    log = Path(tempfile.gettempdir()) / "flask-email-cancel-bench-gunicorn.log"
    for database in reachable:
        with namespace(database) as ns:
            for figure in figures:
                if database.name not in ONLY_ON.get(figure, (database.name,)):
                    continue
                _progress(started, f"{database.label}: figure {figure}")
                try:
                    rows.extend(_run_figure(figure, ns, plan, log))
                except Exception as exc:  # noqa: BLE001 - reported in the table
                    failed = True
                    traceback.print_exc()
                    rows.append(_failed(figure, database, exc))
            if not args.no_profile and database.name in ("sqlite", "postgresql"):
                _progress(started, f"{database.label}: profile")
                out = None if args.quick else HERE / f"profile-{database.name}.txt"
                profiles[database.label] = profile(ns, plan, out)

    text = render(
        "quick" if args.quick else "full",
        machine,
        rows,
        profiles,
        notes,
        time.monotonic() - started,
    )
    print(text)
    output = args.output or HERE / ("results-quick.md" if args.quick else "results.md")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(f"written to {output}", file=sys.stderr)
    return 1 if failed else 0
