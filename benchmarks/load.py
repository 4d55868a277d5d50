"""A bounded HTTP load client for the benchmarks, run as a process of its own.

It only ever connects to 127.0.0.1. Each of ``--connections`` threads sends
cancels for consecutive request ids (shared, so no id is sent twice) until
``--requests`` have been sent or ``--seconds`` have passed, whichever comes
first, and prints one JSON object: how many requests, how many answered
other than 2xx, how many failed outright, the elapsed time, the throughput
and the latency percentiles.

Used when ``wrk`` is not installed, and always for the memory figure, which
needs an exact number of requests.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import threading
import time

__all__ = ["main", "percentile"]

HOST = "127.0.0.1"


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of the sorted values lie."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True, help="a path with {} for the request id")
    parser.add_argument("--method", default="POST")
    parser.add_argument("--first", type=int, required=True, help="the first request id")
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--header", action="append", default=[], help="Name: value")
    args = parser.parse_args(argv)

    headers = dict(h.split(": ", 1) for h in args.header)
    ids = itertools.count(args.first)
    last = args.first + args.requests
    lock = threading.Lock()
    latencies: list[float] = []
    counts = {"non_2xx": 0, "errors": 0}
    deadline = time.monotonic() + args.seconds

    def worker() -> None:
        conn = http.client.HTTPConnection(HOST, args.port, timeout=30)
        mine: list[float] = []
        non_2xx = errors = 0
        while time.monotonic() < deadline:
            request_id = next(ids)
            if request_id >= last:
                break
            start = time.perf_counter()
            try:
                conn.request(args.method, args.path.format(request_id), headers=headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                errors += 1
                conn.close()
                continue
            mine.append(time.perf_counter() - start)
            if not 200 <= response.status < 300:
                non_2xx += 1
            if response.will_close:
                conn.close()
        conn.close()
        with lock:
            latencies.extend(mine)
            counts["non_2xx"] += non_2xx
            counts["errors"] += errors

    threads = [threading.Thread(target=worker) for _ in range(args.connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    print(
        json.dumps(
            {
                "requests": len(latencies),
                "non_2xx": counts["non_2xx"],
                "errors": counts["errors"],
                "seconds": elapsed,
                "rps": len(latencies) / elapsed if elapsed else 0.0,
                "p50": percentile(latencies, 0.50),
                "p99": percentile(latencies, 0.99),
            }
        )
    )


if __name__ == "__main__":
    main()
