"""Uplink: deliver sealed reads from the buffer to the central store, at least once, never lost.

The rules (guide, "Uplink"; issue 4):
- a read leaves the buffer only when a 2xx answer names it `stored` or `duplicate`;
- a read the store names `rejected` is quarantined with the store's reason, never dropped;
- anything else - another status, a timeout, a reset, an answer that cannot be parsed - means
  "try again later", after a capped exponential backoff with full jitter, and never sooner than
  the store's Retry-After;
- 413 halves the batch; a single read still too large is quarantined (it can never be delivered).
The central store de-duplicates by read_id, so resending after a lost answer is always safe.

Plain constructor arguments (no config object) keep this testable; `from_config` maps the unit's
[uplink] section (`unit.config.UplinkConfig`) onto them.
"""
from __future__ import annotations

import json
import logging
import random
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from unit.buffer import StoreError
from unit.health import read_status, write_status
from unit.keys import load_ed25519_private
from wire import paths
from wire.batch import DELIVERED, DUPLICATE, REJECTED, STORED, item, parse_response, request
from wire.signing import sign_headers
from wire.times import utc_ms

if TYPE_CHECKING:
    from unit.config import UplinkConfig

log = logging.getLogger(__name__)


class Buffer(Protocol):
    """What the uplink needs of `unit.buffer.SealedBuffer`."""
    def pending(self, limit: int = 100) -> list: ...
    def mark_sent(self, read_ids: list[str]) -> None: ...
    def mark_attempt(self, read_ids: list[str]) -> None: ...
    def quarantine(self, read_id: str, reason: str) -> None: ...


class SignedClient:
    """requests with the unit's signature on every call (see `wire.signing`).

    If the store refuses a timestamp as stale it says its own time; the client keeps the offset so
    a unit whose clock has drifted (a Pi has no RTC) recovers without waiting for NTP.
    """

    def __init__(self, base_url: str, unit_id: str, key: Ed25519PrivateKey,
                 session: requests.Session | None = None, timeout: tuple[float, float] = (5.0, 30.0)):
        self.base_url = base_url.rstrip("/")
        self.unit_id = unit_id
        self.key = key
        self.session = session or requests.Session()
        self.timeout = timeout
        self.clock_offset_s = 0.0

    def request(self, method: str, path: str, body: bytes = b"",
                headers: dict[str, str] | None = None) -> requests.Response:
        url = self.base_url + path
        signed = sign_headers(self.key, self.unit_id, method, urlsplit(url).path, body,
                              now=time.time() + self.clock_offset_s)
        # verify named on each request: requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE in the environment
        # override a session's own verify, which would silently replace the unit's [uplink] ca_bundle
        resp = self.session.request(method, url, data=body, timeout=self.timeout, verify=self.session.verify,
                                    headers={**(headers or {}), **signed})
        if resp.status_code == 401:
            try:
                server_time = resp.json().get("server_time")
            except ValueError:
                server_time = None
            if isinstance(server_time, (int, float)):
                self.clock_offset_s = server_time - time.time()
                log.warning("central says our clock is off by %.0f s; adjusting", self.clock_offset_s)
        return resp

    def post_json(self, path: str, doc: Any) -> requests.Response:
        body = json.dumps(doc, separators=(",", ":")).encode("utf-8")
        return self.request("POST", path, body, {"Content-Type": "application/json"})


# what a technician can act on, for the low-level reasons a request fails (searched in the exception's text)
_REASONS = (
    (("connection refused",), "connection refused (is the store running, on this port?)"),
    (("name or service not known", "failed to resolve", "temporary failure in name resolution",
      "nodename nor servname"), "host name not found (DNS)"),
    (("network is unreachable", "no route to host"), "no route to it (network down or a firewall)"),
    (("connection reset", "remotedisconnected", "connection aborted", "broken pipe"),
     "the connection was dropped before an answer"),
)


