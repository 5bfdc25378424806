"""Units (supervisor, commander, administrator): health from heartbeats, flags, and plots.

`central.unit_health` computes what GET /v1/units returns; the plots are server-side SVG
(`central.console.plots`): reads per hour per site (counts only) and one unit's buffer depth and
temperature over the last days.
"""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from central import unit_health
from central.clock import utcnow
from central.config import Settings
from central.console import web
from central.console.plots import line_chart
from central.console.web import page_actor, posted, render
from central.errors import ApiError
from central.routes.deps import engine, settings
from central.sessions import Actor

router = APIRouter(route_class=web.ConsoleRoute, include_in_schema=False, dependencies=[Depends(posted)])
READS_HOURS = 48
UNIT_DAYS = 3


@router.get("/units", response_class=HTMLResponse)
def units_page(request: Request, _actor: Actor = Depends(page_actor("units.view")),
               db: sa.Engine = Depends(engine), cfg: Settings = Depends(settings)) -> Response:
    now = utcnow()
    per_site = unit_health.reads_per_hour(db, READS_HOURS, now)
    chart = line_chart({site: [(t, float(n)) for t, n in pts] for site, pts in per_site.items()},
                       now - timedelta(hours=READS_HOURS), now, cfg.zone, "Reads per hour per site", "reads/h")
    return render(request, "units.html", units=unit_health.units_health(db, cfg, now), chart=Markup(chart),
                  hours=READS_HOURS, settings=cfg)


@router.get("/units/{unit_id}", response_class=HTMLResponse)
def unit_page(unit_id: str, request: Request, _actor: Actor = Depends(page_actor("units.view")),
              db: sa.Engine = Depends(engine), cfg: Settings = Depends(settings)) -> Response:
    now = utcnow()
    unit = next((u for u in unit_health.units_health(db, cfg, now) if u.unit_id == unit_id), None)
    if unit is None:
        raise ApiError(404, f"no unit {unit_id}")
    depth, temps = unit_health.unit_series(db, unit_id, UNIT_DAYS, now)
    start = now - timedelta(days=UNIT_DAYS)
    return render(request, "unit.html", unit=unit, days=UNIT_DAYS, settings=cfg,
                  depth_chart=Markup(line_chart({"buffer depth": depth}, start, now, cfg.zone, "Buffer depth", "reads")),
                  temp_chart=Markup(line_chart({"temperature": temps}, start, now, cfg.zone, "Temperature", "°C")))
