"""Hot-list entries for people (policy 462.3(c)); units get theirs signed from GET /v1/hotlist."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from central import audit, hotlist
from central.clock import parse_time
from central.config import Settings
from central.errors import ApiError
from central.purposes import PURPOSES
from central.routes.deps import actor_for, engine, settings
from central.sessions import Actor

router = APIRouter(prefix="/v1/hotlist", tags=["hot list"])
MAX_CSV_BYTES = 2 * 1024 * 1024


class EntryIn(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    plate: str = Field(description="exact or partial: ? one character, * any run; at least 3 known characters")
    reason: str = Field(validation_alias=AliasChoices("reason", "category"),
                        description="why the plate is listed (\"category\" is the same field): one of "
                                    + ", ".join(hotlist.CATEGORIES))
    purpose: str = Field(description="the policy purpose it was entered for: one of " + ", ".join(PURPOSES))
    case_number: str = Field(description="case or incident number; its alerts are viewed and logged under it")
    source: str = Field(description="where the entry came from (e.g. CLETS SVS, NCIC, case report)")
    expires: str | None = Field(None, description="ISO-8601 or YYYY-MM-DD (end of that day)")
    note: str | None = Field(None, description="label units show; defaults to the reason's words")


@router.get("/entries", summary="Hot-list entries (logged)")
def list_entries(include_expired: bool = False, actor: Actor = Depends(actor_for("hotlist.read")),
                 db: sa.Engine = Depends(engine)) -> list[dict[str, Any]]:
    rows = hotlist.list_entries(db, include_expired)
    with db.begin() as conn:
        audit.append(conn, actor, "hotlist_view", {"include_expired": include_expired}, result_count=len(rows))
    return rows


@router.post("/entries", status_code=201, summary="Add an entry (and check the last hotlist_retro_days of reads)",
             responses={409: {"description": "already listed"}})
def add_entry(body: EntryIn, actor: Actor = Depends(actor_for("hotlist.manage")),
              db: sa.Engine = Depends(engine), cfg: Settings = Depends(settings)) -> dict[str, Any]:
    return hotlist.add(db, body.plate, reason=body.reason, purpose=body.purpose, case_number=body.case_number,
                       source=body.source, note=body.note, by=actor, retro_days=cfg.hotlist_retro_days,
                       expires_at=parse_time(body.expires, end_of_day=True) if body.expires else None)


@router.get("/entries/{entry_id}", summary="One entry")
def get_entry(entry_id: int, actor: Actor = Depends(actor_for("hotlist.read")),
              db: sa.Engine = Depends(engine)) -> dict[str, Any]:
    entry = hotlist.get(db, entry_id)
    with db.begin() as conn:
        audit.append(conn, actor, "hotlist_view", {"entry": entry_id}, result_count=1)
    return entry


@router.delete("/entries/{entry_id}", summary="Remove an entry")
def remove_entry(entry_id: int, actor: Actor = Depends(actor_for("hotlist.manage")),
                 db: sa.Engine = Depends(engine)) -> dict[str, bool]:
    hotlist.remove_id(db, entry_id, actor)
    return {"ok": True}


@router.post("/import", summary="Import CSV: plate,reason,purpose,case_number,source[,expires][,note]; "
             "per-line errors",
             openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}})
async def import_csv(request: Request, dry_run: bool = False, actor: Actor = Depends(actor_for("hotlist.manage")),
                     db: sa.Engine = Depends(engine), cfg: Settings = Depends(settings)) -> dict[str, Any]:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_CSV_BYTES:
            raise ApiError(413, f"CSV over {MAX_CSV_BYTES} bytes: split it")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "CSV must be UTF-8") from None
    return await run_in_threadpool(hotlist.import_csv, db, text, actor, dry_run, cfg.hotlist_retro_days)
