"""GET /policy: the department's ALPR policy, open to anyone (policy 462.2.1(g), 462.6).

Programs get the plain text; a browser (Accept: text/html) gets it as a console page, linked from
the login page.
"""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

router = APIRouter(tags=["public"])


@router.get("/policy", response_class=PlainTextResponse, summary="The ALPR policy (public, no login)",
            responses={200: {"content": {"text/plain": {}, "text/html": {}}}})
def get_policy(request: Request) -> Response:
    text = request.app.state.settings.policy_file.read_text("utf-8")
    headers = {"Cache-Control": "public, max-age=3600", "Vary": "Accept"}
    if "text/html" in request.headers.get("accept", ""):
        from central.console.web import render
        response = render(request, "policy.html", text=text)
        response.headers.update(headers)
        return response
    return PlainTextResponse(text, headers=headers)
