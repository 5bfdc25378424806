"""`alpr-unit run --config FILE`: the unit service, on a Pi under systemd (`unit.service.serve`)."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from unit import gpio, logs
from unit.commands.common import with_config
from unit.config import UnitConfig
from unit.service import serve
from unit.sources import open_source


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("run", help="run the unit service (on a Pi, under systemd)",
                       description="Run the unit: sensors, camera, recognition, sealed buffer, health.")
    p.add_argument("--config", required=True, help="the unit's TOML config file")
    return p


@with_config
def run(args: argparse.Namespace, cfg: UnitConfig) -> int:
    logs.setup(cfg.log.level, cfg.log.format)
    try:
        logging.getLogger("unit.gpio").info("GPIO: %s", gpio.setup(cfg.gpio))
    except ImportError as exc:                 # the lanes fall back to motion and say so in health
        logging.getLogger("unit.gpio").error("%s", exc)
    try:
        source = open_source(cfg)
    except ValueError as exc:
        print(f"alpr-unit: {exc}", file=sys.stderr)
        return 2
    stop, signalled = threading.Event(), threading.Event()

    def on_signal(*_: object) -> None:
        signalled.set()
        stop.set()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    return serve(cfg, source, stop, signalled)
