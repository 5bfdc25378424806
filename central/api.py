"""The HTTP API (FastAPI): enrolment, signed ingest of sealed reads, heartbeats, hot list; and, for
people, the policy-enforcing routes in `central.routes` (login, search, alerts, hot-list entries, legal
holds, evidence, retention, sharing, users, audit, units) and the officer console (`central.console`:
HTML pages over the same functions, at / and every path outside /v1).

`central.bodygate.BodyGate`, outermost, caps every body before anything reads it (413) and refuses
JSON nested deeper than the contract needs (400); errors are `{"error": ...}` in one shape, never
repeating what was sent; logins go through `central.login_guard` (per-address throttle and lock-out,
a cap on concurrent password hashing). The unit routes' handlers read the raw body themselves instead of letting FastAPI parse a model: the signature
covers the exact bytes, the size cap must hold before the body is buffered, and a request must be
authenticated before its content costs anything. Database and crypto work runs in the thread pool,
off the event loop. No docs UI is served (policy 462.6 opens nothing to the public but the policy
itself); GET /policy, the OpenAPI document (no data in it), login and token enrolment are the only
routes reachable without a session or a unit signature: `central.routes.deps.UserGate` refuses every
other request that has no valid session before it reaches a handler.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, TypeVar

import sqlalchemy as sa
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from central import audit, heartbeats, hotlist, routes
from central.auth_units import authenticate, prune_nonces
from central.bodygate import BodyGate
from central.config import Limits, Settings
from central.console import pages
from central.errors import ApiError
from central.ingest import ingest, parse_batch
from central.keys import CentralKeys
from central.login_guard import LoginGuard
from central.ratelimit import RateLimiter
from central.routes.deps import UserGate
from central.units import UnitRow, enrol
from wire import batch, jsondoc, paths
from wire.hotlist import SIGNATURE_HEADER
from wire.signing import HEADERS

PRUNE_EVERY_S = 60.0
T = TypeVar("T")

_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}}
_SIGNED = [{"name": h, "in": "header", "required": True, "schema": {"type": "string"}} for h in HEADERS]
_ENROL = {"type": "object", "required": ["token", "unit_id", "public_key"],
          "properties": {"token": {"type": "string"}, "unit_id": {"type": "string"},
                         "public_key": {"type": "string", "description": "base64 raw Ed25519 public key"}}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_REFUSALS = {401: _json(_ERROR, "unsigned, badly signed, stale or replayed"), 403: _json(_ERROR, "unit revoked"),
             413: _json(_ERROR, "body or batch too large"), 429: _json(_ERROR, "rate limited; see Retry-After")}


async def _read_body(request: Request, cap: int) -> bytes:
    """The raw body, refused with 413 as soon as it is known to exceed `cap` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise ApiError(413, f"body of {declared} bytes; at most {cap}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise ApiError(413, f"body over {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def validation_message(exc: RequestValidationError) -> str:
    """What is wrong with a request, field by field, in one line; never the value that was sent (a
    password, or megabytes of it, must not come back in an error)."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts[:10]) or "invalid request"


def create_app(engine: sa.Engine, keys: CentralKeys, limits: Limits = Limits(),
               settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(title="ALPR central store", version="1", docs_url=None, redoc_url=None,
                  description="Units push sealed, signed reads; people work under ALPR policy 462, enforced "
                              "here: sessions, roles, training, purpose and case number, audit log.")
    app.state.engine, app.state.keys, app.state.settings = engine, keys, settings
    audit.sign_with(engine, keys)          # audit entries written through this app carry the store's signature
    app.add_middleware(UserGate, engine=engine, settings=settings)
    app.add_middleware(BodyGate, small=limits.max_small_body_bytes, large=limits.max_body_bytes)   # outermost
    app.state.login_guard = LoginGuard()
    app.include_router(routes.router())
    pages.mount(app)
    limiter = RateLimiter(limits.rate_per_s, limits.rate_burst)
    pruned = {"at": 0.0}
    prune_lock = threading.Lock()

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        headers = {"Retry-After": str(exc.extra["retry_after"])} if "retry_after" in exc.extra else None
        return JSONResponse({"error": str(exc), **exc.extra}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": validation_message(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(ValueError)
    async def _bad_input(_request: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    async def signed_call(request: Request, body: bytes, work: Callable[[UnitRow], T]) -> T:
        """Authenticate, rate-limit, then `work(unit)`: all in the thread pool, off the event loop."""
        method, path, headers = request.method, request.url.path, request.headers

        def call() -> T:
            _maybe_prune()
            unit = authenticate(engine, method, path, body, headers, limits.replay_window_s)
            wait = limiter.check(unit.unit_id)
            if wait:
                raise ApiError(429, "rate limit: slow down", retry_after=wait)
            return work(unit)
        return await run_in_threadpool(call)

    def _maybe_prune() -> None:
        now = time.monotonic()
        if now - pruned["at"] > PRUNE_EVERY_S and prune_lock.acquire(blocking=False):
            try:
                pruned["at"] = now
                prune_nonces(engine, limits.replay_window_s)
            finally:
                prune_lock.release()

    @app.post(paths.ENROL, summary="Register a unit's public key with a one-time token",
              openapi_extra=_body(_ENROL), responses={403: _json(_ERROR, "token unknown, expired or used"),
                                                      409: _json(_ERROR, "unit id already enrolled")})
    async def enroll(request: Request) -> dict[str, Any]:
        body = await _read_body(request, limits.max_small_body_bytes)
        try:
            doc = jsondoc.loads(body)
            token, unit_id, public_key = doc["token"], doc["unit_id"], doc["public_key"]
            if not all(isinstance(v, str) for v in (token, unit_id, public_key)):
                raise TypeError
        except jsondoc.JsonTooDeep as exc:
            raise ApiError(400, f"body: {exc}") from None
        except (ValueError, KeyError, TypeError):
            raise ApiError(400, "body must be JSON {token, unit_id, public_key} (strings)") from None
        site = await run_in_threadpool(enrol, engine, token, unit_id, public_key)
        return {"unit_id": unit_id, "site": site, "sealing_public_key": keys.sealing_public_b64,
                "sealing_key_id": keys.sealing_key_id, "signing_public_key": keys.signing_public_b64}

    @app.post(paths.READS, summary="Ingest a batch of sealed reads (signed by the unit)",
              openapi_extra=_body(batch.REQUEST_SCHEMA) | {"parameters": _SIGNED},
              responses={200: _json(batch.RESPONSE_SCHEMA, "one verdict per read"), **_REFUSALS})
    async def post_reads(request: Request) -> JSONResponse:
        body = await _read_body(request, limits.max_body_bytes)
        results = await signed_call(request, body, lambda unit: ingest(
            engine, unit, parse_batch(body, limits.max_batch_reads), keys.sealing))
        return JSONResponse(batch.response(results))

    @app.post(paths.HEARTBEAT, summary="Store a unit heartbeat (signed)",
              openapi_extra={"parameters": _SIGNED}, responses=_REFUSALS)
    async def post_heartbeat(request: Request) -> dict[str, Any]:
        body = await _read_body(request, limits.max_small_body_bytes)

        def work(unit: UnitRow) -> dict[str, Any]:
            heartbeats.record(engine, unit.unit_id, body)
            return {"ok": True, "hotlist_etag": hotlist.render(engine, keys)[1]}
        return await signed_call(request, body, work)

    @app.get(paths.HOTLIST, summary="The hot list, signed by the central key; honours If-None-Match",
             openapi_extra={"parameters": _SIGNED}, responses={304: {"description": "unchanged"}, **_REFUSALS})
    async def get_hotlist(request: Request) -> Response:
        body, etag, signature = await signed_call(request, b"", lambda _unit: hotlist.render(engine, keys))
        headers = {"ETag": etag, SIGNATURE_HEADER: signature}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    return app


def app_from_env() -> FastAPI:
    """uvicorn factory for `alpr-central serve --workers N`: each worker process builds its own app."""
    from central.db import make_engine
    from central.keys import load_keys
    from pathlib import Path
    home = Path(os.environ["ALPR_CENTRAL_HOME"])
    return create_app(make_engine(os.environ["ALPR_CENTRAL_DB"]), load_keys(home / "keys"),
                      Limits.from_json(os.environ.get("ALPR_CENTRAL_LIMITS", "{}")),
                      Settings.from_json(os.environ.get("ALPR_CENTRAL_SETTINGS", "{}")))
