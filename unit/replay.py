"""A clip or a folder of stills through the real pipeline (`alpr-unit replay SOURCE --config FILE`).

Runs anywhere: pins come from gpiozero's MockFactory and the replay drives them at the recorded edge
times, so the sensor code, the bursts, recognition, voting, sealing and the buffer are the ones a unit
runs. Times follow the recording (a manual clock), and nothing is dropped for backlog, so a replay gives
the same reads every time. Reads go sealed into the config's buffer (or `--buffer`); nothing is sent
to a central store (the HIL harness, `python -m hil run`, does that). Clips are read in the format of
`unit.clips` (docs/hil.md), older clips and folders of stills as before.
"""
from __future__ import annotations

import time
from typing import Any

from unit.config import UnitConfig
from unit.service import Unit
from unit.sources.frames import ManualClock
from unit.sources.replay import ReplaySource, stills_lane


def replay(cfg: UnitConfig, source: str, realtime: bool = False, timeout: float = 3600.0,
           recogniser_factory: Any = None) -> tuple[Unit, list[dict[str, Any]]]:
    """Replay `source` through a Unit built from `cfg`; returns the (stopped) unit and one dict per read."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    previous = Device.pin_factory
    Device.pin_factory = MockFactory()
    clock = ManualClock(time.time())
    # stills are separate vehicles: space them beyond the dedup window so none is taken for a repeat
    src = ReplaySource(source, cfg.camera, stills_lane(cfg.lanes), clock=clock, realtime=realtime,
                       gap_s=cfg.dedup.window_s + 1.0)
    unit = Unit(cfg, src, clock=clock, live=False, recogniser_factory=recogniser_factory, env={})
    out: list[dict[str, Any]] = []
    unit.stage.listeners.append(lambda read, info: out.append({"read": read, **info}))
    try:
        unit.start()
        unit.wait_ended(timeout)
    finally:
        unit.stop()
        Device.pin_factory.reset()
        Device.pin_factory = previous
    return unit, out
