"""Small helpers for the figures every stage reports."""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), or 0.0 when nothing was measured (an all-cached run)."""
    return float(np.percentile(values, q)) if values else 0.0


@contextmanager
def stopwatch(into: list[float]):
    """Append the block's duration in milliseconds to `into`."""
    start = time.perf_counter()
    try:
        yield
    finally:
        into.append((time.perf_counter() - start) * 1000.0)
