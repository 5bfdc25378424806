"""The access log, its verification and audit reports (auditors and the administrator)."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response

from central import audit, checkpoints, reports
from central.clock import parse_time
from central.routes.deps import actor_for, engine
from central.sessions import Actor

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("", summary="Access-log entries (reading them is itself logged)")
def entries(from_: str | None = Query(None, alias="from"), to: str | None = None, username: str | None = None,
            action: str | None = None, after_id: int = 0, limit: int = Query(1000, ge=1, le=10000),
            actor: Actor = Depends(actor_for("audit.read")), db: sa.Engine = Depends(engine)) -> list[dict[str, Any]]:
    rows = audit.entries(db, start=parse_time(from_) if from_ else None,
                         end=parse_time(to, end_of_day=True) if to else None, username=username, action=action,
                         after_id=after_id, limit=limit)
    with db.begin() as conn:
        audit.append(conn, actor, "audit_read", {"from": from_, "to": to, "username": username, "action": action,
                                                 "after_id": after_id}, result_count=len(rows))
    return rows


@router.get("/verify", summary="Walk the hash chain and check it against the latest signed head; names the "
            "first edited, deleted, re-ordered or forged entry, or a log emptied, cut or rewritten")
def verify(request: Request, _actor: Actor = Depends(actor_for("audit.read"))) -> dict[str, Any]:
    return checkpoints.verify_for_app(request.app.state).as_dict()


@router.get("/report", summary="Audit report for a period: text, csv or json",
            responses={200: {"content": {"application/json": {}, "text/plain": {}, "text/csv": {}}}})
def report(request: Request, from_: str = Query(alias="from"), to: str = Query(), format: str = "json",
           actor: Actor = Depends(actor_for("audit.read")), db: sa.Engine = Depends(engine)) -> Response:
    if format not in reports.FORMATS:
        raise ValueError(f"format: one of {', '.join(reports.FORMATS)}")
    state = request.app.state
    built = reports.build(db, parse_time(from_), parse_time(to, end_of_day=True), actor, state.keys,
                          state.settings.checkpoint_file(), state.settings)
    body = reports.render(built, format)
    media = {"json": "application/json", "csv": "text/csv", "text": "text/plain"}[format]
    return PlainTextResponse(body, media_type=media)
