"""What every console page shares: the cookie session, CSRF, templates, times, errors.

The console is the API's functions behind HTML forms: a page handler names the permission it needs
(`page_actor`, which is `central.access.require`, the API's own gate) and calls the same module
function the JSON route calls, so role, training, purpose and case rules and audit entries are the
API's. The session is the API's too: `central.sessions.login` makes the token, which travels in an
HttpOnly, SameSite=Strict cookie (Secure under TLS) instead of an Authorization header, and
`central.routes.deps.UserGate` resolves it with the same idle and absolute expiry.

CSRF: every POST to the console carries a `csrf` form field equal to an HMAC of the session token,
checked by the router-wide dependency `posted` before any handler runs, so a form cannot forget it.
The login form, which has no session yet, uses a double-submit cookie instead.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlencode

from fastapi import Request
from markupsafe import Markup, escape
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from central import access
from wire.times import aware, iso
from central.config import Settings
from central.errors import ApiError
from central.roles import ROLES, allowed
from central.sessions import Actor

HERE = Path(__file__).parent
SESSION_COOKIE = "alpr_session"
LOGIN_CSRF_COOKIE = "alpr_login_csrf"
PUBLIC_PATHS = {"/login", "/policy"}
PASSIVE_PATHS = {"/alerts/stream"}        # a live page polling is not the user being active (idle expiry)
STATIC_PREFIX = "/static/"

templates = Jinja2Templates(directory=str(HERE / "templates"))
# pages may show read data: never cached; only this server's own script, styles and inline images;
# never framed; URLs (which carry case numbers) are not sent elsewhere
PAGE_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
                "Referrer-Policy": "same-origin",
                "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; script-src 'self'; "
                                           "style-src 'self'; object-src 'none'; base-uri 'none'; "
                                           "frame-ancestors 'none'; form-action 'self'"}

# (label, path, permission) in the order the navigation shows them
NAV = [("Search", "/search", "reads.search"), ("Alerts", "/alerts", "alerts.view"),
       ("Hot list", "/hotlist", "hotlist.read"), ("Units", "/units", "units.view"),
       ("Sharing", "/sharing", ("sharing.request", "sharing.read")), ("Legal holds", "/admin/holds", "holds.read"),
       ("Audit", "/audit", "audit.read"), ("Retention", "/admin/retention", "retention.read"),
       ("Users", "/admin/users", "users.manage")]


def is_console_path(path: str) -> bool:
    """Console pages and assets; everything under /v1 and the OpenAPI document are the API's."""
    return not (path.startswith("/v1/") or path == "/v1" or path == "/openapi.json")


def is_public(method: str, path: str) -> bool:
    return path in PUBLIC_PATHS or (path.startswith(STATIC_PREFIX) and method in ("GET", "HEAD"))


