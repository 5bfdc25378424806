"""Live alerts (policy 462.3(f)): the page, its Server-Sent Events stream, confirm and reject.

The page lists the latest alerts through `central.alerts.list_alerts`, the function GET /v1/alerts
runs (so each showing is an audited alert view under the entries' purposes and cases). The stream
then looks every POLL_S at the newest alert number (`alerts.latest_id`, which reads no alert) and,
when there is something new, fetches it with `list_alerts(since_id=...)`, again audited, and pushes
each alert as the same HTML the page shows. EventSource reconnects by itself and sends the last id
it saw (Last-Event-ID), so nothing is missed across a reconnect. Every RECHECK_S the stream resolves
the session again without counting as activity: a logout, a disabled user, lapsed training or an
idle or expired session ends it, and the page then reloads into the login page.
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any, AsyncIterator

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from central import access, alerts, sessions, unit_health
from central.config import Settings
from central.console import web
from central.console.web import page_actor, posted, render
from central.errors import ApiError
from central.routes.deps import engine, settings
from central.sessions import Actor

router = APIRouter(route_class=web.ConsoleRoute, include_in_schema=False, dependencies=[Depends(posted)])
PAGE = 25                        # the newest first; older ones a page at a time
POLL_S = 0.25                    # one max(id) query per open page per poll: cheap
RECHECK_S = 10.0
KEEPALIVE_S = 15.0
STREAM_MAX_S = 300.0             # a stream ends after this and the browser reconnects (fresh session check)


def _context(request: Request, db: sa.Engine, cfg: Settings) -> dict[str, Any]:
    return {"clets": alerts.clets_instruction(cfg.policy_file), "notice": alerts.NOTICE,
            "maintenance": unit_health.flagged(db, cfg)}


@router.get("/alerts", response_class=HTMLResponse)
def alerts_page(request: Request, actor: Actor = Depends(page_actor("alerts.view")),
                db: sa.Engine = Depends(engine), cfg: Settings = Depends(settings)) -> Response:
    status = request.query_params.get("status") or None
    before = request.query_params.get("before")
    before_id = int(before) if before and before.isdigit() else None
    rows = alerts.list_alerts(db, actor, status=status, limit=PAGE, after_id=before_id)
    live = before_id is None and status is None
    latest = max((a["id"] for a in rows), default=0) if live else 0
    return render(request, "alerts.html", alerts=rows, live=live, latest=latest, shown=status,
                  older=rows[-1]["id"] if len(rows) == PAGE else None, statuses=alerts.STATUSES,
                  **_context(request, db, cfg))


@router.get("/alerts/{alert_id:int}", response_class=HTMLResponse)
def alert_page(alert_id: int, request: Request, actor: Actor = Depends(page_actor("alerts.view")),
               db: sa.Engine = Depends(engine), cfg: Settings = Depends(settings)) -> Response:
    return render(request, "alert.html", alert=alerts.get(db, actor, alert_id), **_context(request, db, cfg))


@router.post("/alerts/{alert_id:int}/verification")
def verify(alert_id: int, request: Request, form: FormData = Depends(posted),
           actor: Actor = Depends(page_actor("alerts.verify")), db: sa.Engine = Depends(engine),
           cfg: Settings = Depends(settings)) -> Response:
    outcome = {"confirm": "confirmed", "reject": "not_confirmed"}.get(str(form.get("outcome")), "")
    try:
        alerts.verify(db, actor, alert_id, outcome, str(form.get("note") or ""))
    except ValueError as exc:
        doc = alerts.get(db, actor, alert_id)
        return render(request, "alert.html", status=400, alert=doc, errors={"note": str(exc)},
                      form={"note": str(form.get("note") or "")}, **_context(request, db, cfg))
    return web.redirect(f"/alerts/{alert_id}", done=outcome)


def _event(alert: dict[str, Any], html: str) -> str:
    data = json.dumps({"id": alert["id"], "plate": alert["plate"], "html": html})
    return f"id: {alert['id']}\nevent: alert\ndata: {data}\n\n"


def _still_allowed(db: sa.Engine, cfg: Settings, token: str) -> Actor | None:
    try:
        return access.require(sessions.resolve(db, cfg, token, touch=False), "alerts.view")
    except ApiError:
        return None


@router.get("/alerts/stream")
async def stream(request: Request, actor: Actor = Depends(page_actor("alerts.view")),
                 db: sa.Engine = Depends(engine), cfg: Settings = Depends(settings)) -> Response:
    last = request.headers.get("last-event-id") or request.query_params.get("since") or ""
    since = int(last) if last.isdigit() else await run_in_threadpool(alerts.latest_id, db)
    token = request.state.token
    card = web.templates.get_template("_alert_card.html")
    base = {"csrf": web.csrf_for(token), "when": lambda v, seconds=True: web.when(v, cfg.zone, seconds)}

    async def events() -> AsyncIterator[str]:
        nonlocal since, actor
        started = checked = quiet = time.monotonic()
        yield "retry: 1000\n: connected\n\n"
        while True:                          # ends when the browser goes (the task is cancelled) or below
            now = time.monotonic()
            if now - started > STREAM_MAX_S:
                return
            if now - checked > RECHECK_S:
                checked = now
                again = await run_in_threadpool(_still_allowed, db, cfg, token)
                if again is None:
                    yield "event: ended\ndata: {}\n\n"
                    return
                actor = again
            if await run_in_threadpool(alerts.latest_id, db) > since:
                fresh = await run_in_threadpool(lambda: alerts.list_alerts(db, actor, since_id=since, limit=alerts.MAX_LIMIT))
                for alert in reversed(fresh):                     # oldest first: the page prepends
                    yield _event(alert, card.render(alert=alert, **base))
                    since = max(since, alert["id"])
                quiet = now
            elif now - quiet > KEEPALIVE_S:
                quiet = now
                yield ": idle\n\n"
            await asyncio.sleep(POLL_S)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
