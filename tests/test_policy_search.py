"""Searching (policy 462.3(a)(b)(c), 462.5(b)): purpose and case number or refused; exact and partial
plates, time range, site, lane, direction; crops; paging (SQLite and PostgreSQL)."""
from __future__ import annotations

import base64
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from central import audit, search
from central.errors import ApiError
from central.purposes import PURPOSES

pytest.register_assert_rewrite("central_fixtures", "policy_fixtures")
from central_fixtures import JPEG  # noqa: E402
from policy_fixtures import SEARCH, insert_reads  # noqa: E402

pytest_plugins = ["central_fixtures", "policy_fixtures"]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
POLICY_TEXT = (Path(__file__).resolve().parents[1] / "central" / "policy" / "alpr-policy-462.txt").read_text()


def plates_of(r) -> list[str]:
    assert r.status_code == 200, r.text
    return [x["plate"] for x in r.json()["results"]]


def test_purposes_are_the_policys_own_words():
    flat = " ".join(POLICY_TEXT.split())
    for p in PURPOSES.values():
        assert p.phrase in flat, p.code
    assert {"criminal_investigation", "stolen_vehicle", "missing_person", "crime_scene_canvass"} <= set(PURPOSES)


def test_search_without_purpose_or_case_is_refused_and_reads_nothing(policy):
    insert_reads(policy.engine, [{"plate": "7ABC123"}])
    officer = policy.user("ofc.lee", "officer")
    for body, word in (({"plate": "7ABC123", "case_number": "DR-1"}, "purpose"),
                       ({"plate": "7ABC123", "case_number": "DR-1", "purpose": "curiosity"}, "purpose"),
                       ({"plate": "7ABC123", "case_number": "DR-1", "purpose": ""}, "purpose"),
                       ({"plate": "7ABC123", "purpose": "criminal_investigation"}, "case"),
                       ({"plate": "7ABC123", "purpose": "criminal_investigation", "case_number": "  "}, "case")):
        r = officer.post("/v1/search", json=body)
        assert r.status_code == 400 and word in r.json()["error"], (body, r.text)
    rid = policy.store.read_ids()[0]
    assert officer.post(f"/v1/reads/{rid}/view", json={"case_number": "DR-1"}).status_code == 400
    assert policy.audit_rows("search") == [] and policy.audit_rows("view") == []
    assert policy.anonymous().post("/v1/search", json={**SEARCH, "plate": "7ABC123"}).status_code == 401


def test_exact_and_partial_plates(policy):
    insert_reads(policy.engine, [{"plate": p, "captured_at": T0 + timedelta(minutes=i)} for i, p in enumerate(
        ["7ABC123", "7ABX124", "7ABC12", "7ABC1234", "8ABC123", "ABC123", "1ZZZ999"])])
    officer = policy.user("ofc.lee", "officer")

    def find(plate: str) -> list[str]:
        return sorted(plates_of(officer.post("/v1/search", json={**SEARCH, "plate": plate})))
    assert find("7abc123") == ["7ABC123"]                     # exact (case folded)
    assert find("7AB?12*") == ["7ABC12", "7ABC123", "7ABC1234", "7ABX124"]
    assert find("7AB?123") == ["7ABC123"]                     # ? is exactly one character
    assert find("*ABC123") == ["7ABC123", "8ABC123", "ABC123"]  # * may be empty
    assert find("?ABC123") == ["7ABC123", "8ABC123"]
    assert find("*ZZ*") == ["1ZZZ999"]
    for bad in ("7AB%", "7AB_1", "*", "?*?", "7*", "7ABC 123", "'; DROP TABLE reads; --"):
        r = officer.post("/v1/search", json={**SEARCH, "plate": bad})
        assert r.status_code == 400, bad
    assert policy.store.count() == 7


