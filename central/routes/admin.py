"""Users and training records (administrator)."""
from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from central import training, users
from central.config import Settings
from central.roles import ROLES
from central.routes.deps import actor_for, engine, settings
from central.sessions import Actor

router = APIRouter(prefix="/v1", tags=["users and training"])


class UserIn(BaseModel):
    username: str
    full_name: str
    job_title: str
    agency: str
    role: str = Field(description="one of: " + ", ".join(ROLES))
    password: str


class TrainingIn(BaseModel):
    course: str
    completed: date
    expires: date


@router.get("/users", summary="Users with name, job title, agency, role, status")
def list_users(role: str | None = None, _actor: Actor = Depends(actor_for("users.manage")),
               db: sa.Engine = Depends(engine)) -> list[dict[str, Any]]:
    return users.list_users(db, role)


@router.post("/users", status_code=201, summary="Add a user")
def add_user(body: UserIn, actor: Actor = Depends(actor_for("users.manage")), db: sa.Engine = Depends(engine),
             cfg: Settings = Depends(settings)) -> dict[str, Any]:
    users.add(db, cfg, username=body.username, full_name=body.full_name, job_title=body.job_title,
              agency=body.agency, role=body.role, password=body.password, by=actor)
    return next(u for u in users.list_users(db) if u["username"] == body.username)


@router.post("/users/{username}/disable", summary="Disable a user (ends their sessions)")
def disable(username: str, actor: Actor = Depends(actor_for("users.manage")),
            db: sa.Engine = Depends(engine)) -> dict[str, bool]:
    users.set_status(db, username, "disabled", actor)
    return {"ok": True}


@router.post("/users/{username}/enable", summary="Enable a disabled user")
def enable(username: str, actor: Actor = Depends(actor_for("users.manage")),
           db: sa.Engine = Depends(engine)) -> dict[str, bool]:
    users.set_status(db, username, "active", actor)
    return {"ok": True}


@router.post("/users/{username}/unlock", summary="Clear a lock-out")
def unlock(username: str, actor: Actor = Depends(actor_for("users.manage")),
           db: sa.Engine = Depends(engine)) -> dict[str, bool]:
    users.unlock(db, username, actor)
    return {"ok": True}


@router.get("/training", summary="Training records (all users, or ?username=)")
def list_training(username: str | None = None, _actor: Actor = Depends(actor_for("users.manage")),
                  db: sa.Engine = Depends(engine)) -> list[dict[str, Any]]:
    return training.list_records(db, username)


@router.post("/users/{username}/training", status_code=201, summary="Record completed training")
def record_training(username: str, body: TrainingIn, actor: Actor = Depends(actor_for("users.manage")),
                    db: sa.Engine = Depends(engine)) -> dict[str, Any]:
    training.record(db, username, body.course, body.completed, body.expires, actor)
    return {"ok": True, "records": training.list_records(db, username)}
