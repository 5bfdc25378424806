"""The officer console in a real browser (Debian's chromium under Playwright) against a real
`alpr-central serve` on loopback (SQLite): login and logout, search with purpose and case (audited),
what each role may see (the same as the API), live alerts from a HIL replay, sharing with a second
person's approval, CSRF, expired sessions, unit health. Screenshots: test-artifacts/screenshots/."""
from __future__ import annotations

import re
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from central import hotlist, sharing
from central.console import pages
from central.roles import allowed
from central.schema import user_sessions, users
from console_fixtures import PASSWORD, SETUP, log_in, shot

ROOT = Path(__file__).resolve().parents[1]


def test_login_and_logout(console, open_page):
    console.add_user("ofc.login", "officer")
    page = open_page()
    response = page.goto("/")
    assert page.url.endswith("/login")                                   # anonymous: to the login page
    assert "script-src 'self'" in response.headers["content-security-policy"]   # nothing from elsewhere runs
    assert response.headers["cache-control"] == "no-store"
    assert page.get_by_label("Username").is_visible() and page.get_by_label("Password").is_visible()
    assert page.locator("main").get_by_role("link", name="ALPR policy").get_attribute("href") == "/policy"
    shot(page, "login")
    page.get_by_label("Username").fill("ofc.login")
    page.get_by_label("Password").fill("wrong password!")
    page.get_by_role("button", name="Log in").click()
    refused = page.get_by_role("alert").inner_text()
    assert "wrong username or password" in refused and page.url.endswith("/login")
    page.get_by_label("Username").fill("nobody.here")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").inner_text() == refused          # unknown user: the same words
    log_in(page, "ofc.login")
    assert page.get_by_role("heading", name=re.compile("Welcome")).is_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "alpr_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    shot(page, "home-officer")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login?out=1")
    page.goto("/search")
    assert "/login" in page.url                                          # the session is gone
    with console.engine.connect() as conn:
        ended = conn.execute(sa.select(user_sessions.c.ended_at).join(users, users.c.id == user_sessions.c.user_id)
                             .where(users.c.username == "ofc.login")).scalars().all()
    assert ended and all(e is not None for e in ended)
    assert [e["action"] for e in console.audit_rows("login") if e["username"] == "ofc.login"] == ["login"]


def test_search_refused_without_purpose_or_case_then_allowed_and_audited(console, open_page):
    console.add_user("inv.search", "officer")
    now = datetime.now(timezone.utc)
    ids = console.insert_reads([{"plate": "6SRCH01", "captured_at": now - timedelta(minutes=i), "site": "GATE-S"}
                                for i in range(30)])
    page = open_page()
    log_in(page, "inv.search")
    page.goto("/search")
    page.get_by_label("Plate").fill("6SRCH01")
    page.get_by_label("Case number").fill("DR-2026-0099")
    page.get_by_role("button", name="Search").click()
    page.wait_for_load_state()                                            # the results page, parsed
    assert "purpose" in page.locator("#e-purpose").inner_text()          # the error beside its field
    assert page.locator("table.results").count() == 0
    page.get_by_label("Purpose").select_option("criminal_investigation")
    page.get_by_label("Case number").fill("")
    page.get_by_role("button", name="Search").click()
    page.wait_for_load_state()                                            # the results page, parsed
    assert "case" in page.locator("#e-case_number").inner_text()
    assert page.locator("table.results").count() == 0
    assert [e for e in console.audit_rows("search") if e["username"] == "inv.search"] == []      # nothing was read

    page.get_by_label("Case number").fill("DR-2026-0099")
    page.get_by_label("Per page").select_option("25")
    page.get_by_role("button", name="Search").click()
    page.wait_for_load_state()                                            # the results page, parsed
    table = page.locator("table.results")
    assert table.is_visible() and table.locator("tbody tr").count() == 25
    assert table.locator("tbody tr").first.locator("td").nth(5).inner_text() == "6SRCH01"
    first_time = table.locator("time").first
    assert first_time.get_attribute("title").endswith("Z UTC") and re.search(r"P[SD]T$", first_time.inner_text())
    shot(page, "search-results")
    logged = [e for e in console.audit_rows("search") if e["username"] == "inv.search"]
    assert [(e["purpose"], e["case_number"], e["result_count"], e["query"]["plate"]) for e in logged] == \
        [("criminal_investigation", "DR-2026-0099", 25, "6SRCH01")]
    assert logged[0]["agency"] == "Los Angeles Port Police"

    with page.expect_navigation():
        page.get_by_role("link", name="Next page").click()               # pagination keeps the filters
    assert page.locator("table.results tbody tr").count() == 5
    assert page.get_by_label("Plate").input_value() == "6SRCH01"
    with page.expect_navigation():
        page.get_by_role("link", name="Previous page").click()
    assert page.locator("table.results tbody tr").count() == 25
    assert len([e for e in console.audit_rows("search") if e["username"] == "inv.search"]) == 3   # each page logged

    page.locator("table.results tbody tr").first.get_by_role("link", name="6SRCH01").click()
    assert page.get_by_role("heading", name=re.compile("Read")).is_visible()
    assert page.get_by_role("cell", name="86SRCH01"[1:] and "8SRCH01").is_visible()               # another candidate
    shot(page, "read")
    view = [e for e in console.audit_rows("view") if e["username"] == "inv.search"]
    assert [(v["purpose"], v["case_number"], v["query"]["read_id"]) for v in view] == \
        [("criminal_investigation", "DR-2026-0099", ids[0])]


