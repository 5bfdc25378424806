"""Audit (auditors and the administrator): the access log with filters, the chain's verification,
and reports to download. The same functions as /v1/audit: reading the log is itself logged.
"""
from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from central import audit, checkpoints, reports
from central.clock import parse_time
from central.console import web
from central.console.web import page_actor, posted, render
from central.routes.deps import engine
from central.sessions import Actor

router = APIRouter(route_class=web.ConsoleRoute, include_in_schema=False, dependencies=[Depends(posted)])
PAGE = 100
FIELDS = ("from", "to", "username", "action", "after")


@router.get("/audit", response_class=HTMLResponse)
def log_page(request: Request, actor: Actor = Depends(page_actor("audit.read")),
             db: sa.Engine = Depends(engine)) -> Response:
    form = {k: request.query_params.get(k, "").strip() for k in FIELDS}
    after = int(form["after"]) if form["after"].isdigit() else 0
    try:
        zone = request.app.state.settings.zone
        start = parse_time(web.day_bound(form["from"], "from", zone)) if form["from"] else None
        end = parse_time(web.day_bound(form["to"], "to", zone, end=True)) if form["to"] else None
    except ValueError as exc:
        return render(request, "audit.html", status=400, form=form, rows=[], errors={web.field_of(str(exc), FIELDS): str(exc)},
                      actions=audit.ACCESS_ACTIONS)
    rows = audit.entries(db, start=start, end=end, username=form["username"] or None, action=form["action"] or None,
                         after_id=after, limit=PAGE + 1)
    page, more = rows[:PAGE], len(rows) > PAGE
    with db.begin() as conn:
        audit.append(conn, actor, "audit_read", {"from": form["from"] or None, "to": form["to"] or None,
                                                 "username": form["username"] or None,
                                                 "action": form["action"] or None, "after_id": after},
                     result_count=len(page))
    today = date.today()
    return render(request, "audit.html", form=form, rows=page, next_after=page[-1]["id"] if more and page else None,
                  actions=(*audit.ACCESS_ACTIONS, "refused"), report_from=str(today - timedelta(days=30)), report_to=str(today))


@router.get("/audit/verify", response_class=HTMLResponse)
def verify_page(request: Request, _actor: Actor = Depends(page_actor("audit.read")),
                db: sa.Engine = Depends(engine)) -> Response:
    return render(request, "audit_verify.html", verdict=checkpoints.verify_for_app(request.app.state).as_dict())


@router.get("/audit/report")
def report(request: Request, actor: Actor = Depends(page_actor("audit.read")), db: sa.Engine = Depends(engine)) -> Response:
    fmt = request.query_params.get("format", "text")
    if fmt not in ("text", "csv"):
        raise ValueError("format: text or csv")
    zone = request.app.state.settings.zone
    start = parse_time(web.day_bound(request.query_params.get("from", ""), "from", zone))
    end = parse_time(web.day_bound(request.query_params.get("to", ""), "to", zone, end=True))
    state = request.app.state
    body = reports.render(reports.build(db, start, end, actor, state.keys, state.settings.checkpoint_file(),
                                               state.settings), fmt)
    name = f"alpr-audit-{start.date()}-{end.date()}.{'txt' if fmt == 'text' else 'csv'}"
    return PlainTextResponse(body, media_type="text/csv" if fmt == "csv" else "text/plain",
                             headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})
