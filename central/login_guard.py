"""What a login from an address nobody has vouched for may cost, and whom it may lock out.

A login costs an Argon2 hash (64 MiB and three passes at the default costs), paid before anyone is
known; `LoginGuard` bounds that work and keeps lock-out out of an anonymous caller's hands:

- per address, failed logins are a token bucket (`ADDRESS_BURST`, then one per `ADDRESS_EVERY_S`); an
  address that has used it up is answered 429 with Retry-After, before any hash. Each attempt takes
  its token before hashing (so a burst of concurrent attempts cannot all get past an unspent bucket)
  and a good login gives it back, so colleagues behind one gateway are not throttled by each other;
- at most `max_hashing` logins hash at once; one that waits longer than
  `HASH_WAIT_S` is answered 503 with Retry-After. Memory for hashing stays at max_hashing x the
  Argon2 memory cost, however many clients call;
- `lockout_failures` wrong passwords for one account from one address lock that address out of that
  account for `lockout_minutes` (in memory, per server process); the account itself is not locked;
- each address counts at most once, per `ADDRESS_MEMORY_S`, toward the account-wide lock-out that
  `central.sessions` keeps in the database (`lockout_failures` consecutive counted failures): locking
  an account out for everyone takes that many different addresses, not one anonymous caller.

State is in memory and bounded (`MAX_TRACKED` keys, the oldest forgotten first); several server
processes each keep their own, as for the units' rate limit.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from datetime import datetime
from typing import Callable, Iterator

import sqlalchemy as sa

from central import sessions
from central.config import Settings
from central.errors import ApiError
from central.ratelimit import RateLimiter

ADDRESS_BURST = 10                   # failed logins an address may make at once...
ADDRESS_EVERY_S = 6.0                # ...then one per this many seconds
HASH_WAIT_S = 10.0                   # a login waiting longer than this for a hashing slot is told to retry
ADDRESS_MEMORY_S = 24 * 3600         # an address counts once per day toward an account-wide lock
MAX_TRACKED = 100_000
MAX_HASHING = 4


class _Bounded(OrderedDict):
    """A dict that forgets its oldest keys past MAX_TRACKED (an address flood cannot grow it for ever)."""

    def put(self, key, value) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > MAX_TRACKED:
            self.popitem(last=False)


class LoginGuard:
    def __init__(self, max_hashing: int = MAX_HASHING, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.failures = RateLimiter(1.0 / ADDRESS_EVERY_S, ADDRESS_BURST, clock=lambda: self.clock())
        self._hashing = threading.Semaphore(max_hashing)
        self._lock = threading.Lock()
        self._streaks: _Bounded = _Bounded()        # (address, username) -> (failures in a row, locked until)
        self._counted: _Bounded = _Bounded()        # (address, username) -> when it last counted account-wide
        self.max_hashing = max_hashing
        self.hash_wait_s = HASH_WAIT_S
        self.hashing = 0                            # logins hashing now, and the most there ever were at once
        self.peak_hashing = 0

    def login(self, engine: sa.Engine, settings: Settings, username: str, password: str,
              client: str) -> tuple[str, datetime]:
        """`sessions.login` behind the throttle, the per-address lock and the hashing cap; raises ApiError
        401 (refused), 429 (this address: too many failures) or 503 (too many logins at once)."""
        key = (client, username)
        wait = self.failures.check(client)          # a failure's token, taken before the hash, given back on success
        if wait:
            raise ApiError(429, "too many failed logins from this address: wait and try again", retry_after=wait)
        now = self.clock()
        with self._lock:
            streak, until = self._streaks.get(key, (0, 0.0))
            counted_at = self._counted.get(key)
        if until > now:
            sessions.refuse_locked(engine, username, client)
            raise ApiError(401, sessions.REFUSED)
        counts = counted_at is None or now - counted_at > ADDRESS_MEMORY_S
        try:
            with self._slot():
                session = sessions.login(engine, settings, username, password, client, count_failure=counts)
        except ApiError as exc:
            if exc.status == 401:
                self._failed(engine, settings, key, streak, counts)
            else:
                self.failures.refund(client)        # not let in to try (503): not a failure
            raise
        self.failures.refund(client)
        with self._lock:
            self._streaks.pop(key, None)
        return session

    def _failed(self, engine: sa.Engine, settings: Settings, key: tuple[str, str], streak: int,
                counted: bool) -> None:
        now = self.clock()
        streak += 1
        until = 0.0
        if streak >= settings.lockout_failures:
            until, streak = now + settings.lockout_minutes * 60, 0
            sessions.record_address_lockout(engine, key[1], key[0], settings.lockout_failures,
                                            settings.lockout_minutes)
        with self._lock:
            self._streaks.put(key, (streak, until))
            if counted:
                self._counted.put(key, now)

    @contextmanager
    def _slot(self) -> Iterator[None]:
        if not self._hashing.acquire(timeout=self.hash_wait_s):
            raise ApiError(503, "too many logins at once: try again in a moment", retry_after=1)
        with self._lock:
            self.hashing += 1
            self.peak_hashing = max(self.peak_hashing, self.hashing)
        try:
            yield
        finally:
            with self._lock:
                self.hashing -= 1
            self._hashing.release()
