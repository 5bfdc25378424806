"""Per-unit rate limit: a token bucket per unit, in memory.

A unit that overruns its bucket gets 429 with Retry-After (whole seconds, as HTTP wants), and its
uplink waits at least that long. In-memory is enough for one server process; several processes each
keep their own buckets, so the effective limit is per process (noted in docs/central-api.md).
"""
from __future__ import annotations

import math
import threading
import time


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: int, clock=time.monotonic):
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate_per_s
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}     # key -> (tokens, last refill time)
        self._lock = threading.Lock()

    def refund(self, key: str, cost: float = 1.0) -> None:
        """Give back `cost` tokens taken by `check` for work that turned out not to count."""
        with self._lock:
            if key in self._buckets:
                tokens, last = self._buckets[key]
                self._buckets[key] = (min(float(self.burst), tokens + cost), last)

    def check(self, key: str, cost: float = 1.0) -> int:
        """Take `cost` tokens; return 0 if allowed, else the seconds to wait (>= 1)."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= cost:
                self._buckets[key] = (tokens - cost, now)
                return 0
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((cost - tokens) / self.rate))
