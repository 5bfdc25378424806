"""Searching reads and viewing one (policy 462.3, 462.5(b)); every call is an audited access."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from central import access, capture_times, search
from central.purposes import PURPOSES
from central.config import Settings
from central.routes.deps import actor_for, engine, settings
from central.sessions import Actor

router = APIRouter(prefix="/v1", tags=["reads"])
_PURPOSE_HELP = "one of: " + ", ".join(PURPOSES)


class SearchIn(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    purpose: str | None = Field(None, description="required; " + _PURPOSE_HELP)
    case_number: str | None = Field(None, description="required: case or incident number")
    plate: str | None = Field(None, description="exact, or partial with ? (one character) and * (any run), "
                                               "e.g. 7AB?12*; required, except for a crime_scene_canvass "
                                               "with sites and a from..to window of at most 72 hours")
    similar: bool = Field(False, description="also find the reader's usual confusions of a whole plate: "
                                            "0/O/D/Q, 1/I/L/T, 2/Z, 5/S, 8/B, 6/G, or one missing or extra "
                                            "character (recorded in the audit entry)")
    from_: str | None = Field(None, alias="from", description="ISO-8601 with zone, or YYYY-MM-DD")
    to: str | None = Field(None, description="ISO-8601 with zone, or YYYY-MM-DD (whole day)")
    sites: list[str] = Field(default_factory=list)
    lane: str | None = None
    direction: str | None = Field(None, description="in | out | unknown")
    limit: int = Field(50, description=f"1..{search.MAX_LIMIT}")
    cursor: str | None = Field(None, description="next_cursor from the previous page")


class ReadResult(BaseModel):
    read_id: str
    unit_id: str
    site: str
    lane: str
    direction: str
    captured_at: str
    received_at: str | None = Field(None, description="when the store received the read (retention counts "
                                                       "from it)")
    capture_time_flag: str | None = Field(None, description="why the unit's capture time is implausible "
                                                            "against receipt (before 2000, or far from receipt)")
    plate: str
    region: str
    confidence: float
    crop_jpeg_b64: str | None


class SearchOut(BaseModel):
    results: list[ReadResult]
    count: int
    next_cursor: str | None


class ViewIn(BaseModel):
    purpose: str | None = Field(None, description="required; " + _PURPOSE_HELP)
    case_number: str | None = None


@router.post("/search", response_model=SearchOut, summary="Search reads: purpose and case number required",
             responses={400: {"description": "no purpose from the policy's list, no case number, or a bad filter"},
                        403: {"description": "role or training does not allow it"}})
def post_search(body: SearchIn, request: Request, actor: Actor = Depends(actor_for("reads.search")),
                db: sa.Engine = Depends(engine), cfg: Settings = Depends(settings)) -> dict[str, Any]:
    doc = body.model_dump(by_alias=True)
    with access.audited_refusals(db, actor, "reads.search", {"method": "POST", "path": request.url.path}):
        found = search.search(db, actor, search.query_from(doc), timeout_s=cfg.search_timeout_s)
    return capture_times.annotate_results(db, found, cfg)


@router.post("/reads/{read_id}/view", summary="One read in full, with crop and context frame")
def view_read(read_id: str, body: ViewIn, request: Request, actor: Actor = Depends(actor_for("reads.search")),
              db: sa.Engine = Depends(engine), cfg: Settings = Depends(settings)) -> dict[str, Any]:
    with access.audited_refusals(db, actor, "reads.search", {"method": "POST", "path": request.url.path}):
        doc = search.view(db, actor, read_id, body.purpose or "", body.case_number or "")
    return capture_times.annotate(doc, cfg)


@router.get("/purposes", summary="The purposes a search may give (from policy 462)")
def purposes(_actor: Actor = Depends(actor_for(None))) -> list[dict[str, str]]:
    return [{"code": p.code, "section": p.section, "policy_text": p.phrase} for p in PURPOSES.values()]
