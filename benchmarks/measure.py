"""Same-run ratios: two things measured alternately, several repetitions.

Every figure the suite reports is the ratio of two measurements taken in the
same run, interleaved so that drift in the machine's load (other processes,
CPU frequency, the database's caches) falls on both alike. Each repetition
gives one ratio; the figure is their median, and the spread is their minimum
and maximum.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["Comparison", "Row", "alternate", "interleaved", "timed"]


@dataclass
class Comparison:
    """Repeated measurements of ``a`` and ``b``, one of each per repetition."""

    a: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)

    def add(self, a: float, b: float) -> None:
        self.a.append(a)
        self.b.append(b)

    @property
    def ratios(self) -> list[float]:
        return [x / y for x, y in zip(self.a, self.b, strict=True) if y]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios) if self.ratios else float("nan")

    @property
    def spread(self) -> tuple[float, float]:
        ratios = self.ratios
        return (min(ratios), max(ratios)) if ratios else (float("nan"), float("nan"))

    @property
    def a_median(self) -> float:
        return statistics.median(self.a) if self.a else float("nan")

    @property
    def b_median(self) -> float:
        return statistics.median(self.b) if self.b else float("nan")


def timed(action: Callable[[], object], count: int) -> float:
    """Seconds per call of ``action``, over ``count`` calls."""
    gc.collect()
    start = time.perf_counter()
    for _ in range(count):
        action()
    return (time.perf_counter() - start) / count


def interleaved(actions: Sequence[Callable[[], object]], rounds: int) -> list[float]:
    """Time each action once per round, in an order that rotates from one
    round to the next, and return each action's median seconds per call.

    Interleaving call by call puts a burst of load from another process on
    every action alike, and the median leaves out the calls it hit hardest.
    """
    gc.collect()
    times: list[list[float]] = [[] for _ in actions]
    clock = time.perf_counter
    n = len(actions)
    for round_ in range(rounds):
        for k in range(n):
            i = (round_ + k) % n
            start = clock()
            actions[i]()
            times[i].append(clock() - start)
    return [statistics.median(t) for t in times]


def alternate(repetitions: int, measures: Sequence[Callable[[int], float]]) -> list[list[float]]:
    """Run each measure once per repetition, in an order that alternates from
    one repetition to the next (forwards, then backwards), and return each
    measure's results. Each measure gets the repetition's index."""
    results: list[list[float]] = [[] for _ in measures]
    for rep in range(repetitions):
        order = range(len(measures)) if rep % 2 == 0 else reversed(range(len(measures)))
        for i in order:
            results[i].append(measures[i](rep))
    return results


@dataclass
class Row:
    """One line of the results table."""

    figure: str
    database: str
    a_label: str
    a: str
    b_label: str
    b: str
    ratio: float
    spread: tuple[float, float]
    repetitions: int
    target: str
    met: bool | None
    details: str = ""
