"""Login, logout, who am I."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from central import sessions
from central.config import Settings
from central.routes.deps import actor_for, engine, settings
from wire.times import iso

router = APIRouter(prefix="/v1/auth", tags=["auth"])


class LoginIn(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class LoginOut(BaseModel):
    token: str = Field(description="send as Authorization: Bearer <token>")
    expires_at: str
    user: dict[str, Any]


@router.post("/login", response_model=LoginOut, summary="Log in; 401 on any refusal (after N failures from an "
             "address, that address is locked out of the account for M minutes)",
             responses={401: {"description": "refused"},
                        429: {"description": "too many failed logins from this address; see Retry-After"},
                        503: {"description": "too many logins at once; see Retry-After"}})
def login(body: LoginIn, request: Request, db: sa.Engine = Depends(engine),
          cfg: Settings = Depends(settings)) -> LoginOut:
    client = request.client.host if request.client else ""
    token, expires = request.app.state.login_guard.login(db, cfg, body.username, body.password, client)
    actor = sessions.resolve(db, cfg, token)
    return LoginOut(token=token, expires_at=iso(expires), user=sessions.describe(actor))


@router.post("/logout", summary="End this session")
def logout(request: Request, _actor: sessions.Actor = Depends(actor_for(None)),
           db: sa.Engine = Depends(engine)) -> dict[str, bool]:
    sessions.logout(db, request.state.token)
    return {"ok": True}


@router.get("/me", summary="The logged-in user, role and training status")
def me(actor: sessions.Actor = Depends(actor_for(None))) -> dict[str, Any]:
    return sessions.describe(actor)
