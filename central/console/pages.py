"""Puts the console on the API's app: every page router, and the static assets (served by the
store itself: no CDN, no external fonts, one small script of our own)."""
from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from central.console import (admin_pages, alert_pages, audit_pages, auth_pages, hotlist_pages, search_pages,
                             sharing_pages, unit_pages)
from central.console.web import HERE

ROUTERS = (auth_pages, search_pages, alert_pages, hotlist_pages, unit_pages, sharing_pages, audit_pages, admin_pages)


def mount(app: FastAPI) -> None:
    for module in ROUTERS:
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