def test_the_similar_plates_box_finds_the_readers_confusions(console, open_page):
    similar = ["4VBN0KH", "4V8NOKH", "4VBNDKH", "4VBN0K", "4VBN0KHH"]         # itself, 8/B 0/O/D, missing, extra
    console.insert_reads([{"plate": p} for p in similar + ["4VBN1KH", "4VBN0KX"]])
    console.add_user("inv.similar", "officer")
    page = open_page()
    log_in(page, "inv.similar")
    page.goto("/search")
    page.get_by_label("Plate").fill("4VBN0KH")
    page.get_by_label("Purpose").select_option("criminal_investigation")
    page.get_by_label("Case number").fill("DR-2026-0123")
    with page.expect_navigation():
        page.get_by_role("button", name="Search").click()
    assert page.locator("table.results a.plate").all_inner_texts() == ["4VBN0KH"]       # off by default
    page.get_by_label("Similar", exact=True).check()
    with page.expect_navigation():
        page.get_by_role("button", name="Search").click()
    assert sorted(page.locator("table.results a.plate").all_inner_texts()) == sorted(similar)
    assert page.get_by_label("Similar", exact=True).is_checked()
    shot(page, "search-similar")
    assert [e["query"].get("similar") for e in console.audit_rows("search") if e["username"] == "inv.similar"] == \
        [None, True]


# (page, permission, the API call that needs the same permission)
PAGES = [("/search?run=1&plate=6SRCH01&purpose=criminal_investigation&case_number=DR-1", "reads.search",
          ("POST", "/v1/search", {"plate": "6SRCH01", "purpose": "criminal_investigation", "case_number": "DR-1"})),
         ("/alerts", "alerts.view", ("GET", "/v1/alerts", None)),
         ("/hotlist", "hotlist.read", ("GET", "/v1/hotlist/entries", None)),
         ("/units", "units.view", ("GET", "/v1/units", None)),
         ("/sharing", ("sharing.request", "sharing.read"), ("GET", "/v1/sharing/requests", None)),
         ("/admin/holds", "holds.read", ("GET", "/v1/holds", None)),
         ("/audit", "audit.read", ("GET", "/v1/audit", None)),
         ("/audit/verify", "audit.read", ("GET", "/v1/audit/verify", None)),
         ("/admin/users", "users.manage", ("GET", "/v1/users", None)),
         ("/admin/retention", "retention.read", ("GET", "/v1/retention/runs", None))]


