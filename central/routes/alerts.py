"""Hot-list alerts and their CLETS verification (policy 462.3(f))."""
from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from central import alerts
from central.clock import parse_time
from central.routes.deps import actor_for, engine
from central.sessions import Actor

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])


class VerificationIn(BaseModel):
    outcome: Literal["confirmed", "not_confirmed"] = Field(description="not_confirmed rejects the alert")
    note: str = Field(description="what the CLETS check said")


@router.get("", summary="Alerts, newest first, each with unit, lane, hot-list entry and crop (an audited alert "
            "view, logged under the entries' purposes and cases)")
def list_alerts(status: str | None = None, from_: str | None = Query(None, alias="from"), to: str | None = None, limit: int = 100,
                before_id: int | None = None, since_id: int | None = Query(None, description="only alerts newer than this id"),
                actor: Actor = Depends(actor_for("alerts.view")),
                db: sa.Engine = Depends(engine)) -> list[dict[str, Any]]:
    return alerts.list_alerts(db, actor, status=status, start=parse_time(from_) if from_ else None,
                              end=parse_time(to, end_of_day=True) if to else None, limit=limit, after_id=before_id,
                              since_id=since_id)


@router.get("/{alert_id}", summary="One alert with crop and context image (an audited alert view)")
def get_alert(alert_id: int, actor: Actor = Depends(actor_for("alerts.view")),
              db: sa.Engine = Depends(engine)) -> dict[str, Any]:
    return alerts.get(db, actor, alert_id)


@router.post("/{alert_id}/verification", summary="Record the CLETS check: confirmed or not, with a note (once)",
             responses={409: {"description": "already recorded"}})
def verify(alert_id: int, body: VerificationIn, actor: Actor = Depends(actor_for("alerts.verify")),
           db: sa.Engine = Depends(engine)) -> dict[str, Any]:
    return alerts.verify(db, actor, alert_id, body.outcome, body.note)
