"""GET /policy: the department's ALPR policy, open to anyone (policy 462.2.1(g), 462.6)."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

router = APIRouter(tags=["public"])


@router.get("/policy", response_class=PlainTextResponse, summary="The ALPR policy (public, no login)",
            responses={200: {"content": {"text/plain": {}}}})
def get_policy(request: Request) -> PlainTextResponse:
    text = request.app.state.settings.policy_file.read_text("utf-8")
    return PlainTextResponse(text, headers={"Cache-Control": "public, max-age=3600"})
