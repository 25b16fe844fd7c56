"""The thresholds the old system's production sign-off named, as data: a direction and a unit per check.

Their values are settings (config.py, `INDEXER_CHECK_<NAME>_WARN` / `_ERROR`, for example
`INDEXER_CHECK_REQUEST_LATENCY_P95_MS_ERROR=2000`), so they are validated with every other setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .config import Settings

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


# name (settings `check_<name>_warn` / `_error` hold the values), higher is better, unit
SIGN_OFF = (
    ("success_rate", True, "documents indexed / seen"),
    ("request_latency_p95_ms", False, "ms"),
    ("docs_per_s", True, "docs/s"),
    ("error_rate", False, "failed requests / requests"),
    ("upsert_latency_p95_ms", False, "ms"),
    ("recall_at_5", True, "of the golden units in the top 5"),
    ("mrr", True, "mean reciprocal rank"),
    ("ndcg_at_10", True, "nDCG@10"),
)


def thresholds(settings: Settings | None = None) -> dict[str, Threshold]:
    """The thresholds in force: `settings`, else the environment's (read at each run, no code change)."""
    s = settings or Settings.from_env()
    return {
        name: Threshold(
            name, getattr(s, f"check_{name}_warn"), getattr(s, f"check_{name}_error"), higher, unit
        )
        for name, higher, unit in SIGN_OFF
    }
