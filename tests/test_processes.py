"""The race across OS processes: gunicorn workers serve the blueprint, cancel
clients call it over HTTP, senders claim in processes of their own."""

from __future__ import annotations

import json
import multiprocessing
import os
import queue as queues
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from . import race_app
from .conftest import TOKEN, backend_of, queue_table

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 4
SENDERS = 4
CLIENTS = 4
ENTRIES = 2000
REQUESTS = 200
REPEATS = 40
SPREAD = 6.0  # seconds of real time the schedules straddle now by
LEAD = 1.0  # the senders' clock runs ahead of the app's (the database's)
DEADLINE = 120  # seconds: the whole run stops by then, passing or not


class Gunicorn:
    """gunicorn serving ``tests.race_app`` on a free loopback port."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--workers",
                str(WORKERS),
                "--bind",
                "127.0.0.1:0",
                "--timeout",
                "60",
                "--graceful-timeout",
                "5",
                "tests.race_app:create_app()",
            ],
            cwd=ROOT,
            env={**os.environ, **env},
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log: list[str] = []
        self.url = ""
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            if "Listening at: " in line:
                self.url = line.split("Listening at: ")[1].split()[0]
                break
        # Keep reading, so a chatty server never blocks on a full pipe.
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()
        if not self.url:
            raise RuntimeError("gunicorn did not start:\n" + "".join(self.log))

    def _drain(self) -> None:
        assert self.process.stderr is not None
        self.log.extend(self.process.stderr)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._drainer.join(10)
        assert self.process.stderr is not None
        self.process.stderr.close()


def cancel_over_http(base: str, request_id: int) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{base}/api/v1/email/{request_id}/cancel",
        method="POST",
        headers={"X-VoltMX-Authorization": TOKEN},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.slow
@pytest.mark.backends("postgresql", "mysql")
def test_gunicorn_workers_and_sender_processes_never_share_an_entry(
    engine, database_url, metadata, table_name, capsys
):
    table = queue_table(metadata, table_name)
    metadata.create_all(engine)
    server = Gunicorn(
        {
            "EMAIL_CANCEL_RACE_URL": database_url,
            "EMAIL_CANCEL_RACE_TABLE": table_name,
            "EMAIL_CANCEL_RACE_TOKEN": TOKEN,
        }
    )
    # Served before the schedules start, so the cancels meet them in time.
    for _ in range(2 * WORKERS):
        assert cancel_over_http(server.url, 10**12)[0] == 400
    spawn = multiprocessing.get_context("spawn")
    stop = spawn.Event()
    sent: Any = spawn.Queue()
    senders = [
        spawn.Process(
            target=race_app.send_until_drained, args=(database_url, table_name, LEAD, stop, sent)
        )
        for _ in range(SENDERS)
    ]
    answers: list[tuple[int, int, dict[str, Any]]] = []
    try:
        for process in senders:
            process.start()
        ready = [sent.get(timeout=DEADLINE) for _ in range(SENDERS)]
        assert ready == [0] * SENDERS
        # Seeded once every worker and sender is up, so that the cancels and
        # the claims meet the schedules as they fall due.
        rng = random.Random(7)
        start = datetime.now(timezone.utc).replace(tzinfo=None)
        per_request = ENTRIES // REQUESTS
        rows = [
            {
                "id": n + 1,
                "request_id": 1 + n // per_request,
                "status": "pending",
                "scheduled_at": start + timedelta(seconds=rng.uniform(-0.5, SPREAD)),
            }
            for n in range(ENTRIES)
        ]
        with engine.begin() as conn:
            conn.execute(table.insert(), rows)
        last_schedule = max(r["scheduled_at"] for r in rows)
        plan = list(range(1, REQUESTS + 1))
        plan += rng.sample(plan, REPEATS)
        rng.shuffle(plan)
        work: queues.SimpleQueue[int] = queues.SimpleQueue()
        for request_id in plan:
            work.put(request_id)
        # Spread the cancels over the schedules' span.
        pause = SPREAD / (len(plan) / CLIENTS)

        def client() -> None:
            while True:
                try:
                    request_id = work.get_nowait()
                except queues.Empty:
                    return
                status, body = cancel_over_http(server.url, request_id)
                answers.append((request_id, status, body))
                time.sleep(pause)

        clients = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(DEADLINE)
        # Stop the senders once every entry is due by their clock.
        due_in = (last_schedule - datetime.now(timezone.utc).replace(tzinfo=None)).total_seconds()
        time.sleep(min(DEADLINE, max(0.0, due_in - LEAD + 0.1)))
        stop.set()
        sends: list[int] = []
        finished = 0
        while finished < SENDERS:
            item = sent.get(timeout=DEADLINE)
            if item is None:
                finished += 1
            else:
                sends.append(item)
        for process in senders:
            process.join(DEADLINE)
    finally:
        stop.set()
        for process in senders:
            if process.is_alive():
                process.terminate()
                process.join(10)
        server.stop()
        sent.close()
        sent.join_thread()

    assert [p.exitcode for p in senders] == [0] * SENDERS
    assert len(answers) == REQUESTS + REPEATS
    failures = [(r, s, b) for r, s, b in answers if s not in (200, 400)]
    assert failures == [], "".join(server.log[-40:])
    counts: dict[int, list[int]] = defaultdict(list)
    for request_id, status, body in answers:
        if status == 200:
            counts[request_id].append(body["count"])
        else:
            assert body == {"id": "", "message": "No cancellable messages found"}

    with engine.connect() as conn:
        final = conn.execute(sa.select(table)).all()
    cancelled = {r.id for r in final if r.status == "cancelled"}
    sent_rows = {r.id for r in final if r.status == "sent"}
    per_call: dict[int, Counter[Any]] = defaultdict(Counter)
    for r in final:
        if r.status == "cancelled":
            per_call[r.request_id][r.cancelled_at] += 1
    sent_ids = Counter(sends)
    violations = (
        len(set(sent_ids) & cancelled)
        + sum(n - 1 for n in sent_ids.values())
        + sum(1 for i in sent_ids if i < 0)
        + sum(1 for r in final if r.status not in ("sent", "cancelled"))
        + len(set(sent_ids) ^ sent_rows)
        # Each 200's count is the rows one call stamped (calls told apart by
        # their stamps, the database's clock).
        + sum(
            1
            for request_id in set(counts) | set(per_call)
            if sorted(counts.get(request_id, [])) != sorted(per_call[request_id].values())
        )
    )
    # Entries a cancel would have taken by their schedule (later than the
    # stamp of a call for their request) but a sender had claimed first.
    first_stamp = {request_id: min(stamps) for request_id, stamps in per_call.items()}
    raced = sum(
        1
        for r in final
        if r.status == "sent"
        and r.request_id in first_stamp
        and r.scheduled_at > first_stamp[r.request_id]
    )
    figures = {
        "workers": WORKERS,
        "senders": SENDERS,
        "entries": len(final),
        "cancels": len(answers),
        "cancelled": len(cancelled),
        "counted": sum(sum(c) for c in counts.values()),
        "sends": len(sends),
        "raced": raced,
        "violations": violations,
    }
    with capsys.disabled():
        print(
            f"\n[processes {backend_of(engine)}] "
            + " ".join(f"{k}={v}" for k, v in figures.items())
        )
    assert len(final) == ENTRIES
    assert figures["counted"] == len(cancelled)
    assert len(cancelled) + len(sent_rows) == ENTRIES
    assert violations == 0, figures
