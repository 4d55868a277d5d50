"""The example's queue page in a real headless Chromium.

Skipped only where no Chromium binary exists; with
``EMAIL_CANCEL_REQUIRE_BROWSER=1`` (as CI sets it) a missing browser fails.
Screenshots go to ``artifacts/``.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from .example_app import load_example

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
TOKEN = "browser-test-token"
SEEDED = 7131002087805116277
LARGEST = 2**63 - 1
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    """Debian's Chromium (or one named by ``EMAIL_CANCEL_CHROMIUM``), if any.
    Playwright's own browser builds are never used: they would be downloaded."""
    named = os.environ.get("EMAIL_CANCEL_CHROMIUM")
    if named:
        return named if os.access(named, os.X_OK) else None
    for candidate in ("chromium", "chromium-browser"):
        found = shutil.which(candidate)
        if found:
            return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


@pytest.fixture(scope="module")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        message = "no Chromium binary (apt-get install chromium)"
        if os.environ.get("EMAIL_CANCEL_REQUIRE_BROWSER") == "1":
            pytest.fail(f"EMAIL_CANCEL_REQUIRE_BROWSER=1 but {message}")
        pytest.skip(message)
    return path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Flask]]:
    """The seeded example app on a free loopback port, in a thread."""
    example = load_example()
    app = example.create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'queue.db'}",
            "EXAMPLE_TOKEN": TOKEN,
            "EXAMPLE_OUTBOX": str(tmp_path / "outbox.log"),
        },
        instance_path=str(tmp_path / "instance"),
    )
    with app.app_context():
        example.db.create_all()
        example.seed_queue()
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_port}", app
    finally:
        http.shutdown()
        thread.join(timeout=10)
        http.server_close()
        with app.app_context():
            example.db.engine.dispose()


@pytest.fixture
def browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    # Generous waits: CI machines are small and run other tests alongside.
    expect.set_options(timeout=15_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def statuses(section: Any) -> list[str]:
    return [s.strip() for s in section.locator("tbody .status").all_inner_texts()]


def test_cancel_from_the_queue_page(server: tuple[str, Flask], browser: Any) -> None:
    from playwright.sync_api import expect

    base, _ = server
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{base}/queue")
    expect(page.locator("h1")).to_have_text("Email Queue")

    section = page.locator(f'section[data-request-id="{SEEDED}"]')
    expect(section).to_have_count(1)
    assert statuses(section) == ["Initial"] * 4 + ["Rejected"]

    section.get_by_role("button", name="Cancel").click()
    message = section.locator(".message")
    expect(message).to_have_text(
        f"Cancelled 4 Email entries of the EmailRequest with ID : {SEEDED}"
    )
    expect(message).to_have_class("message ok")
    expect(section.locator('tbody .status[data-status="Cancelled"]')).to_have_count(4)
    assert statuses(section) == ["Cancelled"] * 4 + ["Rejected"]
    expect(section.locator(".summary")).to_have_text("1 Rejected, 4 Cancelled")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "queue-cancelled.png"), full_page=True)

    section.get_by_role("button", name="Cancel").click()
    expect(message).to_have_text("No cancellable messages found")
    expect(message).to_have_class("message error")
    assert statuses(section) == ["Cancelled"] * 4 + ["Rejected"]

    # Other requests were not touched.
    newsletter = page.locator('section[data-request-id="7131002094418874369"]')
    assert set(statuses(newsletter)) == {"Initial"}
    assert errors == []
    page.close()


def test_the_largest_id_survives_javascript(server: tuple[str, Flask], browser: Any) -> None:
    """2**63-1 is 9223372036854775808 as a JavaScript number: a page that
    turned ids into numbers would cancel nothing here."""
    from playwright.sync_api import expect

    base, _ = server
    page = browser.new_page()
    page.goto(f"{base}/queue?status=Initial")
    section = page.locator(f'section[data-request-id="{LARGEST}"]')
    section.get_by_role("button", name="Cancel").click()
    expect(section.locator(".message")).to_have_text(
        f"Cancelled 3 Email entries of the EmailRequest with ID : {LARGEST}"
    )
    expect(section.locator('tbody .status[data-status="Cancelled"]')).to_have_count(3)
    page.close()


def test_status_filter_and_phone_layout(server: tuple[str, Flask], browser: Any) -> None:
    from playwright.sync_api import expect

    base, _ = server
    page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    page.goto(f"{base}/queue")
    page.select_option("#status", "Opened")
    expect(page).to_have_url(f"{base}/queue?status=Opened")
    expect(page.locator("tbody .status")).to_have_count(2)
    assert set(statuses(page)) == {"Opened"}
    # Readable on a phone: nothing wider than the screen, entries as label/value cards.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    label = page.locator("tbody td").first.evaluate(
        "cell => getComputedStyle(cell, '::before').content"
    )
    assert label == '"Mail ID"'
    ARTIFACTS.mkdir(exist_ok=True)
    page.select_option("#status", "")
    expect(page).to_have_url(f"{base}/queue?status=")
    page.screenshot(path=str(ARTIFACTS / "queue-phone.png"))
    page.close()
