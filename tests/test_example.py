"""The example host app: its commands, its dispatcher, its API and its queue page."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections import Counter
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from .example_app import EXAMPLE, load_example

TOKEN = "example-test-token"
SEEDED = 7131002087805116277


@pytest.fixture
def example() -> ModuleType:
    return load_example()


@pytest.fixture
def app(example: ModuleType, tmp_path: Path) -> Flask:
    """The example app on a SQLite file, with a known token and outbox."""
    return example.create_app(  # type: ignore[no-any-return]
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'queue.db'}",
            "EXAMPLE_TOKEN": TOKEN,
            "EXAMPLE_OUTBOX": str(tmp_path / "outbox.log"),
        },
        instance_path=str(tmp_path / "instance"),
    )


@pytest.fixture
def seeded(app: Flask) -> Flask:
    result = app.test_cli_runner().invoke(args=["seed"])
    assert result.exit_code == 0, result.output
    return app


def entries(app: Flask, example: ModuleType) -> list[Any]:
    with app.app_context():
        db = example.db
        rows = db.session.scalars(sa.select(example.EmailEntry).order_by("mail_id")).all()
        db.session.expunge_all()
        return list(rows)


def test_init_db_creates_the_apps_own_tables(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Created the email queue tables in sqlite:///")
    with app.app_context():
        inspector = sa.inspect(app.extensions["sqlalchemy"].engine)
        assert {"email_request", "email_entry"} <= set(inspector.get_table_names())
        columns = {c["name"] for c in inspector.get_columns("email_entry")}
        assert {
            "mail_id",
            "request_id",
            "subject",
            "address",
            "recipient_type",
            "status",
            "scheduled_at",
            "updated_at",
        } <= columns


def test_seed_is_a_realistic_mix(seeded: Flask, example: ModuleType) -> None:
    now = example.utcnow()
    rows = entries(seeded, example)
    per_request = Counter(e.request_id for e in rows)
    assert per_request[SEEDED] == 5
    assert max(per_request.values()) >= 10, "a request with many recipients"
    assert max(per_request) > 2**53, "ids a JavaScript number cannot hold"
    assert {e.recipient_type for e in rows} == {"TO", "CC", "BCC"}
    assert {e.status for e in rows} == set(example.STATUSES)
    due = [e for e in rows if e.status == "Initial" and (e.scheduled_at or now) <= now]
    ahead = [
        e
        for e in rows
        if e.status == "Initial" and e.scheduled_at and e.scheduled_at > now + timedelta(hours=1)
    ]
    sent = [e for e in rows if e.status in ("Submitted", "Opened", "Undelivered")]
    assert len(due) >= 2 and len(ahead) >= 10 and len(sent) >= 3
    assert all(e.scheduled_at is None or e.scheduled_at.tzinfo is None for e in rows)


def test_seed_replaces_the_rows(seeded: Flask, example: ModuleType) -> None:
    before = len(entries(seeded, example))
    assert seeded.test_cli_runner().invoke(args=["seed"]).exit_code == 0
    assert len(entries(seeded, example)) == before


def test_send_due_submits_due_entries_to_the_outbox(seeded: Flask, example: ModuleType) -> None:
    now = example.utcnow()
    before = {e.mail_id: e for e in entries(seeded, example)}
    due = {
        mail_id
        for mail_id, e in before.items()
        if e.status == "Initial" and (e.scheduled_at is None or e.scheduled_at <= now)
    }
    runner = seeded.test_cli_runner()
    result = runner.invoke(args=["send-due"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Sent {len(due)} due entries to ")

    after = {e.mail_id: e for e in entries(seeded, example)}
    for mail_id, entry in after.items():
        if mail_id in due:
            assert entry.status == "Submitted"
            assert entry.updated_at >= now
        else:
            assert entry.status == before[mail_id].status
            assert entry.updated_at == before[mail_id].updated_at
    lines = Path(seeded.config["EXAMPLE_OUTBOX"]).read_text().splitlines()
    assert sorted(int(line.split("mail_id=")[1].split()[0]) for line in lines) == sorted(due)
    assert any(after[min(due)].address in line for line in lines)

    again = runner.invoke(args=["send-due"])
    assert again.output.startswith("Sent 0 due entries")
    assert len(Path(seeded.config["EXAMPLE_OUTBOX"]).read_text().splitlines()) == len(due)


def test_send_due_marks_undelivered_when_the_outbox_fails(
    seeded: Flask, example: ModuleType, tmp_path: Path
) -> None:
    seeded.config["EXAMPLE_OUTBOX"] = str(tmp_path)  # a directory: cannot be appended to
    result = seeded.test_cli_runner().invoke(args=["send-due"])
    assert result.exit_code == 0
    assert "; 4 undelivered" in result.output
    assert Counter(e.status for e in entries(seeded, example))["Undelivered"] == 1 + 4


def test_send_due_loop_runs_until_interrupted(
    seeded: Flask, example: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    rounds: list[float] = []

    def sleep(seconds: float) -> None:
        rounds.append(seconds)
        if len(rounds) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(example.time, "sleep", sleep)
    result = seeded.test_cli_runner().invoke(args=["send-due", "--loop", "--interval", "0.5"])
    assert result.exit_code == 0
    assert rounds == [0.5, 0.5]
    lines = result.output.splitlines()
    assert lines[0].endswith("every 0.5s; Ctrl-C stops.")
    assert lines[1].startswith("Sent 4 due entries")
    assert lines[-1] == "Stopped."
    assert len(lines) == 3, "rounds that sent nothing print nothing"


def test_two_dispatchers_never_send_an_entry_twice(app: Flask, example: ModuleType) -> None:
    past = example.utcnow() - timedelta(minutes=1)
    with app.app_context():
        example.db.create_all()
        session = example.db.session
        session.add(example.EmailRequest(id=SEEDED, subject="s", sender="a@x", created_at=past))
        for n in range(60):
            session.add(
                example.EmailEntry(
                    request_id=SEEDED,
                    subject="s",
                    address=f"r{n}@example.com",
                    scheduled_at=past,
                    updated_at=past,
                )
            )
        session.commit()
    results: list[tuple[int, int]] = []

    def dispatch() -> None:
        with app.app_context():
            results.append(example.send_due(batch=7))

    threads = [threading.Thread(target=dispatch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(sent for sent, _ in results) == 60
    lines = Path(app.config["EXAMPLE_OUTBOX"]).read_text().splitlines()
    addresses = [line.split()[4] for line in lines]
    assert len(addresses) == len(set(addresses)) == 60
    assert {e.status for e in entries(app, example)} == {"Submitted"}


@pytest.mark.parametrize(
    ("method", "template"),
    [("POST", "/api/v1/email/{id}/cancel"), ("DELETE", "/api/v1/email/{id}")],
    ids=["POST-cancel", "DELETE"],
)
def test_the_api_cancels_a_seeded_request(
    seeded: Flask, example: ModuleType, method: str, template: str
) -> None:
    client = seeded.test_client()
    url = template.format(id=SEEDED)
    assert client.open(url, method=method).status_code == 401
    response = client.open(url, method=method, headers={"X-VoltMX-Authorization": TOKEN})
    assert response.status_code == 200
    assert response.get_json()["message"] == (
        f"Cancelled 4 Email entries of the EmailRequest with ID : {SEEDED}"
    )
    statuses = Counter(e.status for e in entries(seeded, example) if e.request_id == SEEDED)
    assert statuses == {"Cancelled": 4, "Rejected": 1}
    again = client.open(url, method=method, headers={"X-VoltMX-Authorization": TOKEN})
    assert again.status_code == 400
    assert again.get_json() == {"id": "", "message": "No cancellable messages found"}


def test_the_library_check_passes_on_the_example(seeded: Flask) -> None:
    result = seeded.test_cli_runner().invoke(args=["email-cancel", "check"])
    assert result.exit_code == 0, result.output
    assert "  table: email_entry" in result.output
    assert "warning" not in result.output


def test_queue_page_lists_requests_with_their_entries(seeded: Flask, example: ModuleType) -> None:
    page = seeded.test_client().get("/queue").get_data(as_text=True)
    headings = re.findall(r"<th>([^<]*)</th>", page)
    assert headings[:8] == [
        "Mail ID",
        "Request ID",
        "Subject",
        "Email",
        "Category",
        "Updated (UTC)",
        "Status",
        "Scheduled (UTC)",
    ]
    assert f'data-request-id="{SEEDED}"' in page
    assert f'data-cancel-url="/api/v1/email/{SEEDED}/cancel"' in page
    assert f'data-request-id="{2**63 - 1}"' in page
    assert f'data-token="{TOKEN}"' in page
    assert page.count("<tr data-mail-id=") == len(entries(seeded, example))


def test_queue_page_filters_by_status(seeded: Flask) -> None:
    page = seeded.test_client().get("/queue?status=Opened").get_data(as_text=True)
    assert page.count("<tr data-mail-id=") == 2
    assert page.count('class="status" data-status="Opened"') == 2
    assert page.count("<section class=") == 1
    assert "<option selected>Opened</option>" in page


def test_queue_page_serves_loopback_clients_only(seeded: Flask) -> None:
    client = seeded.test_client()
    for path in ("/queue", f"/queue/requests/{SEEDED}"):
        assert client.get(path, environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code == 403
        assert client.get(path, environ_base={"REMOTE_ADDR": "::1"}).status_code == 200


def test_request_statuses_keep_ids_as_strings(seeded: Flask) -> None:
    client = seeded.test_client()
    client.post(f"/api/v1/email/{SEEDED}/cancel", headers={"X-VoltMX-Authorization": TOKEN})
    data = client.get(f"/queue/requests/{SEEDED}").get_json()
    assert data["request_id"] == str(SEEDED)
    assert data["summary"] == "1 Rejected, 4 Cancelled"
    assert all(isinstance(e["mail_id"], str) for e in data["entries"])
    assert [e["status"] for e in data["entries"]].count("Cancelled") == 4
    assert client.get("/queue/requests/12345").status_code == 404


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_running_the_example_prints_a_working_curl(tmp_path: Path) -> None:
    """What the README's run command does: seed, print a curl line, serve."""
    port = free_port()
    env = {
        **os.environ,
        "EXAMPLE_PORT": str(port),
        "EXAMPLE_DATABASE_URL": f"sqlite:///{tmp_path / 'queue.db'}",
        "EXAMPLE_OUTBOX": str(tmp_path / "outbox.log"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("EXAMPLE_TOKEN", None)
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLE)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # Never hang the suite: a server that does not come up is killed, which
    # ends the read below.
    watchdog = threading.Timer(60, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None
        printed = []
        for line in process.stdout:
            printed.append(line)
            if "Running on" in line:
                break
        curl = next(line for line in printed if line.strip().startswith("curl "))
        args = shlex.split(curl)
        assert args[:3] == ["curl", "-X", "POST"] and args[3] == "-H"
        name, _, value = args[4].partition(": ")
        assert name == "X-VoltMX-Authorization" and len(value) >= 16
        assert args[5] == f"http://127.0.0.1:{port}/api/v1/email/{SEEDED}/cancel"
        request = urllib.request.Request(args[5], method="POST", headers={name: value})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.load(response)
        assert (
            body["message"] == f"Cancelled 4 Email entries of the EmailRequest with ID : {SEEDED}"
        )
        with pytest.raises(urllib.error.HTTPError) as again:
            urllib.request.urlopen(request, timeout=10)
        assert again.value.code == 400
        again.value.close()
    finally:
        watchdog.cancel()
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
