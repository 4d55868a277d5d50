"""What the figures were measured on."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

__all__ = ["describe"]

_PACKAGES = ("flask", "werkzeug", "sqlalchemy", "marshmallow", "psycopg", "pymysql", "gunicorn")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        return "not installed (the Python load client is used)"
    result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    first = (result.stdout or result.stderr).splitlines()
    return first[0].split(" [")[0] if first else "installed"


def _commit() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = result.stdout.strip() or "unknown"
    return f"{commit} (with uncommitted changes)" if dirty.stdout.strip() else commit


def describe(servers: dict[str, str]) -> list[tuple[str, str]]:
    """The machine, the software and the database servers, as label/value pairs."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    rows = [
        ("Date", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("Commit", _commit()),
        ("CPU", _cpu_model()),
        ("Cores", f"{os.cpu_count()} (usable by this process: {affinity or '?'})"),
        ("Load average at start", load),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("Packages", ", ".join(f"{p} {_version(p)}" for p in _PACKAGES)),
        ("Load client", _wrk()),
    ]
    rows.extend((label, version) for label, version in servers.items())
    return rows
