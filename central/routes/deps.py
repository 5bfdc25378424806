"""Authentication and authorisation for people, applied to every route that is not public.

`UserGate` is ASGI middleware in front of the whole app: it lets through only the public routes
(GET /policy, GET /openapi.json, POST /v1/auth/login, POST /v1/enroll with its one-time token, the
console's login page and static assets) and the unit routes (which check the unit's signature
themselves); any other request needs a valid session or is refused before it reaches a handler (a
path no route knows gets its 404). So a route added later is closed by default. The API takes the
session as a bearer token (401 without one); the console (`central.console`, every path outside
/v1) takes the same session from its cookie and sends a visitor without one to the login page.
`actor_for(permission)` then checks role and training for the route.
"""
from __future__ import annotations

import json
from typing import Any, Callable

import sqlalchemy as sa
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match

from central import access, sessions
from central.config import Settings
from central.console import web
from central.errors import ApiError
from central.keys import CentralKeys
from wire import paths

PUBLIC = {("GET", "/policy"), ("HEAD", "/policy"), ("GET", "/openapi.json"), ("POST", "/v1/auth/login"),
          ("POST", paths.ENROL)}
UNIT_SIGNED = set(paths.SIGNED)

bearer = HTTPBearer(auto_error=False, description="the token from POST /v1/auth/login")


def _token(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def _routed(scope: dict[str, Any]) -> bool:
    """Whether any route of the app matches this path (any method)."""
    app = scope.get("app")
    routes = getattr(getattr(app, "router", None), "routes", None)
    if routes is None:
        return True                     # cannot tell: treat as routed, so the gate applies
    return any(route.matches(scope)[0] != Match.NONE for route in routes)


class UserGate:
    def __init__(self, app, engine: sa.Engine, settings: Settings):
        self.app, self.engine, self.settings = app, engine, settings

    async def _refuse(self, send, status: int, message: str) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
        await send({"type": "http.response.body", "body": json.dumps({"error": message}).encode()})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        key = (scope["method"], scope["path"])
        if key in PUBLIC or key in UNIT_SIGNED or not _routed(scope):
            return await self.app(scope, receive, send)          # no such route: routing answers 404
        if web.is_console_path(scope["path"]):
            return await self._console(scope, receive, send)
        token = _token(scope)
        if token is None:
            return await self._refuse(send, 401, "not logged in: send Authorization: Bearer <token> "
                                                 "from POST /v1/auth/login")
        try:
            actor = await run_in_threadpool(sessions.resolve, self.engine, self.settings, token)
        except ApiError as exc:
            return await self._refuse(send, exc.status, str(exc))
        scope.setdefault("state", {})
        scope["state"]["actor"] = actor
        scope["state"]["token"] = token
        return await self.app(scope, receive, send)


    async def _console(self, scope, receive, send):
        """Cookie session for console pages; without a valid one, to the login page (303)."""
        if web.is_public(scope["method"], scope["path"]):
            return await self.app(scope, receive, send)
        token = web.session_token(scope)
        actor = None
        if token is not None:
            try:
                actor = await run_in_threadpool(sessions.resolve, self.engine, self.settings, token,
                                                scope["path"] not in web.PASSIVE_PATHS)
            except ApiError:
                actor = None
        if actor is None:
            await send({"type": "http.response.start", "status": 303,
                        "headers": web.login_redirect(scope["path"], scope.get("query_string", b"").decode("latin-1"),
                                                      expired=token is not None)})
            return await send({"type": "http.response.body", "body": b""})
        scope.setdefault("state", {})
        scope["state"]["actor"] = actor
        scope["state"]["token"] = token
        return await self.app(scope, receive, send)


def actor_for(permission: str | None) -> Callable[..., sessions.Actor]:
    """Dependency: the logged-in Actor, allowed `permission` (role and training), else 401/403."""
    def dependency(request: Request,
                   _credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> sessions.Actor:
        actor = getattr(request.state, "actor", None)
        if actor is None:
            raise ApiError(401, "not logged in")
        return access.require(actor, permission, engine=request.app.state.engine,
                              what={"method": request.method, "path": request.url.path}) if permission else actor
    return dependency


def engine(request: Request) -> sa.Engine:
    return request.app.state.engine


def settings(request: Request) -> Settings:
    return request.app.state.settings


def keys(request: Request) -> CentralKeys:
    return request.app.state.keys
