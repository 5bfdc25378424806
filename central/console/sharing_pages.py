"""Sharing with other agencies (policy 462.7): record a written request, the commander's inbox,
decide, release once. The same `central.sharing` functions as /v1/sharing: the person who recorded a
request can neither decide nor release it; release shows exactly the reads that leave, once.
"""
from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from central import access, sharing
from central.console import web
from central.console.web import page_actor, posted, render
from central.errors import ApiError
from central.routes.deps import engine
from central.sessions import Actor

router = APIRouter(route_class=web.ConsoleRoute, include_in_schema=False, dependencies=[Depends(posted)])
FIELDS = ("agency_id", "requester_name", "purpose", "case_number", "plate", "from", "to", "site")


def _page(request: Request, actor: Actor, db: sa.Engine, status: int = 200, **extra: Any) -> Response:
    can_read = web.allowed(actor.role, "sharing.read")
    requests_ = sharing.list_requests(db) if can_read else []
    return render(request, "sharing.html", status=status, agencies=sharing.list_agencies(db), requests=requests_,
                  inbox=[r for r in requests_ if r["status"] == "pending"], can_read=can_read,
                  can_decide=web.allowed(actor.role, "sharing.decide"),
                  can_release=web.allowed(actor.role, "sharing.release"),
                  can_record=web.allowed(actor.role, "sharing.request"), **extra)


@router.get("/sharing", response_class=HTMLResponse)
def sharing_page(request: Request, actor: Actor = Depends(page_actor(("sharing.request", "sharing.read"))),
                 db: sa.Engine = Depends(engine)) -> Response:
    return _page(request, actor, db)


@router.post("/sharing")
def record(request: Request, form: FormData = Depends(posted), actor: Actor = Depends(page_actor("sharing.request")),
           db: sa.Engine = Depends(engine)) -> Response:
    values = {k: str(form.get(k) or "").strip() for k in FIELDS}
    try:
        agency_id = int(values["agency_id"]) if values["agency_id"].isdigit() else None
        if agency_id is None:
            raise ValueError("agency_id: choose the agency")
        zone = request.app.state.settings.zone
        query = {"plate": values["plate"] or None, "from": web.day_bound(values["from"], "from", zone) or None,
                 "to": web.day_bound(values["to"], "to", zone, end=True) or None,
                 "sites": [values["site"]] if values["site"] else []}
        doc = sharing.record_request(db, actor, agency_id, values["requester_name"], values["purpose"], query,
                                     values["case_number"] or None)
    except ValueError as exc:
        field = web.field_of(str(exc), FIELDS + ("filter",))
        return _page(request, actor, db, status=400, errors={"plate" if field == "filter" else field: str(exc)},
                     form=values)
    return render(request, "sharing_recorded.html", request_doc=doc)


@router.get("/sharing/{request_id:int}", response_class=HTMLResponse)
def request_page(request_id: int, request: Request, actor: Actor = Depends(page_actor("sharing.read")),
                 db: sa.Engine = Depends(engine)) -> Response:
    doc = sharing.get_request(db, request_id)
    return render(request, "sharing_request.html", r=doc, mine=doc["recorded_by"] == actor.username,
                  can_decide=web.allowed(actor.role, "sharing.decide"),
                  can_release=web.allowed(actor.role, "sharing.release"))


@router.post("/sharing/{request_id:int}/decision")
def decide(request_id: int, request: Request, form: FormData = Depends(posted),
           actor: Actor = Depends(page_actor("sharing.decide")), db: sa.Engine = Depends(engine)) -> Response:
    approve = form.get("decision") == "approve"
    try:
        with access.audited_refusals(db, actor, "sharing.decide", {"method": "POST", "path": request.url.path}):
            sharing.decide(db, actor, request_id, approve, str(form.get("reason") or ""))
    except ValueError as exc:
        doc = sharing.get_request(db, request_id)
        return render(request, "sharing_request.html", status=400, r=doc, mine=doc["recorded_by"] == actor.username,
                      can_decide=True, can_release=web.allowed(actor.role, "sharing.release"),
                      errors={"reason": str(exc)})
    return web.redirect(f"/sharing/{request_id}")


@router.post("/sharing/{request_id:int}/release")
def release(request_id: int, request: Request, form: FormData = Depends(posted),
            actor: Actor = Depends(page_actor("sharing.release")), db: sa.Engine = Depends(engine)) -> Response:
    with access.audited_refusals(db, actor, "sharing.release", {"method": "POST", "path": request.url.path}):
        done = sharing.release(db, actor, request_id)
    if form.get("as") == "json":
        body = json.dumps(done, indent=2)
        return Response(body, media_type="application/json", headers={
            "Content-Disposition": f'attachment; filename="release-request-{request_id}.json"', "Cache-Control": "no-store"})
    return render(request, "sharing_released.html", r=done["request"], reads=done["reads"])


@router.post("/sharing/agencies")
def add_agency(request: Request, form: FormData = Depends(posted), actor: Actor = Depends(page_actor("agencies.manage")),
               db: sa.Engine = Depends(engine)) -> Response:
    from datetime import date
    values = {k: str(form.get(k) or "").strip() for k in ("name", "kind", "agreement_signed_on", "agreement_expires_on")}
    try:
        signed = date.fromisoformat(values["agreement_signed_on"]) if values["agreement_signed_on"] else None
        expires = date.fromisoformat(values["agreement_expires_on"]) if values["agreement_expires_on"] else None
        sharing.add_agency(db, actor, values["name"], values["kind"], form.get("california_public") == "1", signed, expires)
    except (ValueError, ApiError) as exc:
        if isinstance(exc, ApiError) and exc.status != 409:
            raise
        return _page(request, actor, db, status=400, agency_errors={"name": str(exc)}, agency_form=values)
    return web.redirect("/sharing")