@pytest.mark.parametrize("role", ["officer", "supervisor", "commander", "admin", "auditor", "untrained"])
def test_each_page_refuses_what_the_api_refuses(console, role):
    name = f"perm.{role}"
    console.add_user(name, "officer" if role == "untrained" else role, trained=role != "untrained")
    token = console.token(name)
    page_session = requests.Session()
    page_session.cookies.set("alpr_session", token)
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    for path, permission, call in PAGES:
        either = (permission,) if isinstance(permission, str) else permission
        expect = role != "untrained" and any(allowed(role, p) for p in either)
        r = page_session.get(console.url + path, allow_redirects=False, timeout=10)
        assert r.status_code == (200 if expect else 403), (role, path, r.status_code)
        if call is not None and isinstance(permission, str):
            method, api_path, body = call
            a = api.request(method, console.url + api_path, json=body, timeout=10)
            assert (a.status_code == 200) == expect and (a.status_code == 403) == (not expect), (role, api_path, a.status_code)


def test_an_administrator_sees_no_read_data_on_any_page(console, open_page):
    plates = ["7ADMN01", "7ADMN02"]
    console.insert_reads([{"plate": p} for p in plates])
    admin = console.add_user("adm.look", "admin")
    page = open_page()
    log_in(page, admin)
    visited = set()
    links = ["/"] + [a.get_attribute("href") for a in page.locator("header nav a").all()]
    links += ["/admin/roles", "/policy"]
    for href in links:
        page.goto(href)
        visited.add(href)
        body = page.content()
        assert not any(p in body for p in plates), href
        shot(page, "admin" + (href.replace("/", "-") if href != "/" else "-home"))
    assert {"/admin/users", "/admin/retention", "/admin/holds", "/audit", "/units"} <= visited
    assert "/search" not in visited and "/alerts" not in visited
    for href in ("/search?run=1&plate=7ADMN01&purpose=criminal_investigation&case_number=DR-1", "/alerts", "/hotlist"):
        response = page.goto(href)
        assert response.status == 403 and not any(p in page.content() for p in plates)
    shot(page, "admin-refused-search")
    assert [e for e in console.audit_rows("search") if e["username"] == admin] == []


def _wait_for_alert(page, plate: str, timeout_s: float) -> float:
    """Wall time (epoch s) at which a card for `plate` appeared in the open page."""
    handle = page.wait_for_function(
        "plate => { const c = [...document.querySelectorAll('#alert-list .alert-card')].find("
        "el => el.querySelector('.plate') && el.querySelector('.plate').textContent === plate);"
        " return c ? (window.__seen = window.__seen || Date.now()) : false; }", arg=plate, timeout=timeout_s * 1000)
    return handle.json_value() / 1000.0


