"""The hot list (policy 462.3(c)): list, add, remove, import CSV with per-line errors.

The same `central.hotlist` functions as /v1/hotlist: every entry names its reason, purpose and case;
a new entry is checked against the last `hotlist_retro_days` days of reads (0: off).
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData, UploadFile

from central import audit, hotlist
from central.clock import parse_time
from central.config import Settings
from central.console import web
from central.console.search_pages import purposes
from central.console.web import page_actor, posted, render
from central.errors import ApiError
from central.routes.deps import engine, settings
from central.routes.hotlist import MAX_CSV_BYTES
from central.sessions import Actor

router = APIRouter(route_class=web.ConsoleRoute, include_in_schema=False, dependencies=[Depends(posted)])
FIELDS = ("plate", "reason", "purpose", "case_number", "source", "expires", "note")


def _page(request: Request, actor: Actor, db: sa.Engine, cfg: Settings, status: int = 200, **extra: Any) -> Response:
    show_expired = request.query_params.get("expired") == "1"
    rows = hotlist.list_entries(db, show_expired)
    with db.begin() as conn:
        audit.append(conn, actor, "hotlist_view", {"include_expired": show_expired}, result_count=len(rows))
    return render(request, "hotlist.html", status=status, entries=rows, show_expired=show_expired,
                  reasons=hotlist.CATEGORIES, purposes=purposes(), retro_days=cfg.hotlist_retro_days,
                  can_manage=web.allowed(actor.role, "hotlist.manage"), csv_columns=hotlist.CSV_COLUMNS, **extra)


@router.get("/hotlist", response_class=HTMLResponse)
def hotlist_page(request: Request, actor: Actor = Depends(page_actor("hotlist.read")),
                 db: sa.Engine = Depends(engine), cfg: Settings = Depends(settings)) -> Response:
    added = request.query_params.get("added")
    return _page(request, actor, db, cfg, added=added, retro=request.query_params.get("retro"))


@router.post("/hotlist")
def add(request: Request, form: FormData = Depends(posted), actor: Actor = Depends(page_actor("hotlist.manage")),
        db: sa.Engine = Depends(engine), cfg: Settings = Depends(settings)) -> Response:
    values = {k: str(form.get(k) or "").strip() for k in FIELDS}
    try:
        entry = hotlist.add(db, values["plate"], reason=values["reason"], purpose=values["purpose"],
                            case_number=values["case_number"], source=values["source"], note=values["note"] or None,
                            by=actor, retro_days=cfg.hotlist_retro_days,
                            expires_at=parse_time(values["expires"], end_of_day=True) if values["expires"] else None)
    except (ValueError, ApiError) as exc:
        if isinstance(exc, ApiError) and exc.status != 409:
            raise
        field = "plate" if isinstance(exc, ApiError) else web.field_of(str(exc), FIELDS)
        if field == "_form" and "time" in str(exc):
            field = "expires"
        return _page(request, actor, db, cfg, status=400 if isinstance(exc, ValueError) else 409,
                     errors={field: str(exc)}, form=values)
    return web.redirect("/hotlist", added=entry["pattern"], retro=entry["retro_alerts"] if cfg.hotlist_retro_days else None)


@router.post("/hotlist/{entry_id:int}/remove")
def remove(entry_id: int, actor: Actor = Depends(page_actor("hotlist.manage")), db: sa.Engine = Depends(engine)) -> Response:
    hotlist.remove_id(db, entry_id, actor)
    return web.redirect("/hotlist", removed=entry_id)


@router.post("/hotlist/import")
async def import_csv(request: Request, form: FormData = Depends(posted),
                     actor: Actor = Depends(page_actor("hotlist.manage")), db: sa.Engine = Depends(engine),
                     cfg: Settings = Depends(settings)) -> Response:
    from starlette.concurrency import run_in_threadpool
    upload = form.get("file")
    dry_run = form.get("dry_run") == "1"
    error = None
    if not isinstance(upload, UploadFile) or not upload.filename:
        error = "file: choose a CSV file"
    else:
        data = await upload.read(MAX_CSV_BYTES + 1)
        if len(data) > MAX_CSV_BYTES:
            error = f"file: over {MAX_CSV_BYTES} bytes: split it"
        else:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                error = "file: the CSV must be UTF-8"
    result = None
    if error is None:
        try:
            result = await run_in_threadpool(hotlist.import_csv, db, text, actor, dry_run, cfg.hotlist_retro_days)
        except ValueError as exc:
            error = f"file: {exc}"
    return await run_in_threadpool(lambda: _page(request, actor, db, cfg, status=400 if error else 200,
                                                 errors={"file": error} if error else {}, imported=result))
