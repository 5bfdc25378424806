"""Watch files (the config, the hot list) and call back when one changes, through `watchdog`.

Editors save in different ways (write in place, write-and-rename, delete-and-create), so the watch is
on the parent folder and any event naming the file counts. Bursts of events are folded into one call.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

log = logging.getLogger("unit.reload")


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: "FileWatcher"):
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        for p in (getattr(event, "src_path", ""), getattr(event, "dest_path", "")):
            if p:
                self.watcher._touched(Path(str(p)))


class FileWatcher:
    """Calls `callback(path)` (in a timer thread) a short while after a watched file changes."""

    def __init__(self, settle_s: float = 0.2):
        self.settle_s = settle_s
        self._files: dict[Path, Callable[[Path], None]] = {}
        self._dirs: set[Path] = set()
        self._timers: dict[Path, threading.Timer] = {}
        self._lock = threading.Lock()
        self._observer = Observer()
        self._observer.daemon = True

    def watch(self, path: str | Path, callback: Callable[[Path], None]) -> None:
        p = Path(path).resolve()
        with self._lock:
            self._files[p] = callback
            if p.parent not in self._dirs and p.parent.is_dir():
                self._dirs.add(p.parent)
                self._observer.schedule(_Handler(self), str(p.parent), recursive=False)

    def _touched(self, path: Path) -> None:
        path = path.resolve()
        with self._lock:
            if path not in self._files:
                return
            old = self._timers.get(path)
            if old is not None:
                old.cancel()
            timer = threading.Timer(self.settle_s, self._fire, args=(path,))
            timer.daemon = True
            self._timers[path] = timer
            timer.start()

    def _fire(self, path: Path) -> None:
        with self._lock:
            cb = self._files.get(path)
            self._timers.pop(path, None)
        if cb is None:
            return
        try:
            cb(path)
        except Exception:
            log.exception("reload of %s failed", path)

    def start(self) -> None:
        self._observer.start()

    def stop(self) -> None:
        with self._lock:
            for t in self._timers.values():
                t.cancel()
        self._observer.stop()
        self._observer.join(timeout=5)