def test_filters_time_site_lane_direction_and_crop(policy):
    insert_reads(policy.engine, [
        {"plate": "7ABC123", "captured_at": T0, "site": "gate-1", "lane": "1", "direction": "in"},
        {"plate": "7ABC123", "captured_at": T0 + timedelta(hours=1), "site": "gate-2", "lane": "2", "direction": "out"},
        {"plate": "7ABC123", "captured_at": T0 + timedelta(days=2), "site": "gate-1", "lane": "2", "direction": "out"},
    ])
    officer = policy.user("ofc.lee", "officer")

    def count(**filters) -> int:
        return len(plates_of(officer.post("/v1/search", json={**SEARCH, "plate": "7ABC123", **filters})))
    assert count() == 3
    assert count(**{"from": "2026-03-01T12:30:00Z"}) == 2
    assert count(**{"from": "2026-03-01", "to": "2026-03-01"}) == 2       # whole days, inclusive
    assert count(**{"to": "2026-03-01T12:00:00Z"}) == 1
    assert count(sites=["gate-1"]) == 2 and count(sites=["gate-1", "gate-2"]) == 3 and count(sites=["gate-9"]) == 0
    assert count(lane="2") == 2 and count(lane="2", direction="out", sites=["gate-2"]) == 1
    assert count(direction="in") == 1
    assert officer.post("/v1/search", json={**SEARCH, "direction": "sideways"}).status_code == 400
    assert officer.post("/v1/search", json={**SEARCH, "from": "2026-03-02", "to": "2026-03-01"}).status_code == 400
    assert officer.post("/v1/search", json={**SEARCH, "from": "yesterday"}).status_code == 400
    # canvass: no plate, a site and a time window (462.3(c))
    canvass = officer.post("/v1/search", json={"purpose": "crime_scene_canvass", "case_number": "INC-77",
                                               "sites": ["gate-1"], "from": "2026-03-01", "to": "2026-03-01"})
    assert plates_of(canvass) == ["7ABC123"]
    result = canvass.json()["results"][0]
    assert base64.b64decode(result["crop_jpeg_b64"]) == JPEG
    assert result["captured_at"] == "2026-03-01T12:00:00.000Z" and result["site"] == "gate-1"


