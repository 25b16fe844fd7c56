"""An adaptive client-side rate limiter for requests/min and tokens/min.

Two token buckets, full at the start like the server's, refilled continuously at the configured
rates. Every request takes one request and its tokens before it is sent, so the client, not a storm
of 429s, sets the pace. The server knows best, so its headers only ever correct us downward:
`x-ratelimit-remaining-*` lowers a bucket when the server has less left than we think (other clients
share the key), and `x-ratelimit-limit-*` with `x-ratelimit-reset-*` (the time until the server's
bucket is full again) give the server's refill rate, adopted when it is slower than ours (a lower
tier than configured). A 429 pauses every request until its retry-after and slows the refill by
10 %, which recovers by 1 % per success. A limit the server states (in its headers, or in a 429
"Request too large … Limit N") is kept in `server_token_limit`: no request above it can ever succeed.

No wait is longer than refilling the whole bucket: a request is charged at most the bucket's
capacity as it stands at each check, so a capacity that shrinks while a request waits (a lower limit
learned from another answer) cannot leave it waiting for a level the bucket can never reach.
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


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


class _Bucket:
    def __init__(self, per_minute: float):
        self.capacity = self.per_minute = float(per_minute)
        self.level = self.capacity

    def refill(self, elapsed_s: float, factor: float) -> None:
        self.level = min(self.capacity, self.level + elapsed_s * self.per_minute / 60 * factor)

    def seconds_until(self, amount: float, factor: float) -> float:
        return max(0.0, (amount - self.level) * 60 / (self.per_minute * factor))

    def observe(self, limit: float | None, remaining: float | None, reset_s: float | None) -> None:
        if remaining is None:
            return
        self.level = min(self.level, remaining)
        if limit:
            self.capacity = min(self.capacity, limit)
        # Only a deficit of 10 % or more measures the server's rate well (headers are rounded).
        if limit and reset_s and limit - remaining >= 0.1 * limit:
            self.per_minute = min(self.per_minute, (limit - remaining) / reset_s * 60)


class AdaptiveLimiter:
    MIN_FACTOR = 0.5

    def __init__(self, rpm: float, tpm: float, clock=time.monotonic):
        self.requests, self.tokens = _Bucket(rpm), _Bucket(tpm)
        self._clock = clock
        self._last = clock()
        self._paused_until = 0.0
        self.factor = 1.0  # share of the rates currently used
        self.server_token_limit: float | None = None  # tokens per minute, as the server states it

    def _refill(self) -> None:
        now = self._clock()
        elapsed, self._last = now - self._last, now
        self.requests.refill(elapsed, self.factor)
        self.tokens.refill(elapsed, self.factor)

    async def acquire(self, tokens: int) -> None:
        while True:
            self._refill()
            # A request larger than the whole bucket may go when the bucket is full (else it never
            # could); the cap is taken at each check, as the capacity may shrink while we wait.
            charge = min(tokens, self.tokens.capacity)
            wait = max(
                self._paused_until - self._clock(),
                self.requests.seconds_until(1, self.factor),
                self.tokens.seconds_until(charge, self.factor),
            )
            if wait <= 0:
                self.requests.level -= 1
                self.tokens.level -= charge
                return
            await asyncio.sleep(max(wait, 0.001))

    def learn_token_limit(self, per_minute: float) -> None:
        """The server's tokens-per-minute limit, stated by it: the bucket holds and refills no more."""
        self._refill()
        self.server_token_limit = min(self.server_token_limit or per_minute, per_minute)
        bucket = self.tokens
        bucket.capacity = min(bucket.capacity, per_minute)
        bucket.per_minute = min(bucket.per_minute, per_minute)
        bucket.level = min(bucket.level, bucket.capacity)

    def observe(self, headers) -> None:
        """Follow the server's own count and rate where they are below ours (any answer's headers)."""
        if headers is None:
            return
        limit = _number(headers.get("x-ratelimit-limit-tokens"))
        if limit:
            self.learn_token_limit(limit)
        self._refill()
        for name, bucket in (("requests", self.requests), ("tokens", self.tokens)):
            bucket.observe(
                _number(headers.get(f"x-ratelimit-limit-{name}")),
                _number(headers.get(f"x-ratelimit-remaining-{name}")),
                parse_duration(headers.get(f"x-ratelimit-reset-{name}")),
            )

    def on_success(self) -> None:
        self.factor = min(1.0, self.factor + 0.01)

    def on_rate_limited(self, retry_after_s: float) -> None:
        self._paused_until = max(self._paused_until, self._clock() + retry_after_s)
        self.factor = max(self.MIN_FACTOR, self.factor * 0.9)
