"""Legal holds, evidence export and retention runs (policy 462.4)."""
from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from central import evidence, holds, retention
from central.clock import parse_time
from central.config import Settings
from central.keys import CentralKeys
from central.routes.deps import actor_for, engine, keys, settings
from central.search import selection_from
from central.sessions import Actor

router = APIRouter(prefix="/v1", tags=["holds, evidence, retention"])


class Selection(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    plate: str | None = Field(None, description="required: a plate, or a pattern with enough known characters")
    from_: str | None = Field(None, alias="from", description="required: start of the time window")
    to: str | None = Field(None, description="required: end of the time window")
    sites: list[str] = Field(default_factory=list)


class HoldIn(BaseModel):
    case_number: str
    reason: str
    read_ids: list[str] = Field(default_factory=list)
    filter: Selection | None = Field(None, description="hold every read matching this too")


class ReleaseIn(BaseModel):
    reason: str


class RunIn(BaseModel):
    dry_run: bool = False


@router.post("/holds", status_code=201, summary="Place a legal hold (case number, reason, reads)")
def place(body: HoldIn, actor: Actor = Depends(actor_for("holds.place")),
          db: sa.Engine = Depends(engine)) -> dict[str, Any]:
    selection = None
    if body.filter is not None:
        selection = selection_from(body.filter.model_dump(by_alias=True))
    return holds.place(db, actor, body.case_number, body.reason, read_ids=body.read_ids, selection=selection)


@router.get("/holds", summary="Legal holds")
def list_holds(active: bool = False, actor: Actor = Depends(actor_for("holds.read")),
               db: sa.Engine = Depends(engine)) -> list[dict[str, Any]]:
    return holds.list_holds(db, active, counts=holds.sees_data(actor))


@router.get("/holds/{hold_id}", summary="One legal hold")
def get_hold(hold_id: int, actor: Actor = Depends(actor_for("holds.read")),
             db: sa.Engine = Depends(engine)) -> dict[str, Any]:
    return holds.get(db, hold_id, counts=holds.sees_data(actor))


@router.post("/holds/{hold_id}/release", summary="Release a legal hold (who and why are kept)")
def release(hold_id: int, body: ReleaseIn, actor: Actor = Depends(actor_for("holds.release")),
            db: sa.Engine = Depends(engine)) -> dict[str, Any]:
    return holds.release(db, actor, hold_id, body.reason)


@router.post("/holds/{hold_id}/evidence", summary="Evidence bundle of a held case as a zip (signed manifest, "
             "chain of custody)", response_class=Response,
             responses={200: {"content": {"application/zip": {}}}})
def export(hold_id: int, actor: Actor = Depends(actor_for("evidence.export")), db: sa.Engine = Depends(engine),
           central_keys: CentralKeys = Depends(keys)) -> Response:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / f"evidence-hold-{hold_id}"
        done = evidence.export(db, central_keys, actor, hold_id, folder)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for p in sorted(folder.rglob("*")):
                if p.is_file():
                    z.write(p, p.relative_to(Path(tmp)).as_posix())
    name = f"evidence-{done['case_number']}-hold-{hold_id}.zip".replace("/", "_").replace(" ", "_")
    return Response(buf.getvalue(), media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "X-Manifest-SHA256": done["manifest_sha256"]})


@router.post("/retention/run", summary="Purge reads past retention, except held ones")
def run_retention(body: RunIn, actor: Actor = Depends(actor_for("retention.run")), db: sa.Engine = Depends(engine),
                  cfg: Settings = Depends(settings)) -> dict[str, Any]:
    return retention.run(db, cfg, actor, dry_run=body.dry_run)


@router.get("/retention/runs", summary="Past retention runs with their counts")
def runs(from_: str | None = Query(None, alias="from"), to: str | None = None,
         _actor: Actor = Depends(actor_for("retention.read")), db: sa.Engine = Depends(engine)) -> list[dict[str, Any]]:
    return retention.list_runs(db, parse_time(from_) if from_ else None,
                               parse_time(to, end_of_day=True) if to else None)