def test_a_unit_replaying_a_hot_listed_plate_raises_a_live_alert_and_confirming_is_audited(console, open_page, tmp_path):
    from hil.central import enrol_unit
    from hil.harness import Harness, Options
    officer = console.add_user("ofc.alerts", "officer")
    page = open_page()
    log_in(page, officer)
    page.goto("/hotlist")                                   # the entry goes in through the console's own form
    page.get_by_text("Add an entry").click()
    page.get_by_label("Plate").fill("136ZED")
    page.get_by_label("Reason").select_option("stolen_vehicle")
    page.get_by_label("Purpose").select_option("stolen_vehicle")
    page.get_by_label("Case number").fill("DR-2026-0136")
    page.get_by_label("Source").fill("CLETS SVS")
    page.get_by_role("button", name="Add to the hot list").click()
    assert page.get_by_role("cell", name="136ZED", exact=True).is_visible()
    shot(page, "hotlist")
    page.goto("/alerts")
    page.wait_for_selector("#live-state.on")
    clip = ROOT / "hil" / "clips" / "01-day-one-lane"
    enrolment = enrol_unit(console.url, console.central.token("GATE-HIL"), "hil-unit-1", tmp_path / "identity")
    result: dict = {}
    replay = threading.Thread(target=lambda: result.update(
        report=Harness(enrolment, console.central.db_url, Options(workdir=tmp_path)).run([clip])))
    replay.start()
    try:
        seen_at = _wait_for_alert(page, "136ZED", 120)
    finally:
        replay.join(180)
    with console.engine.connect() as conn:
        received = conn.execute(sa.text("SELECT r.received_at FROM reads r JOIN alerts a ON a.read_id = r.read_id "
                                        "WHERE a.plate = '136ZED'")).scalar_one()
    received = received if isinstance(received, datetime) else datetime.fromisoformat(received)
    latency = seen_at - received.replace(tzinfo=received.tzinfo or timezone.utc).timestamp()
    assert -0.5 < latency <= 2.0, f"the alert reached the open page {latency:.2f} s after the read reached the store"
    card = page.locator(".alert-card", has=page.locator(".plate", has_text="136ZED"))
    assert "UNVERIFIED" in card.inner_text() and "hil-unit-1" in card.inner_text() and "CLETS" in page.inner_text(".clets")
    shot(page, "alerts-live")
    card.get_by_label("CLETS check note").fill("CLETS 10-851 confirmed stolen, LAPD report 24-0136")
    card.get_by_role("button", name="Confirm").click()
    page.wait_for_url("**/alerts/*?done=confirmed")
    assert "UNVERIFIED" not in page.locator(".alert-card").inner_text()
    assert "Confirmed through CLETS by ofc.alerts" in page.inner_text(".alert-card")
    shot(page, "alert-confirmed")
    verified = [e for e in console.audit_rows("alert_verified") if e["username"] == officer]
    assert [(v["purpose"], v["case_number"], v["query"]["outcome"]) for v in verified] == \
        [("stolen_vehicle", "DR-2026-0136", "confirmed")]
    pushed = [e for e in console.audit_rows("alert_view") if e["username"] == officer and e["result_count"]]
    assert pushed and all((e["purpose"], e["case_number"]) == ("stolen_vehicle", "DR-2026-0136") for e in pushed)
    assert result["report"].clips[0].error == ""


def test_a_commander_approves_a_request_an_officer_recorded_and_the_officer_cannot(console, open_page):
    console.insert_reads([{"plate": "5SHARE1"}])
    sharing.add_agency(console.engine, SETUP, "Long Beach Police Department", "law_enforcement", True)
    officer, commander = console.add_user("ofc.share", "officer"), console.add_user("cmdr.share", "commander")
    page = open_page()
    log_in(page, officer)
    page.goto("/sharing")
    page.get_by_label("Agency").select_option(label="Long Beach Police Department")
    page.get_by_label("Person requesting").fill("Det. R. Cruz")
    page.get_by_label("Intended purpose").fill("auto theft ring, LB case 24-118")
    page.get_by_label("Plate asked for").fill("5SHARE1")
    page.get_by_role("button", name="Record the request").click()
    heading = page.get_by_role("heading", name=re.compile("recorded: pending")).inner_text()
    request_id = int(re.search(r"Request (\d+)", heading).group(1))
    shot(page, "sharing-recorded")
    csrf = page.locator("input[name=csrf]").first.input_value()
    refused = page.request.post(f"/sharing/{request_id}/decision", form={"csrf": csrf, "decision": "approve",
                                                                          "reason": "mine"})
    assert refused.status == 403
    assert page.goto(f"/sharing/{request_id}").status == 403              # an officer has no inbox

    boss = open_page()
    log_in(boss, commander)
    boss.goto("/sharing")
    inbox = boss.locator("section", has=boss.get_by_role("heading", name=re.compile("Inbox")))
    inbox.get_by_role("link", name=str(request_id)).click()
    shot(boss, "sharing-request")
    boss.get_by_label("Reason for the decision").fill("written request on file; official purpose")
    boss.get_by_role("button", name="Approve").click()
    assert boss.get_by_role("heading", name=re.compile("approved")).is_visible()
    decided = sharing.get_request(console.engine, request_id)
    assert (decided["status"], decided["decided_by"], decided["recorded_by"]) == ("approved", commander, officer)
    assert [e["username"] for e in console.audit_rows("share_decision")] == [commander]


