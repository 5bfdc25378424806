"""Administration (the ALPR administrator): users, roles, training records, retention settings and
runs, legal holds. The same functions as the /v1 admin routes; none of these pages shows read data
(holds show counts). A training record that has already expired is refused at entry unless the
administrator ticks that it is being recorded for the history.
"""
from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from central import holds, retention, training, users
from central.config import Settings
from central.console import web
from central.console.web import page_actor, posted, render
from central.errors import ApiError
from central.roles import PERMISSIONS, ROLES, TRAINED
from central.routes.deps import engine, settings
from central.search import selection_from
from central.sessions import Actor

router = APIRouter(route_class=web.ConsoleRoute, include_in_schema=False, dependencies=[Depends(posted)])
USER_FIELDS = ("username", "full_name", "job_title", "agency", "role", "password")
TRAINING_FIELDS = ("username", "course", "completed", "expires")


def _users_page(request: Request, db: sa.Engine, status: int = 200, **extra: Any) -> Response:
    return render(request, "admin_users.html", status=status, users=users.list_users(db),
                  records=training.list_records(db), roles=ROLES, **extra)


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request, _actor: Actor = Depends(page_actor("users.manage")),
               db: sa.Engine = Depends(engine)) -> Response:
    return _users_page(request, db, done=request.query_params.get("done"))


@router.post("/admin/users")
def add_user(request: Request, form: FormData = Depends(posted), actor: Actor = Depends(page_actor("users.manage")),
             db: sa.Engine = Depends(engine), cfg: Settings = Depends(settings)) -> Response:
    values = {k: str(form.get(k) or "").strip() for k in USER_FIELDS}
    values["password"] = str(form.get("password") or "")
    try:
        users.add(db, cfg, by=actor, **values)
    except (ValueError, ApiError) as exc:
        if isinstance(exc, ApiError) and exc.status != 409:
            raise
        field = "username" if isinstance(exc, ApiError) else web.field_of(str(exc), USER_FIELDS)
        return _users_page(request, db, 400, errors={field: str(exc)}, form={**values, "password": ""})
    return web.redirect("/admin/users", done=f"added {values['username']}")


@router.post("/admin/users/{username}/{action}")
def user_action(username: str, action: str, actor: Actor = Depends(page_actor("users.manage")),
                db: sa.Engine = Depends(engine)) -> Response:
    if action == "disable":
        users.set_status(db, username, "disabled", actor)
    elif action == "enable":
        users.set_status(db, username, "active", actor)
    elif action == "unlock":
        users.unlock(db, username, actor)
    else:
        raise ApiError(404, f"no action {action}")
    return web.redirect("/admin/users", done=f"{action}d {username}".replace("ed ", "ed ", 1))


@router.post("/admin/training")
def add_training(request: Request, form: FormData = Depends(posted), actor: Actor = Depends(page_actor("users.manage")),
                 db: sa.Engine = Depends(engine)) -> Response:
    values = {k: str(form.get(k) or "").strip() for k in TRAINING_FIELDS}
    errors: dict[str, str] = {}
    try:
        completed = date.fromisoformat(values["completed"])
    except ValueError:
        errors["completed"] = "completed: a date, YYYY-MM-DD"
    try:
        expires = date.fromisoformat(values["expires"])
    except ValueError:
        errors["expires"] = "expires: a date, YYYY-MM-DD"
    if not errors:
        try:
            training.record(db, values["username"], values["course"], completed, expires, actor)
        except (ValueError, ApiError) as exc:
            if isinstance(exc, ApiError) and exc.status != 404:
                raise
            errors[web.field_of(str(exc), TRAINING_FIELDS) if isinstance(exc, ValueError) else "username"] = str(exc)
    if errors:
        return _users_page(request, db, 400, training_errors=errors, training_form=values)
    return web.redirect("/admin/users", done=f"training recorded for {values['username']}")


@router.get("/admin/roles", response_class=HTMLResponse)
def roles_page(request: Request, _actor: Actor = Depends(page_actor("users.manage"))) -> Response:
    return render(request, "admin_roles.html", roles=ROLES, permissions=PERMISSIONS, trained=TRAINED)


@router.get("/admin/retention", response_class=HTMLResponse)
def retention_page(request: Request, _actor: Actor = Depends(page_actor("retention.read")),
                   db: sa.Engine = Depends(engine), cfg: Settings = Depends(settings)) -> Response:
    return render(request, "admin_retention.html", settings=cfg, runs=retention.list_runs(db), result=None)


@router.post("/admin/retention/run")
def run_retention(request: Request, form: FormData = Depends(posted), actor: Actor = Depends(page_actor("retention.run")),
                  db: sa.Engine = Depends(engine), cfg: Settings = Depends(settings)) -> Response:
    result = retention.run(db, cfg, actor, dry_run=form.get("dry_run") == "1")
    return render(request, "admin_retention.html", settings=cfg, runs=retention.list_runs(db), result=result)


@router.get("/admin/holds", response_class=HTMLResponse)
def holds_page(request: Request, actor: Actor = Depends(page_actor("holds.read")),
               db: sa.Engine = Depends(engine)) -> Response:
    return render(request, "admin_holds.html", holds=holds.list_holds(db, counts=holds.sees_data(actor)),
                  can_place=web.allowed(actor.role, "holds.place"), can_release=web.allowed(actor.role, "holds.release"))


@router.post("/admin/holds")
def place_hold(request: Request, form: FormData = Depends(posted), actor: Actor = Depends(page_actor("holds.place")),
               db: sa.Engine = Depends(engine)) -> Response:
    values = {k: str(form.get(k) or "").strip() for k in ("case_number", "reason", "plate", "from", "to", "site")}
    try:
        zone = request.app.state.settings.zone
        selection = selection_from({"plate": values["plate"], "from": web.day_bound(values["from"], "from", zone),
                                    "to": web.day_bound(values["to"], "to", zone, end=True),
                                    "sites": [values["site"]] if values["site"] else []})
        holds.place(db, actor, values["case_number"], values["reason"], selection=selection)
    except ValueError as exc:
        field = web.field_of(str(exc), ("case_number", "reason", "plate", "from", "to", "site", "filter"))
        return render(request, "admin_holds.html", status=400, holds=holds.list_holds(db, counts=holds.sees_data(actor)),
                      can_place=True,
                      can_release=web.allowed(actor.role, "holds.release"),
                      errors={"plate" if field == "filter" else field: str(exc)}, form=values)
    return web.redirect("/admin/holds")


@router.post("/admin/holds/{hold_id:int}/release")
def release_hold(hold_id: int, form: FormData = Depends(posted), actor: Actor = Depends(page_actor("holds.release")),
                 db: sa.Engine = Depends(engine)) -> Response:
    holds.release(db, actor, hold_id, str(form.get("reason") or ""))
    return web.redirect("/admin/holds")