def network_problem(exc: requests.RequestException, base_url: str, timeout: tuple[float, float] | None = None) -> str:
    """One plain sentence for a request that got no answer, e.g. "central store not reachable at
    https://central:8443: connection refused (is the store running, on this port?)"; never the raw,
    nested exception text (which `alpr-unit status` once showed, cut off mid-word)."""
    text = f"{type(exc).__name__} {exc}".lower()
    where = f"central store not reachable at {base_url}"
    if isinstance(exc, requests.exceptions.SSLError):
        reason = ("its TLS certificate is not trusted: give its CA as [uplink] ca_bundle"
                  if "certificate" in text else "the TLS handshake failed")
        return f"{where}: {reason}"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"{where}: no connection within {timeout[0]:g} s" if timeout else f"{where}: connecting timed out"
    if isinstance(exc, requests.exceptions.Timeout):
        return (f"central store at {base_url} did not answer within {timeout[1]:g} s" if timeout
                else f"central store at {base_url} did not answer in time")
    for needles, reason in _REASONS:
        if any(n in text for n in needles):
            return f"{where}: {reason}"
    return f"{where}: {type(exc).__name__}"


def retry_after_s(resp: requests.Response) -> float | None:
    """Retry-After as seconds, from either form HTTP allows (delta-seconds or an HTTP date)."""
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def backoff_s(failures: int, base_s: float, cap_s: float, rng: random.Random,
              retry_after: float | None = None) -> float:
    """Full jitter: uniform(0, min(cap, base * 2^(failures-1))), but never below Retry-After."""
    ceiling = min(cap_s, base_s * 2 ** min(max(failures - 1, 0), 30))
    return max(rng.uniform(0.0, ceiling), retry_after or 0.0)


@dataclass
class Outcome:
    """What one push did. `progress` is True when the store answered for at least one read."""
    batch: int = 0
    stored: int = 0
    duplicate: int = 0
    rejected: int = 0
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None
    progress: bool = False


@dataclass
class UplinkState:
    """Visible in `alpr-unit status` (written to `state_path` as JSON after every push)."""
    state: str = "starting"             # idle | sending | backing_off | refused
    url: str = ""
    last_attempt_at: str | None = None
    last_success_at: str | None = None
    last_status: int | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    next_attempt_at: str | None = None
    batch_limit: int = 0
    stored: int = 0
    duplicate: int = 0
    rejected: int = 0
    clock_offset_s: float = 0.0


