"""The benchmark suite's quick mode runs end to end on SQLite and prints a row
for every figure. Its timings are not checked: they depend on the machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FIGURES = ("1 Overhead", "2 Table scale", "3 Fan-out", "4 HTTP sync", "4 HTTP gthread", "5 Memory")


def test_quick_run_prints_every_figure(tmp_path: Path) -> None:
    pytest.importorskip("gunicorn")
    output = tmp_path / "results.md"
    command = [
        sys.executable,
        "-m",
        "benchmarks",
        "--quick",
        "--databases=sqlite",
        "--repetitions=1",
        "--http-seconds=0.5",
        "--client=python",
        "--memory-requests=400",
        f"--output={output}",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    for figure in FIGURES:
        assert f"| {figure} | SQLite |" in result.stdout, figure
    assert "FAILED" not in result.stdout
    assert "## Profile of a blueprint request (SQLite)" in result.stdout
    assert "| CPU |" in result.stdout
    assert output.read_text() in result.stdout