def test_paging_walks_every_match_once_newest_first(policy):
    insert_reads(policy.engine, [{"plate": f"7ABC{i:03d}", "captured_at": T0 + timedelta(minutes=i // 2)}
                                 for i in range(23)])          # pairs share a timestamp: the cursor breaks ties
    insert_reads(policy.engine, [{"plate": "9ZZZ999", "captured_at": T0}])
    officer = policy.user("ofc.lee", "officer")
    seen, cursor, pages = [], None, 0
    while True:
        r = officer.post("/v1/search", json={**SEARCH, "plate": "7ABC*", "limit": 5, "cursor": cursor})
        page = r.json()
        seen += [(x["captured_at"], x["read_id"]) for x in page["results"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == 5 and len(seen) == 23 and len(set(seen)) == 23
    assert seen == sorted(seen, reverse=True)
    assert [e["result_count"] for e in policy.audit_rows("search")] == [5, 5, 5, 5, 3]   # each page is an access
    assert officer.post("/v1/search", json={**SEARCH, "plate": "7ABC*", "limit": 0}).status_code == 400
    assert officer.post("/v1/search", json=SEARCH).status_code == 400          # no filter at all
    assert officer.post("/v1/search", json={**SEARCH, "plate": "7ABC*", "limit": 201}).status_code == 400
    assert officer.post("/v1/search", json={**SEARCH, "plate": "7ABC*", "cursor": "garbage!"}).status_code == 400


def test_view_returns_the_whole_read_and_is_logged(policy):
    rid = insert_reads(policy.engine, [{"plate": "7ABC123", "context": True}])[0]
    officer = policy.user("ofc.lee", "officer")
    doc = officer.post(f"/v1/reads/{rid}/view", json={"purpose": "stolen_vehicle", "case_number": "DR-9"}).json()
    assert doc["plate"] == "7ABC123" and doc["candidates"][0]["plate"] == "7ABC123"
    assert base64.b64decode(doc["context_jpeg_b64"]) == JPEG and base64.b64decode(doc["crop_jpeg_b64"]) == JPEG
    missing = officer.post("/v1/reads/no-such-read/view", json={"purpose": "stolen_vehicle", "case_number": "DR-9"})
    assert missing.status_code == 404
    assert [(e["query"]["read_id"], e["result_count"]) for e in policy.audit_rows("view")] == \
        [(rid, 1), ("no-such-read", 0)]


def test_search_running_past_the_timeout_is_refused_on_postgresql(policy, monkeypatch):
    if policy.store.backend != "postgresql":
        pytest.skip("statement timeouts are PostgreSQL's; SQLite searches are not cut short")
    insert_reads(policy.engine, [{"plate": "7ABC123"}])
    who = audit.Principal("ofc.lee", "LAPP")
    real = search.filters
    monkeypatch.setattr(search, "filters", lambda q: [*real(q), sa.text("pg_sleep(0.3) IS NOT NULL")])
    slow = search.search(policy.engine, who, search.query_from({**SEARCH, "plate": "7ABC123"}), timeout_s=5)
    assert slow["count"] == 1                                       # slow, but inside the limit
    with pytest.raises(ApiError) as refused:
        search.search(policy.engine, who, search.query_from({**SEARCH, "plate": "7ABC123"}), timeout_s=0.1)
    assert refused.value.status == 400 and "too broad" in str(refused.value)
    assert len(policy.audit_rows("search")) == 1                    # the refused search read nothing


# Similar-plate search: the reader's confusions, as the issue names them.
CONFUSED = ("0ODQ", "1ILT", "2Z", "5S", "8B", "6G")


def _canon(plate: str) -> str:
    return "".join(next((g[0] for g in CONFUSED if c in g), c) for c in plate)


def _similar(a: str, b: str) -> bool:
    """The definition, written out: the same once look-alikes are folded, or one character missing or
    extra (one kind of misreading at a time)."""
    if len(a) == len(b):
        return _canon(a) == _canon(b)
    short, long_ = sorted((a, b), key=len)
    return len(long_) == len(short) + 1 and any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def test_similar_variants_are_exactly_the_plates_the_definition_allows():
    from itertools import product
    from central import similar_plates
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    for plate in ("O1", "B5", "7X"):
        want = {"".join(t) for n in (1, 2, 3) for t in product(alphabet, repeat=n) if _similar(plate, "".join(t))}
        assert set(similar_plates.variants(plate)) == want, plate
    many = similar_plates.variants("8OB123")
    assert {"8OB123", "B08123", "808I23", "8DB1Z3", "8OB23", "8OB1234", "X8OB123"} <= set(many)
    assert all(_similar("8OB123", v) for v in many) and not {"8OB124", "B08I234", "B0B23"} & set(many)
    with pytest.raises(similar_plates.TooMany):
        similar_plates.variants("1001010101")                  # a million: the store compares folded forms


SIMILAR_HITS = ["8OB123", "B08123", "808I23", "8DB1Z3", "8OB23", "OB123", "8OB1234", "X8OB123", "8OBQ123"]
SIMILAR_MISSES = ["8OB124", "8XB123", "7OB123", "8OB1", "8OB12345", "88OB1234", "9ZZZ999", "B08I234", "B0B23"]


@pytest.mark.parametrize("index", [True, False], ids=["by-plate-index", "by-canonical-form"])
def test_similar_search_finds_the_readers_confusions_only_when_asked_and_is_audited(policy, monkeypatch, index):
    from central import similar_plates
    if not index:                                # the path a plate with too many look-alikes takes
        monkeypatch.setattr(similar_plates, "MAX_VARIANTS", 10)
    insert_reads(policy.engine, [{"plate": p, "captured_at": T0 + timedelta(minutes=i)}
                                 for i, p in enumerate(SIMILAR_HITS + SIMILAR_MISSES)])
    officer = policy.user("ofc.lee", "officer")
    similar = plates_of(officer.post("/v1/search", json={**SEARCH, "plate": "8ob123", "similar": True}))
    assert sorted(similar) == sorted(SIMILAR_HITS)
    assert similar == SIMILAR_HITS[::-1]                                            # newest first
    assert plates_of(officer.post("/v1/search", json={**SEARCH, "plate": "8OB123"})) == ["8OB123"]
    assert plates_of(officer.post("/v1/search", json={**SEARCH, "plate": "8OB123", "similar": False})) == ["8OB123"]
    assert [(e["query"]["plate"], e["query"].get("similar"), e["result_count"]) for e in policy.audit_rows("search")] == \
        [("8OB123", True, len(SIMILAR_HITS)), ("8OB123", None, 1), ("8OB123", None, 1)]
    auditor = policy.user("aud.ray", "auditor")
    day = {"from": T0.date().isoformat(), "to": "2099-12-31"}
    report = auditor.get("/v1/audit/report", params={**day, "format": "text"}).text
    assert report.count("plate 8OB123 (similar)") == 1 and report.count("plate 8OB123 sites") == 2
    audit_page = _console(policy, auditor).get(policy.url + "/audit", params={"action": "search"}, timeout=30).text
    assert audit_page.count('"similar": true') == 1
    seen, cursor = [], None
    while True:                                                  # paging walks the same matches, once each
        page = officer.post("/v1/search", json={**SEARCH, "plate": "8OB123", "similar": True, "limit": 4,
                                                "cursor": cursor}).json()
        seen += [r["plate"] for r in page["results"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == SIMILAR_HITS[::-1]
    assert [e["result_count"] for e in policy.audit_rows("search")][3:] == [4, 4, 1]
    for body in ({"plate": "8OB?23", "similar": True}, {"similar": True, "sites": ["gate-1"]},
                 {"plate": "8OB123", "similar": "maybe"}):
        r = officer.post("/v1/search", json={**SEARCH, **body})
        assert r.status_code in (400, 422) and "similar" in r.text, (body, r.text)
    assert len(policy.audit_rows("search")) == 6


def _console(policy, client) -> requests.Session:
    """A console session (the cookie) for the same login as an API client."""
    page = requests.Session()
    page.cookies.set("alpr_session", client.http.headers["Authorization"].removeprefix("Bearer "))
    return page


def test_console_similar_checkbox_runs_the_same_search(policy):
    insert_reads(policy.engine, [{"plate": p, "captured_at": T0 + timedelta(minutes=i)}
                                 for i, p in enumerate(SIMILAR_HITS + SIMILAR_MISSES)])
    page = _console(policy, policy.user("ofc.lee", "officer"))
    query = {"run": "1", "plate": "8OB123", "purpose": "criminal_investigation", "case_number": "DR-7"}

    def shown(**extra) -> list[str]:
        r = page.get(policy.url + "/search", params={**query, **extra}, timeout=30)
        assert r.status_code == 200, r.text[:500]
        return re.findall(r'<a class="plate" href="[^"]*">([A-Z0-9]+)</a>', r.text)
    assert sorted(shown(similar="1")) == sorted(SIMILAR_HITS)
    assert shown() == ["8OB123"]
    assert [e["query"].get("similar") for e in policy.audit_rows("search")] == [True, None]


# Dragnets: a filter every read passes is not a search (issue 19, item 9).
DRAGNETS = [{"direction": "in"}, {"lane": "in"}, {"lane": "1"}, {"from": "1970-01-01"}, {"to": "2099-12-31"},
            {"sites": ["gate-1"]}, {"from": "1970-01-01", "to": "2099-12-31", "sites": ["gate-1"]},
            {"purpose": "crime_scene_canvass", "sites": ["gate-1"]},
            {"purpose": "crime_scene_canvass", "from": "2026-03-01", "to": "2026-03-01"},
            {"purpose": "crime_scene_canvass", "sites": ["gate-1"], "from": "2026-02-01", "to": "2026-03-01"},
            {"purpose": "crime_scene_canvass", "sites": ["gate-1"], "from": "1970-01-01", "direction": "in"}]


def _dragnet_reads(policy) -> None:
    insert_reads(policy.engine, [{"plate": f"7DRG{i:03d}", "captured_at": T0 - timedelta(days=i * 40),
                                  "site": "gate-1", "lane": "in", "direction": "in"} for i in range(12)])


def test_a_search_must_name_a_plate_unless_it_is_a_bounded_canvass(policy):
    _dragnet_reads(policy)
    officer = policy.user("ofc.lee", "officer")
    for body in DRAGNETS:
        r = officer.post("/v1/search", json={**SEARCH, **body})
        assert r.status_code == 400 and "plate" in r.json()["error"], (body, r.text[:300])
    assert policy.audit_rows("search") == []                                  # nothing was read
    canvass = {**SEARCH, "purpose": "crime_scene_canvass", "sites": ["gate-1"]}
    assert plates_of(officer.post("/v1/search", json={**canvass, "from": "2026-02-28", "to": "2026-03-02"})) == ["7DRG000"]
    assert plates_of(officer.post("/v1/search", json={**SEARCH, "plate": "7DRG*", "direction": "in"})) \
        == [f"7DRG{i:03d}" for i in range(12)]                                # a pattern, as the rules allow


def test_the_console_refuses_a_dragnet_beside_the_plate_field(policy):
    _dragnet_reads(policy)
    page = _console(policy, policy.user("ofc.lee", "officer"))
    for extra in ({"direction": "in"}, {"lane": "in"}, {"from": "1970-01-01"}):
        r = page.get(policy.url + "/search", params={"run": "1", "purpose": "criminal_investigation",
                                                     "case_number": "DR-7", **extra}, timeout=30)
        assert r.status_code == 400 and 'id="e-plate"' in r.text, extra
        assert "7DRG" not in r.text and "<table" not in r.text
    assert policy.audit_rows("search") == []
