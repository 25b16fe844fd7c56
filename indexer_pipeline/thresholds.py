"""The thresholds the old system's production sign-off named, as data: each overridable by environment.

`INDEXER_CHECK_<NAME>_WARN` / `INDEXER_CHECK_<NAME>_ERROR` override a default, for example
`INDEXER_CHECK_REQUEST_LATENCY_P95_MS_ERROR=2000`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["pass", "warn", "error"]


@dataclass(frozen=True)
class Threshold:
    name: str  # also the metadata key the value comes from
    warn: float
    error: float
    higher_is_better: bool
    unit: str

    def judge(self, value: float) -> Verdict:
        if self.higher_is_better:
            return "error" if value < self.error else "warn" if value < self.warn else "pass"
        return "error" if value > self.error else "warn" if value > self.warn else "pass"

    def describe(self, value: float) -> str:
        op = "≥" if self.higher_is_better else "≤"
        return f"{self.name} = {value:g} {self.unit} (pass {op} {self.warn:g}, error beyond {self.error:g})"


DEFAULTS = (
    Threshold("success_rate", warn=0.99, error=0.95, higher_is_better=True, unit="documents indexed / seen"),
    Threshold("request_latency_p95_ms", warn=800, error=1200, higher_is_better=False, unit="ms"),
    Threshold("docs_per_s", warn=1.5, error=1.0, higher_is_better=True, unit="docs/s"),
    Threshold("error_rate", warn=0.01, error=0.05, higher_is_better=False, unit="failed requests / requests"),
    Threshold("upsert_latency_p95_ms", warn=100, error=200, higher_is_better=False, unit="ms"),
)


def thresholds() -> dict[str, Threshold]:
    """The defaults, with any environment overrides applied (read at each run, no code change needed)."""
    result = {}
    for t in DEFAULTS:
        prefix = f"INDEXER_CHECK_{t.name.upper()}"
        warn = float(os.environ.get(f"{prefix}_WARN", t.warn))
        error = float(os.environ.get(f"{prefix}_ERROR", t.error))
        result[t.name] = Threshold(t.name, warn, error, t.higher_is_better, t.unit)
    return result
