"""Search reads and view one (policy 462.3, 462.5(b)): `central.search`, as POST /v1/search runs it.

The search form is a GET form, so a results page is a URL that keeps its place (the filters and the
page's cursor are in it; the back button and a reload give the same page). "Similar" is the
API's `similar`. Nothing is read before the
purpose and case number are given: the form alone is shown until then, and `search.search` refuses
without them, as the API does. Each results page and each read view is one audited access.
"""
from __future__ import annotations

import base64
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from central import access, capture_times, search, unit_health
from central.config import Settings
from central.console import web
from central.console.web import page_actor, posted, render
from central.errors import ApiError
from central.purposes import PURPOSES
from central.routes.deps import engine, settings
from central.sessions import Actor

router = APIRouter(route_class=web.ConsoleRoute, include_in_schema=False, dependencies=[Depends(posted)])
FIELDS = ("plate", "similar", "purpose", "case_number", "from", "to", "site", "lane", "direction", "limit", "cursor", "_form")
PAGE_SIZES = (25, 50, 100, 200)


def purposes() -> list[dict[str, str]]:
    return [{"code": p.code, "section": p.section, "words": p.phrase} for p in PURPOSES.values()]


def _form(request: Request) -> dict[str, str]:
    return {k: request.query_params.get(k, "").strip() for k in FIELDS if k != "_form"}


FIRST = "-"                       # the first page's place in the trail (it has no cursor)


def _trail(form: dict[str, str]) -> list[str]:
    """The cursors of the pages before this one, oldest first (kept in the URL: back and forth work)."""
    return [c for c in form.get("back", "").split(",") if c]


@router.get("/search", response_class=HTMLResponse)
def search_page(request: Request, actor: Actor = Depends(page_actor("reads.search")),
                db: sa.Engine = Depends(engine), cfg: Settings = Depends(settings)) -> Response:
    form = _form(request)
    form["back"] = request.query_params.get("back", "")
    context: dict[str, Any] = {"form": form, "purposes": purposes(), "directions": search.DIRECTIONS,
                               "page_sizes": PAGE_SIZES, "canvass_hours": search.canvass_hours()}
    if request.query_params.get("run") != "1":
        return render(request, "search.html", **context)
    try:
        doc = {"purpose": form["purpose"], "case_number": form["case_number"], "plate": form["plate"],
               "from": web.day_bound(form["from"], "from", cfg.zone),
               "to": web.day_bound(form["to"], "to", cfg.zone, end=True), "site": form["site"], "lane": form["lane"],
               "direction": form["direction"], "limit": form["limit"] or 50, "cursor": form["cursor"],
               "similar": form["similar"]}
        with access.audited_refusals(db, actor, "reads.search", {"method": "GET", "path": request.url.path}):
            page = search.search(db, actor, search.query_from(doc), timeout_s=cfg.search_timeout_s)
        capture_times.annotate_results(db, page, cfg)
    except ValueError as exc:
        return render(request, "search.html", status=400,
                      errors={web.field_of(str(exc), FIELDS): str(exc)}, **context)
    except ApiError as exc:
        if exc.status != 400:
            raise
        return render(request, "search.html", status=400, errors={"_form": str(exc)}, **context)
    trail = _trail(form)
    return render(request, "search.html", page=page, results=page["results"], page_number=len(trail) + 1,
                  next_back=",".join([*trail, form["cursor"] or FIRST]) if page["next_cursor"] else None,
                  prev_cursor=trail[-1] if trail and trail[-1] != FIRST else None, prev_back=",".join(trail[:-1]),
                  **context)


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header, or None if it is not one we can read. Read here
    rather than with Pillow: the central store's install has no imaging library."""
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:        # no length follows these
            i += 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):   # a start-of-frame segment
            height, width = int.from_bytes(data[i + 5:i + 7], "big"), int.from_bytes(data[i + 7:i + 9], "big")
            return (width, height) if width and height else None
        i += 2 + length
    return None


def box_overlay(box: list[float], image: tuple[int, int] | None, frame: tuple[int, int] | None) -> dict[str, float] | None:
    """The plate box in the context image's pixels, or None when the scale is unknown. Boxes are in the
    camera frame's pixels; a unit may send a downscaled context frame, so the frame size the unit
    reports in its heartbeat is needed to place the box."""
    if image is None or frame is None or len(box) != 4:
        return None
    scale = image[0] / frame[0]
    x0, y0, x1, y1 = (float(v) * scale for v in box)
    if x1 <= x0 or y1 <= y0 or x1 > image[0] + 1 or y1 > image[1] + 1:
        return None
    return {"x": x0, "y": y0, "w": x1 - x0, "h": y1 - y0}


@router.get("/reads/{read_id}", response_class=HTMLResponse)
def read_page(read_id: str, request: Request, actor: Actor = Depends(page_actor("reads.search")),
              db: sa.Engine = Depends(engine)) -> Response:
    purpose = request.query_params.get("purpose", "")
    case_number = request.query_params.get("case_number", "")
    back = request.query_params.get("back", "")
    if not purpose or not case_number:
        return render(request, "read_ask.html", read_id=read_id, purposes=purposes(), back=back,
                      form={"purpose": purpose, "case_number": case_number})
    try:
        with access.audited_refusals(db, actor, "reads.search", {"method": "GET", "path": request.url.path}):
            doc = search.view(db, actor, read_id, purpose, case_number)
        capture_times.annotate(doc, request.app.state.settings)
    except ValueError as exc:
        return render(request, "read_ask.html", status=400, read_id=read_id, purposes=purposes(), back=back,
                      form={"purpose": purpose, "case_number": case_number},
                      errors={web.field_of(str(exc), ("purpose", "case_number")): str(exc)})
    context = base64.b64decode(doc["context_jpeg_b64"]) if doc.get("context_jpeg_b64") else None
    size = jpeg_size(context) if context else None
    overlay = box_overlay(doc.get("box") or [], size, unit_health.frame_size(db, doc["unit_id"])) if size else None
    return render(request, "read.html", read=doc, image_size=size, overlay=overlay, purpose=purpose,
                  purpose_words=PURPOSES[purpose].phrase, case_number=case_number, back=back)