def test_a_form_posted_without_its_csrf_token_is_refused(console, open_page):
    officer = console.add_user("ofc.csrf", "officer")
    page = open_page()
    log_in(page, officer)
    entry = {"plate": "9CSRF01", "reason": "wanted", "purpose": "wanted_vehicle", "case_number": "DR-7",
             "source": "NCIC"}
    for form in (entry, {**entry, "csrf": "forged"}):
        r = page.request.post("/hotlist", form=form)
        assert r.status == 403 and "security token" in r.text()
    assert all(e["pattern"] != "9CSRF01" for e in hotlist.list_entries(console.engine, True))
    page.goto("/hotlist")
    good = page.request.post("/hotlist", form={**entry, "csrf": page.locator("input[name=csrf]").first.input_value()})
    assert good.ok and any(e["pattern"] == "9CSRF01" for e in hotlist.list_entries(console.engine, True))
    # every form that changes anything is behind the same check, whoever posts it
    posts = [r.path for m in pages.ROUTERS for r in m.router.routes if "POST" in r.methods]
    assert len(posts) >= 15
    for path in posts:
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        r = page.request.post(concrete, form={"note": "x"}, max_redirects=0)
        assert r.status == 403, (path, r.status)


def test_an_expired_session_returns_to_the_login_page(console, open_page):
    officer = console.add_user("ofc.expire", "officer")
    for column in ("last_seen_at", "expires_at"):                         # idle, then absolute expiry
        page = open_page()
        log_in(page, officer)
        page.goto("/search")
        assert page.get_by_label("Plate").is_visible()
        past = datetime.now(timezone.utc) - timedelta(hours=9)
        with console.engine.begin() as conn:
            uid = conn.execute(sa.select(users.c.id).where(users.c.username == officer)).scalar_one()
            conn.execute(user_sessions.update().where(user_sessions.c.user_id == uid, user_sessions.c.ended_at.is_(None))
                         .values(**{column: past}))
        page.goto("/hotlist")
        assert "/login" in page.url and "next=%2Fhotlist" in page.url
        assert page.get_by_text("Your session ended").is_visible()
        shot(page, f"session-ended-{column}")
        log_in(page, officer, go=False)
        assert page.url.endswith("/hotlist")                              # back where the officer was going


