"""Unit health for people (supervisor, commander, administrator): what the units page shows."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends

from central import unit_health
from wire.times import iso
from central.config import Settings
from central.routes.deps import actor_for, engine, settings
from central.sessions import Actor

router = APIRouter(prefix="/v1", tags=["units"])


def health_doc(h: unit_health.UnitHealth) -> dict[str, Any]:
    return {"unit_id": h.unit_id, "site": h.site, "status": h.status, "last_heartbeat_at": iso(h.last_heartbeat_at),
            "flags": h.flags, "buffer_depth": h.depth, "oldest_unsent_age_s": h.oldest_unsent_age_s,
            "dropped": h.dropped, "quarantined": h.quarantined, "uplink_state": h.uplink_state,
            "camera": h.part("camera"), "sensors": h.sensors, "temperature_c": h.temperature_c,
            "disk_free_fraction": h.disk_free_fraction, "versions": h.versions}


@router.get("/units", summary="Every unit's health from its heartbeats, with the flags a technician should act on")
def units(_actor: Actor = Depends(actor_for("units.view")), db: sa.Engine = Depends(engine),
          cfg: Settings = Depends(settings)) -> list[dict[str, Any]]:
    return [health_doc(h) for h in unit_health.units_health(db, cfg)]
