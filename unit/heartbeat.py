"""Heartbeat every minute, and the hot list pulled when its ETag changes.

The heartbeat answer carries the store's current hot-list ETag, so an unchanged list costs nothing;
a changed one is fetched with If-None-Match and accepted only if the central Ed25519 signature over
the exact body verifies (`wire.hotlist`). It is then written, atomically, in the on-device format
`unit.hotlist` reads (`PATTERN,LABEL` a line) to the [hotlist] path, which the service's watcher reloads.
"""
from __future__ import annotations

import base64
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from unit import hotlist as unit_hotlist
from unit.uplink import SignedClient, Uplink, network_problem
from wire import paths
from wire.hotlist import SIGNATURE_HEADER, verified_entries
from wire.times import utc_ms

if TYPE_CHECKING:
    from unit.config import UplinkConfig

log = logging.getLogger(__name__)


def system_facts(disk_path: str | Path = "/") -> dict[str, Any]:
    """Uptime, SoC temperature and disk space: the part of a heartbeat every unit can tell alone."""
    facts: dict[str, Any] = {}
    try:
        facts["uptime_s"] = round(float(Path("/proc/uptime").read_text().split()[0]), 1)
    except (OSError, ValueError, IndexError):
        facts["uptime_s"] = None
    try:
        facts["temperature_c"] = int(Path("/sys/class/thermal/thermal_zone0/temp").read_text()) / 1000.0
    except (OSError, ValueError):
        facts["temperature_c"] = None
    try:
        du = shutil.disk_usage(disk_path)
        facts["disk"] = {"path": str(disk_path), "free_bytes": du.free, "total_bytes": du.total}
    except OSError:
        facts["disk"] = None
    return facts


def to_unit_format(entries: list[dict[str, Any]]) -> str:
    """Central's entries as `unit.hotlist` lines; the label loses what that format cannot carry."""
    lines = ["# hot list from the central store; replaced on every change, do not edit"]
    for e in entries:
        label = " ".join(str(e.get("reason", "")).replace("#", " ").replace(",", " ").split())
        lines.append(f"{e['pattern']},{label}" if label else e["pattern"])
    return "\n".join(lines) + "\n"


class HotListPuller:
    """Keeps the unit's hot-list file (`path`, and `path`.etag beside it) in step with the store."""

    def __init__(self, client: SignedClient, path: str | Path, central_signing_key: Ed25519PublicKey):
        self.client = client
        self.path = Path(path)
        self.etag_path = self.path.with_name(self.path.name + ".etag")
        self.central_key = central_signing_key

    @property
    def etag(self) -> str | None:
        try:
            return self.etag_path.read_text().strip() or None
        except OSError:
            return None

    def pull(self) -> bool:
        """Fetch if changed; True when a new, verified list was written."""
        headers = {"If-None-Match": self.etag} if self.etag and self.path.exists() else {}
        resp = self.client.request("GET", paths.HOTLIST, b"", headers)
        if resp.status_code == 304:
            return False
        if resp.status_code != 200:
            raise RuntimeError(f"hot list: HTTP {resp.status_code}")
        try:
            entries = verified_entries(resp.content, resp.headers.get(SIGNATURE_HEADER, ""), self.central_key)
            text = to_unit_format(entries)
            parsed = unit_hotlist.parse(text, "hot list from central")
        except ValueError as exc:
            raise RuntimeError(f"hot list: signature or format wrong ({exc}); keeping the old list") from None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # list first, ETag second: a crash between them means one more fetch, never a stale list kept
        for target, data in ((self.path, text.encode("utf-8")), (self.etag_path, resp.headers.get("ETag", "").encode())):
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        log.info("hot list updated: %d entries", len(parsed))
        return True


class Heartbeat:
    """Every `interval_s`: POST what `collect()` returns (plus sent_at); pull the hot list if it changed."""

    def __init__(self, client: SignedClient, collect: Callable[[], dict[str, Any]],
                 hotlist: HotListPuller | None = None, interval_s: float = 60.0):
        self.client = client
        self.collect = collect
        self.hotlist = hotlist
        self.interval_s = interval_s
        self.last_error: str | None = None

    def beat(self) -> bool:
        try:
            doc = self.collect()
        except Exception as exc:    # a part that cannot say how it is must not silence the heartbeat
            doc = {"collect_error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        try:
            resp = self.client.post_json(paths.HEARTBEAT, {"sent_at": utc_ms(time.time()), **doc})
            if resp.status_code != 200:
                raise RuntimeError(f"heartbeat: HTTP {resp.status_code}")
            etag = resp.json().get("hotlist_etag")
            if self.hotlist is not None and etag and etag != self.hotlist.etag:
                self.hotlist.pull()
        except requests.RequestException as exc:
            self.last_error = "heartbeat: " + network_problem(exc, self.client.base_url, self.client.timeout)
            log.warning("%s", self.last_error)
            return False
        except (RuntimeError, ValueError) as exc:
            self.last_error = str(exc)[:200]
            log.warning("%s", self.last_error)
            return False
        self.last_error = None
        return True

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.beat()
            stop.wait(self.interval_s)


def collector(buffer: Any, uplink: Any, versions: dict[str, str],
              health: Callable[[], dict[str, Any]] | None = None) -> Callable[[], dict[str, Any]]:
    """The guide's heartbeat: uptime, versions, queue depth and age, drops, camera and sensor health
    (from `health()`, which the unit service supplies), temperature, disk."""
    def collect() -> dict[str, Any]:
        try:
            queue = buffer.stats()
        except Exception as exc:       # no buffer, or a damaged one: say so in the heartbeat, go on
            queue = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        doc = {"versions": versions, "queue": queue, "uplink": uplink.status(), **system_facts()}
        if health is not None:
            doc.update(health())
        return doc
    return collect


def from_config(section: "UplinkConfig", uplink: Uplink, collect: Callable[[], dict[str, Any]],
                hotlist_path: str | Path | None) -> Heartbeat:
    """Build the heartbeat from the [uplink] table; it gets its own session (it runs in its own thread)."""
    session = requests.Session()
    session.verify = uplink.client.session.verify
    client = SignedClient(uplink.client.base_url, uplink.client.unit_id, uplink.client.key, session,
                          uplink.client.timeout)
    hot = None
    if hotlist_path and section.central_signing_key:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(section.central_signing_key))
        hot = HotListPuller(client, hotlist_path, key)
    return Heartbeat(client, collect, hot, section.heartbeat_interval_s)
