"""Fixtures for the console's browser tests: a real `alpr-central serve` on loopback and Debian's
chromium driven by Playwright (headless, a fresh profile, nothing downloaded), one of each per module.

Users, agencies and reads are put in through the store's own functions on the same database; pages
are used as a person would, through the browser. Each test saves its pages' screenshots in
test-artifacts/screenshots/ (not committed) for a reviewer to look at.
"""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from central import audit, db, training, users
from central.config import Settings, save_settings
from central.schema import read_images, reads, units
from hil.central import LocalCentral

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("ALPR_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-dev-shm-usage"]
PASSWORD = "correct horse battery"
AGENCY = "Los Angeles Port Police"
SETUP = audit.system("test-setup")
# cheap hashes (the algorithm and code are the real ones); short heartbeat intervals so a unit goes
# "silent" within seconds; a zone other than UTC so times show converted
SETTINGS = Settings(argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1, heartbeat_interval_s=1,
                    silent_after_heartbeats=3, time_zone="America/Los_Angeles")


def _jpeg(size=(96, 32), colour=(230, 220, 60)) -> bytes:
    import io
    from PIL import Image
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG", quality=70)
    return out.getvalue()


CROP = _jpeg()
CONTEXT = _jpeg((640, 360), (90, 110, 130))


@dataclass
class Console:
    central: LocalCentral
    engine: sa.Engine
    settings: Settings

    @property
    def url(self) -> str:
        return self.central.url

    def add_user(self, username: str, role: str, trained: bool = True) -> str:
        users.add(self.engine, self.settings, username=username, full_name=username.replace(".", " ").title(),
                  job_title=f"{role} title", agency=AGENCY, role=role, password=PASSWORD, by=SETUP)
        if trained:
            today = date.today()
            training.record(self.engine, username, "ALPR operator course", today - timedelta(days=30),
                            today + timedelta(days=335), SETUP)
        return username

    def token(self, username: str) -> str:
        """A session for `username`, as the API's login makes it (for requests-level checks)."""
        r = requests.post(self.url + "/v1/auth/login", json={"username": username, "password": PASSWORD}, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["token"]

    def audit_rows(self, action: str) -> list[dict[str, Any]]:
        return audit.entries(self.engine, action=action, limit=100000)

    def insert_reads(self, specs: list[dict[str, Any]]) -> list[str]:
        now = datetime.now(timezone.utc)
        rows, images = [], []
        for spec in specs:
            site = spec.get("site", "GATE-A")
            unit_id = f"unit-{site.lower()}"
            with self.engine.begin() as conn:
                if not conn.execute(sa.select(units.c.unit_id).where(units.c.unit_id == unit_id)).first():
                    conn.execute(units.insert().values(unit_id=unit_id, site=site, public_key="-", status="active",
                                                       enrolled_at=now))
            rid = str(uuid.uuid4())
            rows.append({"read_id": rid, "unit_id": unit_id, "site": site, "lane": spec.get("lane", "1"),
                         "direction": spec.get("direction", "in"), "captured_at": spec.get("captured_at", now),
                         "plate": spec["plate"], "region": "us-ca", "confidence": 0.91,
                         "candidates": [{"plate": spec["plate"], "score": 0.91}, {"plate": "8" + spec["plate"][1:], "score": 0.05}],
                         "box": [100, 120, 196, 152], "model": {"detector": "d", "reader": "r"},
                         "trigger": {"sensor": "loop-1"}, "schema_version": 1, "received_at": now})
            images += [{"read_id": rid, "kind": "crop", "jpeg": CROP}, {"read_id": rid, "kind": "context", "jpeg": CONTEXT}]
        with self.engine.begin() as conn:
            conn.execute(reads.insert(), rows)
            conn.execute(read_images.insert(), images)
        return [r["read_id"] for r in rows]


@pytest.fixture(scope="module")
def console(tmp_path_factory) -> Console:
    home = tmp_path_factory.mktemp("console") / "central"
    central = LocalCentral(home, db=db.sqlite_url(home.parent / "central.db"), log=home.parent / "central.log")
    central.init()
    save_settings(home, SETTINGS)
    central.start()
    engine = db.make_engine(central.db_url)
    try:
        yield Console(central, engine, SETTINGS)
    finally:
        engine.dispose()
        central.stop()


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium under Playwright; a fresh, throwaway profile (Playwright's own temporary one)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: scripts/test.sh installs Debian's chromium (apt-get install chromium)",
                    pytrace=False)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def open_page(browser, console):
    """open_page() -> a page in its own browser context (own cookies), 1366x768 unless told otherwise."""
    contexts = []

    def make(width: int = 1366, height: int = 768):
        ctx = browser.new_context(viewport={"width": width, "height": height}, base_url=console.url)
        ctx.set_default_timeout(15000)
        contexts.append(ctx)
        return ctx.new_page()
    yield make
    for ctx in contexts:
        ctx.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def log_in(page, username: str, password: str = PASSWORD, go: bool = True) -> None:
    """Fill in the login form (on /login, or on the login page the browser was sent to: go=False)."""
    if go:
        page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login" not in url)
