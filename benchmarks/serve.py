"""The figures measured over HTTP: gunicorn serving the blueprint and the bare
route, loaded from another process, and a worker's memory over many requests.

Servers bind 127.0.0.1 only, and the load clients connect nowhere else. Every
load run is bounded in requests and in seconds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from .databases import Namespace, fill, index, queue_table
from .inprocess import TOKEN, Plan
from .measure import Comparison, Row, alternate

__all__ = ["http_load", "memory"]

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
BLUEPRINT_PATH = "/api/v1/email/{}/cancel"
BARE_PATH = "/bare/{}/cancel"

#: Worker set-ups served, and the connections the load client opens on each.
WORKERS: dict[str, tuple[list[str], int]] = {
    "sync": (["--worker-class", "sync", "--workers", "2"], 4),
    "gthread": (["--worker-class", "gthread", "--workers", "2", "--threads", "4"], 8),
}

_WRK_SCRIPT = """
local counter = tonumber(os.getenv("BENCH_FIRST"))
local path = os.getenv("BENCH_PATH")
local token = os.getenv("BENCH_TOKEN")
request = function()
  local headers = {}
  if token ~= "" then headers["X-VoltMX-Authorization"] = token end
  local this = counter
  counter = counter + 1
  return wrk.format("POST", string.format(path, this), headers)
end
"""


@dataclass
class Load:
    """What one load run measured."""

    requests: int
    non_2xx: int
    errors: int
    rps: float
    p50: float
    p99: float


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Server:
    """A running gunicorn."""

    port: int
    pid: int

    def workers(self) -> list[int]:
        """The pids of the master's worker processes."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        return [int(pid) for pid in children.split()]


@contextmanager
def gunicorn(url: str, table: str, worker_args: list[str], log: Path) -> Iterator[Server]:
    """Serve ``benchmarks.wsgi:app`` on 127.0.0.1 until the block ends."""
    port = _free_port()
    env = {
        **os.environ,
        "BENCH_DATABASE_URL": url,
        "BENCH_TABLE": table,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"{HOST}:{port}",
        *worker_args,
        "--log-level",
        "warning",
        "benchmarks.wsgi:app",
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    try:
        _wait_until_serving(process, port, log)
        yield Server(port, process.pid)
    finally:
        # SIGINT is gunicorn's quick shutdown: no request is in flight by now.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_serving(
    process: subprocess.Popen[bytes], port: int, log: Path, seconds: float = 60
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}; see {log}")
        try:
            with socket.create_connection((HOST, port), timeout=1) as sock:
                sock.sendall(b"GET /api/v1/email/ HTTP/1.0\r\n\r\n")
                if sock.recv(12).startswith(b"HTTP/"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer on {HOST}:{port} within {seconds} s; see {log}")


def load(
    port: int,
    path: str,
    first: int,
    *,
    connections: int,
    seconds: float,
    requests: int,
    token: str | None,
    use_wrk: bool,
) -> Load:
    """Send cancels for request ids from ``first`` up, for ``seconds`` at
    most and (with the Python client) ``requests`` at most."""
    if use_wrk:
        return _wrk(port, path, first, connections=connections, seconds=seconds, token=token)
    command = [
        sys.executable,
        "-m",
        "benchmarks.load",
        f"--port={port}",
        f"--path={path}",
        f"--first={first}",
        f"--requests={requests}",
        f"--seconds={seconds}",
        f"--connections={connections}",
    ]
    if token:
        command.append(f"--header=X-VoltMX-Authorization: {token}")
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 60, check=True
    )
    data = json.loads(result.stdout)
    return Load(
        data["requests"], data["non_2xx"], data["errors"], data["rps"], data["p50"], data["p99"]
    )


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _duration(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def _wrk(
    port: int, path: str, first: int, *, connections: int, seconds: float, token: str | None
) -> Load:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT)
    env = {
        **os.environ,
        "BENCH_FIRST": str(first),
        "BENCH_PATH": path.replace("{}", "%d"),
        "BENCH_TOKEN": token or "",
    }
    try:
        result = subprocess.run(
            [
                "wrk",
                "--threads=1",
                f"--connections={connections}",
                f"--duration={max(1, round(seconds))}s",  # wrk counts whole seconds
                "--timeout=10s",
                "--latency",
                f"--script={script.name}",
                f"http://{HOST}:{port}/",
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            env=env,
            check=True,
        )
    finally:
        os.unlink(script.name)
    out = result.stdout
    requests = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return Load(
        requests=requests,
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        errors=sum(int(n) for n in errors.groups()) if errors else 0,
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),  # type: ignore[index]
        p50=_duration(re.search(r"^\s*50%\s+(\S+)", out, re.M)[1]),  # type: ignore[index]
        p99=_duration(re.search(r"^\s*99%\s+(\S+)", out, re.M)[1]),  # type: ignore[index]
    )


def _seed(ns: Namespace, role: str, requests: int) -> tuple[str, sa.Engine]:
    """A queue table of ``requests`` 4-entry requests numbered from 1."""
    engine = ns.engine()
    table = queue_table(sa.MetaData(), ns.table_name(role))
    with engine.begin() as conn:
        table.create(conn)
        fill(conn, table, first_id=1, count=4 * requests, first_request=1, per_request=4)
        index(conn, table)
    return table.name, engine


