"""An adaptive client-side rate limiter for requests/min and tokens/min.

Two token buckets, full at the start like the server's, refilled continuously at the configured
rates. Every request takes one request and its tokens before it is sent, so the client, not a storm
of 429s, sets the pace. The server knows best: `x-ratelimit-remaining-*` headers lower our buckets
when the server has less left than we think (other clients share the key), and a 429 pauses every
request until its retry-after and slows the refill by 10 %, which recovers by 1 % per success.
"""

from __future__ import annotations

import asyncio
import re
import time

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | None) -> float | None:
    """'6m0s' → 360.0, '120ms' → 0.12, '1.5s' → 1.5 (the x-ratelimit-reset-* format)."""
    if not text:
        return None
    parts = _DURATION.findall(text)
    return sum(float(n) * _SECONDS[u] for n, u in parts) if parts else None


class AdaptiveLimiter:
    MIN_FACTOR = 0.5

    def __init__(self, rpm: float, tpm: float, clock=time.monotonic):
        self.rpm, self.tpm = float(rpm), float(tpm)
        self._clock = clock
        self._requests, self._tokens = self.rpm, self.tpm
        self._last = clock()
        self._paused_until = 0.0
        self.factor = 1.0  # share of the configured rates currently used

    def _refill(self) -> None:
        now = self._clock()
        elapsed, self._last = now - self._last, now
        self._requests = min(self.rpm, self._requests + elapsed * self.rpm / 60 * self.factor)
        self._tokens = min(self.tpm, self._tokens + elapsed * self.tpm / 60 * self.factor)

    async def acquire(self, tokens: int) -> None:
        # A request larger than the whole bucket may go when the bucket is full (else it never could).
        tokens = min(tokens, self.tpm)
        while True:
            self._refill()
            pause = self._paused_until - self._clock()
            if pause <= 0 and self._requests >= 1 and self._tokens >= tokens:
                self._requests -= 1
                self._tokens -= tokens
                return
            wait_requests = (1 - self._requests) * 60 / (self.rpm * self.factor)
            wait_tokens = (tokens - self._tokens) * 60 / (self.tpm * self.factor)
            await asyncio.sleep(max(pause, wait_requests, wait_tokens, 0.001))

    def observe(self, headers) -> None:
        """Follow the server's own count when it has less left than we do."""
        self._refill()
        for header, attr in (
            ("x-ratelimit-remaining-requests", "_requests"),
            ("x-ratelimit-remaining-tokens", "_tokens"),
        ):
            value = headers.get(header)
            if value is not None:
                try:
                    setattr(self, attr, min(getattr(self, attr), float(value)))
                except ValueError:
                    pass

    def on_success(self) -> None:
        self.factor = min(1.0, self.factor + 0.01)

    def on_rate_limited(self, retry_after_s: float) -> None:
        self._paused_until = max(self._paused_until, self._clock() + retry_after_s)
        self.factor = max(self.MIN_FACTOR, self.factor * 0.9)
