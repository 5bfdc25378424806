"""Login, logout and the home page (the policy page is `central.routes.policy`, public)."""
from __future__ import annotations

from urllib.parse import urlsplit

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from central import sessions
from central.config import Settings
from central.console import web
from central.console.web import page_actor, posted, render
from central.errors import ApiError
from central.routes.deps import engine, settings
from central.sessions import Actor

router = APIRouter(route_class=web.ConsoleRoute, include_in_schema=False, dependencies=[Depends(posted)])


def _safe_next(target: str | None) -> str:
    """Only a path on this server (no scheme, no host, no //evil): an open redirect helps phishing."""
    if not target or not target.startswith("/") or target.startswith("//") or urlsplit(target).netloc:
        return "/"
    return target


def _login_page(request: Request, status: int = 200, error: str = "", username: str = "") -> Response:
    token = web.new_login_csrf()
    response = render(request, "login.html", status=status, login_csrf=token, error=error, username=username,
                      next=_safe_next(request.query_params.get("next")),
                      ended=request.query_params.get("ended") == "1")
    response.set_cookie(web.LOGIN_CSRF_COOKIE, token, max_age=3600, path="/login", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    return _login_page(request)


@router.post("/login")
async def login(request: Request, form: FormData = Depends(posted), db: sa.Engine = Depends(engine),
                cfg: Settings = Depends(settings)) -> Response:
    username = str(form.get("username") or "").strip()[:64]
    password = str(form.get("password") or "")[:1024]
    client = request.client.host if request.client else ""
    try:
        token, _expires = await run_in_threadpool(request.app.state.login_guard.login, db, cfg, username,
                                                  password, client)
    except ApiError as exc:            # one message for every refusal: it tells nothing about the account
        page = _login_page(request, exc.status, str(exc), username)
        if "retry_after" in exc.extra:
            page.headers["Retry-After"] = str(exc.extra["retry_after"])
        return page
    response = web.redirect(_safe_next(str(form.get("next") or "/")))
    web.set_session_cookie(response, request, token, cfg.session_ttl_s)
    response.delete_cookie(web.LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, _actor: Actor = Depends(page_actor(None)), db: sa.Engine = Depends(engine)) -> Response:
    sessions.logout(db, request.state.token)
    response = web.redirect("/login", out="1")
    web.clear_session_cookie(response)
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request, actor: Actor = Depends(page_actor(None)), cfg: Settings = Depends(settings)) -> Response:
    return render(request, "home.html", idle_minutes=cfg.session_idle_s // 60, me=sessions.describe(actor))