def http_load(ns: Namespace, plan: Plan, log: Path) -> list[Row]:
    """Figure 4: throughput of the blueprint against the bare route under
    gunicorn, one row per worker class."""
    if plan.client == "wrk" and shutil.which("wrk") is None:
        raise RuntimeError("--client wrk: wrk is not installed")
    use_wrk = plan.client != "python" and shutil.which("wrk") is not None
    return [_http_kind(ns, plan, log, kind, use_wrk) for kind in WORKERS]


def _http_kind(ns: Namespace, plan: Plan, log: Path, kind: str, use_wrk: bool) -> Row:
    worker_args, connections = WORKERS[kind]
    # Enough fresh requests for every run at a generous throughput; runs that
    # go past them answer 400 and are counted in the details.
    per_run = int(plan.http_seconds * 4000) + 100
    runs = plan.http_repetitions + 1
    table, _ = _seed(ns, f"http_{kind}", 2 * runs * per_run)
    next_id = {"blueprint": 1, "bare": 1 + runs * per_run}
    results: dict[str, list[Load]] = {"blueprint": [], "bare": []}

    def run(side: str, rep: int, port: int) -> float:
        result = load(
            port,
            BLUEPRINT_PATH if side == "blueprint" else BARE_PATH,
            next_id[side],
            connections=connections,
            # Warm-up runs (rep -1) are half as long.
            seconds=plan.http_seconds if rep >= 0 else plan.http_seconds / 2,
            requests=per_run,
            token=TOKEN if side == "blueprint" else None,
            use_wrk=use_wrk,
        )
        # Requests still in flight when the client stopped may yet cancel.
        next_id[side] += min(per_run, result.requests + connections + 10)
        if rep >= 0:
            results[side].append(result)
        return result.rps

    with gunicorn(ns.url, table, worker_args, log) as server:
        run("blueprint", -1, server.port)  # warm-up
        run("bare", -1, server.port)
        a, b = alternate(
            plan.http_repetitions,
            [
                lambda rep: run("blueprint", rep, server.port),
                lambda rep: run("bare", rep, server.port),
            ],
        )
    comparison = Comparison(a, b)
    ratio = comparison.ratio
    details = (
        f"{' '.join(worker_args)}, {connections} connections, "
        f"{plan.http_seconds:g} s per run, {'wrk' if use_wrk else 'Python client'}; "
        f"p50/p99 blueprint {_latency(results['blueprint'])}, "
        f"bare {_latency(results['bare'])}"
    )
    odd = {
        side: (sum(r.non_2xx for r in loads), sum(r.errors for r in loads))
        for side, loads in results.items()
    }
    if any(n or e for n, e in odd.values()):
        details += "; non-2xx/errors " + ", ".join(
            f"{side} {n}/{e}" for side, (n, e) in odd.items()
        )
    return Row(
        figure=f"4 HTTP {kind}",
        database=ns.database.label,
        a_label="blueprint",
        a=f"{comparison.a_median:,.0f} req/s",
        b_label="bare route",
        b=f"{comparison.b_median:,.0f} req/s",
        ratio=ratio,
        spread=comparison.spread,
        repetitions=len(a),
        target=">= 0.85",
        met=ratio >= 0.85,
        details=details,
    )


def _latency(loads: list[Load]) -> str:
    if not loads:
        return "n/a"
    p50 = statistics.median(r.p50 for r in loads) * 1e3
    p99 = statistics.median(r.p99 for r in loads) * 1e3
    return f"{p50:.1f}/{p99:.1f} ms"


def _rss(pid: int) -> int:
    """Resident set size of ``pid``, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def memory(ns: Namespace, plan: Plan, log: Path) -> Row:
    """Figure 5: a sync worker's RSS before and after many cancel requests."""
    seeded = plan.memory_seeded
    table, _ = _seed(ns, "memory", seeded)
    total = plan.memory_requests
    warm_up = min(1000, seeded // 2)
    halves = [total // 2, total - total // 2]
    with gunicorn(ns.url, table, ["--worker-class", "sync", "--workers", "1"], log) as server:
        (worker,) = server.workers()

        def send(first: int, count: int) -> Load:
            return load(
                server.port,
                BLUEPRINT_PATH,
                first,
                connections=4,
                seconds=max(60.0, count / 50),
                requests=count,
                token=TOKEN,
                use_wrk=False,
            )

        send(1, warm_up)
        rss = [_rss(worker)]
        first = 1 + warm_up
        loads = []
        for count in halves:
            loads.append(send(first, count))
            first += count
            rss.append(_rss(worker))
        if server.workers() != [worker]:
            raise RuntimeError("the gunicorn worker was replaced during the memory run")
    sent = sum(r.requests for r in loads)
    non_2xx = sum(r.non_2xx for r in loads)
    errors = sum(r.errors for r in loads)
    before, middle, after = rss
    growth = (after - before) / max(1, sent)
    ratio = after / before
    return Row(
        figure="5 Memory",
        database=ns.database.label,
        a_label="RSS after",
        a=_mib(after),
        b_label="RSS before",
        b=_mib(before),
        ratio=ratio,
        spread=(min(middle, after) / before, max(middle, after) / before),
        repetitions=1,
        target="<= 1.05",
        met=ratio <= 1.05,
        details=(
            f"one sync worker, {sent:,} requests after {warm_up:,} warm-up: "
            f"{sent - non_2xx - errors:,} answered 200, {non_2xx:,} other (400), "
            f"{errors} failed; RSS halfway {_mib(middle)}; "
            f"{growth:+.1f} bytes per request"
        ),
    )


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"