def session_token(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, _, val = part.strip().partition("=")
                if key == SESSION_COOKIE and val:
                    return val
    return None


def login_redirect(path: str, query: str, expired: bool) -> list[tuple[bytes, bytes]]:
    """Headers of the 303 to the login page, keeping where the visitor was going."""
    target = path + (f"?{query}" if query else "")
    params = {"next": target} if target not in ("/", "/login") else {}
    if expired:
        params["ended"] = "1"
    location = "/login" + ("?" + urlencode(params) if params else "")
    headers = [(b"location", location.encode("latin-1")), (b"cache-control", b"no-store")]
    if expired:
        headers.append((b"set-cookie", f"{SESSION_COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict".encode()))
    return headers


def set_session_cookie(response: Response, request: Request, token: str, max_age: int) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age, path="/", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")


def csrf_for(token: str) -> str:
    """The session's CSRF token: only the holder of the (HttpOnly) session token can compute it."""
    return hmac.new(token.encode("utf-8"), b"alpr-console-csrf", hashlib.sha256).hexdigest()


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


async def posted(request: Request) -> FormData | None:
    """Router-wide: a POST's form, after its CSRF token is checked (403 without it). None for GET."""
    if request.method in ("GET", "HEAD"):
        return None
    form = await request.form()
    sent = str(form.get("csrf") or "")
    if request.url.path == "/login":
        expected = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    else:
        token = getattr(request.state, "token", None)
        expected = csrf_for(token) if token else ""
    if not expected or not sent or not hmac.compare_digest(sent, expected):
        raise ApiError(403, "refused: the form's security token is missing or out of date. Reload the page and "
                            "try again")
    return form


def page_actor(permission: str | tuple[str, ...] | None) -> Callable[[Request], Actor]:
    """Dependency: the logged-in Actor (set by the gate from the cookie), allowed `permission` (or, for
    a tuple, the first of them the role has; refused with the first's message if none)."""
    def dependency(request: Request) -> Actor:
        actor = getattr(request.state, "actor", None)
        if actor is None:
            raise ApiError(401, "not logged in")
        if permission is None:
            return actor
        names = (permission,) if isinstance(permission, str) else permission
        return access.require(actor, next((n for n in names if allowed(actor.role, n)), names[0]),
                              engine=request.app.state.engine, what={"method": request.method, "path": request.url.path})
    return dependency


def when(value: datetime | str | None, zone: Any, seconds: bool = True) -> str:
    """A time as the store's zone shows it, marked up so that hovering shows UTC."""
    if value is None or value == "":
        return Markup("&ndash;")
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    value = aware(value)
    local = value.astimezone(zone)
    shown = local.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M") + " " + (local.tzname() or "")
    utc = iso(value)
    return Markup(f'<time datetime="{escape(utc)}" title="{escape(utc)} UTC">{escape(shown)}</time>')


def day_bound(text: str, name: str, zone: Any, end: bool = False) -> str:
    """A date from a form (YYYY-MM-DD, as date inputs send it) as the start, or the end, of that day in
    the store's time zone, in ISO-8601 with its offset; anything else is passed on as given."""
    text = (text or "").strip()
    if len(text) != 10:
        return text
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name}: a date, YYYY-MM-DD") from None
    moment = datetime.combine(day + timedelta(days=1) if end else day, dtime.min, zone)
    return (moment - timedelta(milliseconds=1) if end else moment).isoformat(timespec="milliseconds")


def nav_for(actor: Actor | None) -> list[tuple[str, str]]:
    if actor is None:
        return []
    return [(label, path) for label, path, perm in NAV
            if any(allowed(actor.role, p) for p in ((perm,) if isinstance(perm, str) else perm))]


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    actor: Actor | None = getattr(request.state, "actor", None)
    settings: Settings = request.app.state.settings
    token = getattr(request.state, "token", None)
    base = {"actor": actor, "nav": nav_for(actor), "csrf": csrf_for(token) if token else "",
            "role_title": ROLES.get(actor.role, actor.role) if actor else "", "zone": settings.zone,
            "zone_name": settings.time_zone, "path": request.url.path, "errors": {}, "form": {},
            "when": lambda v, seconds=True: when(v, settings.zone, seconds), "query": _query_helper(request)}
    response = templates.TemplateResponse(request, name, {**base, **context}, status_code=status)
    response.headers.update(PAGE_HEADERS)
    return response


def _query_helper(request: Request) -> Callable[..., str]:
    """`query(cursor=x)`: this page's URL with some parameters replaced (pagination keeps the filters)."""
    def make(**changes: Any) -> str:
        params = {k: v for k, v in request.query_params.multi_items()}
        for k, v in changes.items():
            if v is None:
                params.pop(k, None)
            else:
                params[k] = str(v)
        return request.url.path + ("?" + urlencode(params) if params else "")
    return make


def field_of(message: str, fields: tuple[str, ...]) -> str:
    """Which form field an error message is about (messages start with the field's name)."""
    head = message.split(":", 1)[0].split(" ", 1)[0].strip().lower()
    aliases = {"from": "from", "to": "to", "case": "case_number", "expires": "expires", "category": "reason"}
    head = aliases.get(head, head)
    return head if head in fields else "_form"


def redirect(path: str, **params: Any) -> RedirectResponse:
    clean = {k: v for k, v in params.items() if v is not None}
    return RedirectResponse(path + ("?" + urlencode(clean) if clean else ""), status_code=303)


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    titles = {401: "Not logged in", 403: "Refused", 404: "Not found", 409: "Already done", 413: "Too large"}
    return render(request, "error.html", status=status, title=titles.get(status, "Cannot do that"),
                  message=message)


class ConsoleRoute(APIRoute):
    """Console routes answer refusals and bad input with an HTML page, not the API's JSON."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                if exc.status == 401:
                    return redirect("/login", next=request.url.path)
                return error_page(request, exc.status, str(exc))
            except ValueError as exc:
                return error_page(request, 400, str(exc))
        return route