def test_the_units_page_flags_a_unit_that_stopped_sending_heartbeats(console, open_page):
    from central import units as units_mod
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    import json
    from unit.identity import enroll
    from unit.uplink import SignedClient
    clients = {}
    for unit_id in ("gate-quiet", "gate-busy"):
        key = Ed25519PrivateKey.generate()
        token, _ = units_mod.make_token(console.engine, "GATE-H", timedelta(minutes=5))
        enroll(console.url, token, unit_id, key)
        clients[unit_id] = SignedClient(console.url, unit_id, key)

    def beat(unit_id: str, depth: int) -> None:
        body = json.dumps({"queue": {"depth": depth, "dropped": 0, "quarantined": 0, "oldest_unsent_age_s": 1.0},
                           "uplink": {"state": "idle"}, "temperature_c": 48.5 + depth / 10, "state": "ok",
                           "parts": {"camera": {"state": "ok"}, "lane:in": {"state": "ok"}},
                           "versions": {"unit": "1.0", "reader": "r7"},
                           "disk": {"free_bytes": 5, "total_bytes": 10}}).encode()
        assert clients[unit_id].request("POST", "/v1/heartbeat", body, {"Content-Type": "application/json"}).ok
    for i in range(3):
        beat("gate-quiet", 2)
        beat("gate-busy", 2 + i)
    stop = threading.Event()
    busy = threading.Thread(target=lambda: [beat("gate-busy", 3) for _ in iter(lambda: stop.wait(0.5), True)])
    busy.start()
    try:
        time.sleep(4.5)                   # past 3 intervals of 1 s for the quiet one; the busy one keeps beating
        supervisor = console.add_user("sgt.units", "supervisor")
        page = open_page()
        log_in(page, supervisor)
        page.goto("/units")
        quiet = page.locator("tr", has=page.get_by_role("rowheader", name="gate-quiet"))
        busy_row = page.locator("tr", has=page.get_by_role("rowheader", name="gate-busy"))
        assert "FLAGGED" in quiet.inner_text() and "silent for" in quiet.inner_text()
        assert "FLAGGED" not in busy_row.inner_text() and "48.8 °C" in busy_row.inner_text()
        assert page.locator("figure.plot svg").count() == 1
        shot(page, "units")
        page.goto("/units/gate-busy")
        assert page.locator("figure.plot svg polyline").count() == 2      # buffer depth and temperature
        shot(page, "unit")
        page.goto("/alerts")
        assert "gate-quiet" in page.locator(".maintenance").inner_text()  # the maintenance notice
        assert "gate-busy" not in page.locator(".maintenance").inner_text()
        shot(page, "alerts-maintenance")
    finally:
        stop.set()
        busy.join(5)


def test_pages_read_on_a_tablet_and_the_policy_is_public(console, open_page):
    page = open_page(820, 1180)
    page.goto("/policy")
    assert "462.7 RELEASING ALPR DATA" in page.inner_text("pre.policy")
    shot(page, "policy-tablet")
    officer = console.add_user("ofc.tablet", "officer")
    log_in(page, officer)
    page.goto("/search")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")     # no sideways scrolling
    page.keyboard.press("Tab")                                            # keyboard: the skip link comes first
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    shot(page, "search-tablet")


def test_search_and_its_audit_entry_on_postgresql(pg_url, browser, tmp_path):
    """The same pages on PostgreSQL: a second store, its own server, one search through the browser."""
    from central import db
    from central.config import save_settings
    from central.schema import metadata
    from console_fixtures import SETTINGS, Console
    from hil.central import LocalCentral
    engine = db.make_engine(pg_url)
    with engine.begin() as conn:                                          # the session's database, emptied
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")       # past audit_log's no-truncate trigger
        conn.exec_driver_sql("TRUNCATE " + ", ".join(t.name for t in metadata.sorted_tables) + " RESTART IDENTITY CASCADE")
    central = LocalCentral(tmp_path / "central", db=pg_url, log=tmp_path / "central.log")
    central.init()
    save_settings(tmp_path / "central", SETTINGS)
    central.start()
    try:
        pg = Console(central, engine, SETTINGS)
        pg.insert_reads([{"plate": "4PGSQL1"}, {"plate": "4PGSQL2"}])
        pg.add_user("inv.pg", "officer")
        ctx = browser.new_context(viewport={"width": 1366, "height": 768}, base_url=central.url)
        page = ctx.new_page()
        log_in(page, "inv.pg")
        page.goto("/search")
        page.get_by_label("Plate").fill("4PGSQL*")
        page.get_by_label("Purpose").select_option("crime_scene_canvass")
        page.get_by_label("Case number").fill("PG-1")
        page.get_by_role("button", name="Search").click()
        page.wait_for_load_state()                                            # the results page, parsed
        assert page.locator("table.results tbody tr").count() == 2
        shot(page, "search-postgresql")
        ctx.close()
        logged = pg.audit_rows("search")
        assert [(e["username"], e["purpose"], e["case_number"], e["result_count"]) for e in logged] == \
            [("inv.pg", "crime_scene_canvass", "PG-1", 2)]
    finally:
        central.stop()
        engine.dispose()
