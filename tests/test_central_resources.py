"""What an anonymous or hostile client can make the store spend before anyone has logged in.

Against a real server on loopback (SQLite and PostgreSQL): a body over its route's cap is refused with
413 before it is read (the test sends 64 KiB of a declared 64 MiB and gets the answer while the rest is
still unsent); validation errors are `{"error": ...}` and never repeat what was sent; JSON nested
50,000 deep is refused with 400 on every route that takes JSON; failed logins from one address are
throttled and lock that address out, never the account for everyone; password hashing runs at most
`max_hashing` at a time.
"""
from __future__ import annotations

import json
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from central.api import create_app
from central.config import Limits
from central.login_guard import ADDRESS_BURST, LoginGuard
from wire import paths, signing

pytest.register_assert_rewrite("central_fixtures", "policy_fixtures")
from central_fixtures import LiveServer, enrol_unit, session_from  # noqa: E402
from policy_fixtures import FAST  # noqa: E402

pytest_plugins = ["central_fixtures", "policy_fixtures"]
MIB = 1024 * 1024
DEEP = b"[" * 50_000


def raw_post(port: int, path: str, head: dict[str, str], body: bytes, wait_s: float = 5.0) -> tuple[int, bytes]:
    """POST over a bare socket: the headers and `body` (only the start of what they announce), then wait
    for the answer. A server that reads the whole announced body before answering never answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *(f"{k}: {v}" for k, v in head.items()), "", ""]
        sock.sendall("\r\n".join(lines).encode() + body)
        answer = b""
        try:
            while b"\r\n\r\n" not in answer or not answer.split(b"\r\n\r\n", 1)[1]:
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
        except (socket.timeout, TimeoutError):
            pytest.fail(f"no answer within {wait_s} s after {len(body)} bytes: the server waits for the whole body")
    return int(answer.split(b" ", 2)[1]), answer.split(b"\r\n\r\n", 1)[1]


@pytest.fixture
def server(store):
    app = create_app(store.engine, store.keys, Limits(), FAST)
    live = LiveServer(app)
    live.app = app
    yield live
    live.stop()


@pytest.mark.parametrize("path, kind", [("/v1/auth/login", "application/json"),
                                        ("/login", "application/x-www-form-urlencoded"),
                                        ("/v1/search", "application/json")])
def test_a_64_mib_body_is_refused_with_413_before_it_is_read(server, path, kind):
    declared = 64 * MIB                                  # announced; only the first 64 KiB are ever sent
    status, body = raw_post(server.port, path, {"Content-Type": kind, "Content-Length": str(declared)},
                            b"x" * 65536)
    assert (status, json.loads(body)) == (413, {"error": f"body of {declared} bytes; at most 65536 on this route"})

    # chunked, so no length is declared: the server reads up to the cap and answers, not waiting for the end
    chunk = b"10000\r\n" + b"x" * 65536 + b"\r\n"
    status, body = raw_post(server.port, path, {"Content-Type": kind, "Transfer-Encoding": "chunked"}, chunk * 2)
    assert (status, json.loads(body)) == (413, {"error": "body over 65536 bytes on this route"})


def test_validation_errors_are_one_shape_and_never_echo_the_input(server):
    secret = "hunter2-" * 20
    r = requests.post(server.url + "/v1/auth/login", json={"username": "SNEAKY" * 20, "password": secret}, timeout=10)
    assert r.status_code == 422
    assert r.json() == {"error": "username: String should have at most 64 characters"}
    assert "SNEAKY" not in r.text and "hunter2" not in r.text
    r = requests.post(server.url + "/v1/auth/login", json={"password": secret}, timeout=10)
    assert (r.status_code, r.json()) == (422, {"error": "username: Field required"})
    r = requests.post(server.url + "/v1/auth/login", data=b'{"username": "SNEAKY", "password": ', timeout=10,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and list(r.json()) == ["error"] and "SNEAKY" not in r.text
    r = requests.get(server.url + "/v1/no-such-route", timeout=10)
    assert (r.status_code, r.json()) == (404, {"error": "Not Found"})


def test_deeply_nested_json_is_refused_with_400_on_every_json_route(server, store):
    unit = enrol_unit(server.url, store)
    for path in (paths.READS, paths.HEARTBEAT):
        headers = {"Content-Type": "application/json",
                   **signing.sign_headers(unit.key, unit.unit_id, "POST", path, DEEP)}
        r = requests.post(server.url + path, data=DEEP, headers=headers, timeout=10)
        assert r.status_code == 400 and "nested deeper than" in r.json()["error"], (path, r.text)
    for path in (paths.ENROL, "/v1/auth/login", "/v1/search", "/v1/hotlist/entries", "/v1/holds"):
        r = requests.post(server.url + path, data=DEEP, headers={"Content-Type": "application/json"}, timeout=10)
        assert r.status_code == 400 and r.json() == {"error": "body: JSON nested deeper than 32 levels"}, (path, r.text)
    # a body nested within the limit is still parsed by the route (and refused there for what it is)
    r = requests.post(server.url + paths.ENROL, data=b"[[[]]]", timeout=10)
    assert r.status_code == 400 and "token, unit_id, public_key" in r.json()["error"]


def test_failed_logins_from_one_address_are_throttled_and_lock_no_one_else_out(policy):
    """Five wrong passwords for each of three accounts from one address (what once locked all three
    for 15 minutes): past the address's burst it gets 429 without a hash, and each officer still logs
    in from another address."""
    names = ["cmdr.ortiz", "sgt.kim", "ofc.lee"]
    for name in names:
        policy.add_user(name, "officer")
    answers = [policy.login(name, "not the password").status_code for _ in range(5) for name in names]
    assert answers[:ADDRESS_BURST] == [401] * ADDRESS_BURST
    assert set(answers[ADDRESS_BURST:]) == {429}
    throttled = policy.login(names[0], "not the password")
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) >= 1
    for name in names:
        assert policy.login(name, address="127.0.0.9").status_code == 200, name
    assert policy.audit_rows("lockout") == []             # the throttle bit before any lock-out


def test_concurrent_failed_logins_from_one_address_get_no_more_than_its_burst(policy):
    """Thirty wrong passwords at once from one address: exactly the burst is hashed and refused with 401,
    the rest get 429 before any hash (the token is taken before hashing, not after)."""
    def attempt(i: int) -> int:
        return policy.login(f"guess.{i}", "not the password").status_code
    with ThreadPoolExecutor(30) as pool:
        statuses = list(pool.map(attempt, range(30)))
    assert sorted(statuses) == [401] * ADDRESS_BURST + [429] * (30 - ADDRESS_BURST)
    assert policy.login("ofc.none", address="127.0.0.5").status_code == 401      # another address: not throttled


def test_password_hashing_runs_at_most_max_hashing_at_once(store):
    slow = FAST.__class__(argon2_time_cost=4, argon2_memory_kib=16 * 1024, argon2_parallelism=1)
    app = create_app(store.engine, store.keys, Limits(), slow)
    guard = app.state.login_guard = LoginGuard(max_hashing=2)
    live = LiveServer(app)
    try:
        addresses = [f"127.0.2.{i}" for i in range(1, 13)]

        def attempt(address: str) -> int:
            with session_from(address) as http:
                return http.post(live.url + "/v1/auth/login", json={"username": "nobody", "password": "x" * 12},
                                 timeout=60).status_code
        with ThreadPoolExecutor(len(addresses)) as pool:
            statuses = list(pool.map(attempt, addresses))
        assert statuses == [401] * len(addresses)
        assert guard.peak_hashing == 2                   # they did overlap, and never more than two at once

        guard.hash_wait_s = 0.01                         # a login that cannot get a slot at once: told to retry
        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(attempt, [f"127.0.3.{i}" for i in range(1, 7)]))
        assert 503 in statuses and 401 in statuses and guard.peak_hashing == 2
    finally:
        live.stop()
