"""A size cap on every request body, and a nesting cap on every JSON body, before anything parses it.

`BodyGate` is the outermost ASGI middleware: it runs before the session check and before FastAPI or
the console read a body. A body whose Content-Length is over its route's cap is refused with 413
without reading a byte of it; a body sent without one (chunked) is read only up to the cap. The
unit's batch route and the hot-list CSV upload stream their bodies under their own caps; every other
body is read here, at most `Limits.max_small_body_bytes` (64 KiB: a login, a search, a console form;
a legal hold and the console's CSV upload get the room they need), and handed on whole. A JSON body nested deeper than `wire.jsondoc.MAX_DEPTH` is refused with 400 here
too, so no route builds a deep structure. Refusals are `{"error": ...}` and never repeat the body.
"""
from __future__ import annotations

import json
from typing import Any

from wire import jsondoc, paths

CSV_UPLOAD_BYTES = 2 * 1024 * 1024 + 64 * 1024       # the hot-list CSV cap and a multipart envelope
HOLD_BYTES = 1024 * 1024                              # a hold may list up to 10,000 read ids
LARGER = {"/v1/hotlist/import": CSV_UPLOAD_BYTES, "/hotlist/import": CSV_UPLOAD_BYTES,
          "/v1/holds": HOLD_BYTES, "/holds": HOLD_BYTES}
STREAMED = {paths.READS, "/v1/hotlist/import"}        # handlers that stream under their own cap


class BodyGate:
    def __init__(self, app, small: int, large: int):
        self.app, self.small, self.large = app, small, large

    def cap(self, path: str) -> int:
        if path == paths.READS:
            return self.large
        return LARGER.get(path, self.small)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        cap = self.cap(scope["path"])
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > cap:
            return await _refuse(send, 413, f"body of {declared} bytes; at most {cap} on this route")
        if scope["path"] in STREAMED:
            return await self.app(scope, receive, send)
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > cap:
                return await _refuse(send, 413, f"body over {cap} bytes on this route")
            if not message.get("more_body"):
                break
        if _is_json(headers.get(b"content-type", b"")):
            try:
                jsondoc.check_depth(bytes(body))
            except jsondoc.JsonTooDeep as exc:
                return await _refuse(send, 400, f"body: {exc}")
            except ValueError:
                pass                     # not JSON: the route's own parser says so, in its words
        return await self.app(scope, _replay(bytes(body), receive), send)


def _is_json(content_type: bytes) -> bool:
    kind = content_type.split(b";")[0].strip().lower()
    return kind in (b"", b"application/json") or kind.endswith(b"+json")


def _replay(body: bytes, receive):
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()           # after the body: wait for the disconnect, as the server would
    return replay


async def _refuse(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