class Uplink:
    def __init__(self, url: str, unit_id: str, key: Ed25519PrivateKey, buffer: Buffer,
                 session: requests.Session | None = None, batch_size: int = 100,
                 max_batch_bytes: int = 8 * 1024 * 1024, backoff_base_s: float = 1.0,
                 backoff_cap_s: float = 300.0, idle_s: float = 5.0,
                 timeout: tuple[float, float] = (5.0, 30.0), state_path: str | Path | None = None,
                 rng: random.Random | None = None):
        self.client = SignedClient(url, unit_id, key, session, timeout)
        self.buffer = buffer
        self.batch_size = batch_size
        self.max_batch_bytes = max_batch_bytes
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.idle_s = idle_s
        self.state_path = Path(state_path) if state_path else None
        self.rng = rng or random.Random()
        self._batch_limit = batch_size
        self._state = UplinkState(url=url, batch_limit=batch_size)
        self._lock = threading.Lock()
        self._failure: str | None = None       # the buffer error last logged

    # -- one push -----------------------------------------------------------------------------------
    def _take(self) -> list:
        batch = self.buffer.pending(limit=self._batch_limit)
        total, keep = 0, []
        for r in batch:                            # byte cap, but always at least one read
            if keep and total + r.size > self.max_batch_bytes:
                break
            keep.append(r)
            total += r.size
        return keep

    def push_once(self) -> Outcome:
        """Send one batch and apply the answer to the buffer. Never raises for network trouble."""
        batch = self._take()
        out = Outcome(batch=len(batch))
        if not batch:
            return out
        ids = [r.read_id for r in batch]
        self.buffer.mark_attempt(ids)
        doc = request(item(r.read_id, r.captured_at, r.envelope) for r in batch)
        try:
            resp = self.client.post_json(paths.READS, doc)
        except requests.RequestException as exc:
            out.error = network_problem(exc, self.client.base_url, self.client.timeout)
            return out
        out.status = resp.status_code
        if resp.status_code == 413:
            return self._too_large(batch, out, resp)
        if not 200 <= resp.status_code < 300:
            out.retry_after = retry_after_s(resp)
            out.error = _error_text(resp)
            return out
        try:
            named = parse_response(resp.json(), ids)
        except ValueError:
            out.error = "2xx answer without a readable results list"
            return out
        acked = [rid for rid, r in named.items() if r.get("status") in DELIVERED]
        self.buffer.mark_sent(acked)
        for rid, r in named.items():
            if r.get("status") == REJECTED:
                reason = str(r.get("reason") or "rejected by central (no reason given)")
                self.buffer.quarantine(rid, reason)
                log.warning("read %s rejected by central and quarantined: %s", rid, reason)
        counts = Counter(r.get("status") for r in named.values())
        out.stored, out.duplicate, out.rejected = counts[STORED], counts[DUPLICATE], counts[REJECTED]
        out.progress = bool(acked) or out.rejected > 0
        if not out.progress:
            out.error = "2xx answer named none of the reads sent"
        self._batch_limit = min(self.batch_size, self._batch_limit * 2)   # regrow after a 413
        return out

    def _too_large(self, batch: list, out: Outcome, resp: requests.Response) -> Outcome:
        if len(batch) > 1:
            self._batch_limit = max(1, len(batch) // 2)
            out.progress = True                    # not a failure of the store: retry at once, smaller
            return out
        reason = f"central refuses this read as too large (413: {_error_text(resp)})"
        self.buffer.quarantine(batch[0].read_id, reason)
        out.rejected, out.progress = 1, True
        return out

    # -- the loop -----------------------------------------------------------------------------------
    def run(self, stop: threading.Event, until_empty: bool = False) -> None:
        """Push until `stop` is set (or, with until_empty, until nothing is pending)."""
        failures = 0
        while not stop.is_set():
            try:
                out = self.push_once()
                self._failure = None
            except Exception as exc:    # a buffer error must not kill the thread; said once, not at every try
                err = f"{type(exc).__name__}: {exc}"
                if err != self._failure:
                    self._failure = err
                    log.error("uplink: cannot take reads from the buffer: %s (retrying with backoff)", err,
                              exc_info=not isinstance(exc, (StoreError, sqlite3.Error)))
                out = Outcome(batch=1, error=err)
            if out.batch == 0:
                self._record(out, "idle", None)
                if until_empty:
                    return
                stop.wait(self.idle_s)
                continue
            if out.progress:
                failures = 0
                self._record(out, "sending", None)
                continue
            failures += 1
            delay = backoff_s(failures, self.backoff_base_s, self.backoff_cap_s, self.rng, out.retry_after)
            self._record(out, "refused" if out.status in (401, 403) else "backing_off", delay, failures)
            stop.wait(delay)

    def _record(self, out: Outcome, state: str, delay: float | None, failures: int = 0) -> None:
        now = time.time()
        with self._lock:
            s = self._state
            changed = s.state != state
            s.state, s.consecutive_failures, s.batch_limit = state, failures, self._batch_limit
            s.clock_offset_s = round(self.client.clock_offset_s, 1)
            if out.batch:
                s.last_attempt_at, s.last_status, s.last_error = utc_ms(now), out.status, out.error
            if out.progress:
                s.last_success_at = utc_ms(now)
            s.stored += out.stored
            s.duplicate += out.duplicate
            s.rejected += out.rejected
            s.next_attempt_at = utc_ms(now + delay) if delay else None
            snapshot = asdict(s)
        if self.state_path and (out.batch or changed):      # not on every idle poll
            write_status(self.state_path, snapshot)

    def status(self) -> dict[str, Any]:
        with self._lock:
            return asdict(self._state)


def _error_text(resp: requests.Response) -> str:
    try:
        return str(resp.json().get("error") or resp.status_code)[:200]
    except (ValueError, AttributeError):
        return f"HTTP {resp.status_code}"


def read_state(path: str | Path) -> dict[str, Any] | None:
    """The last uplink state written by the running service (for `alpr-unit status`)."""
    return read_status(path)


def from_config(section: "UplinkConfig", unit_id: str, buffer: Buffer, state_path: str | Path | None = None) -> Uplink:
    """Build the uplink from the unit config's [uplink] table (keys: docs/central-api.md)."""
    session = requests.Session()
    if section.ca_bundle:                          # a private CA for the central store's certificate
        session.verify = section.ca_bundle
    return Uplink(url=section.url, unit_id=unit_id, key=load_ed25519_private(section.identity_key_path),
                  buffer=buffer, session=session, batch_size=section.batch_size,
                  max_batch_bytes=section.max_batch_bytes, backoff_base_s=section.backoff_base_s,
                  backoff_cap_s=section.backoff_cap_s, idle_s=section.idle_s,
                  timeout=(section.connect_timeout_s, section.read_timeout_s),
                  state_path=section.state_path or state_path)
