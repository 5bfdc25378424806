#!/usr/bin/env bash
# The main job on its embedded defaults: a central store on SQLite with its officer console, demo
# accounts (one per role, random passwords printed once, current training) and a hot-list entry for a
# plate in the first demo clip; then a unit replaying the demo clips (hil/clips) into it through the
# real unit service, each read printed as the store stores it, then a summary. Sets up .venv on a fresh
# machine. Everything runs on 127.0.0.1 and is stopped at the end, unless --keep.
#
#   bash scripts/demo.sh            # run, report, stop
#   bash scripts/demo.sh --keep     # ... and keep the store and its console running until Ctrl-C
#   bash scripts/demo.sh --realtime # replay at recorded speed (the unit runs live, as on a Pi)
#   Other options are passed to `python -m hil run` (see docs/hil.md), e.g. --json, or clip folders.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
KEEP=0
ARGS=()
for a in "$@"; do
  case "$a" in
    --keep) KEEP=1 ;;
    *) ARGS+=("$a") ;;
  esac
done

say() { printf '%s\n' "$*"; }

# 1. the virtual environment: made once, reinstalled only when the packaging changed
if [ ! -x .venv/bin/python ]; then
  say "setting up .venv (first run)..."
  "$PY" -m venv .venv
fi
STAMP=.venv/.alpr-demo-installed
WANT=$(cat setup.cfg pyproject.toml | .venv/bin/python -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ] || ! .venv/bin/python -c 'import fastapi, unit.service, central.cli' 2>/dev/null; then
  say "installing the project with both roles (unit and central) into .venv..."
  LOG=.venv/alpr-demo-install.log
  if ! { .venv/bin/pip install -q --disable-pip-version-check --upgrade pip \
         && .venv/bin/pip install -q --disable-pip-version-check -e '.[unit,central]'; } >"$LOG" 2>&1; then
    cat "$LOG" >&2
    say "demo: installing failed (log above, also in $LOG)" >&2
    exit 1
  fi
  echo "$WANT" > "$STAMP"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

# 2. a central store in a work folder, on a free loopback port
WORK=$(mktemp -d "${TMPDIR:-/tmp}/alpr-demo.XXXXXX")
HOME_DIR="$WORK/central"
SERVE_PID=""
cleanup() {
  local rc=$?
  if [ -n "$SERVE_PID" ] && kill -0 "$SERVE_PID" 2>/dev/null; then
    kill -TERM "$SERVE_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVE_PID" 2>/dev/null || true
    wait "$SERVE_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

.venv/bin/alpr-central init --home "$HOME_DIR" >/dev/null
.venv/bin/alpr-central config set --home "$HOME_DIR" time_zone=America/Los_Angeles >/dev/null
SETUP=$(.venv/bin/python -m hil.demo_setup --home "$HOME_DIR")
PORT=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"
.venv/bin/alpr-central serve --home "$HOME_DIR" --host 127.0.0.1 --port "$PORT" --log-level warning \
  >"$WORK/central.log" 2>&1 &
SERVE_PID=$!
.venv/bin/python - "$URL" "$SERVE_PID" <<'EOF'
import os, sys, time, requests
url, pid = sys.argv[1], int(sys.argv[2])
for _ in range(300):
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("the central store did not start")
    try:
        if requests.get(url + "/openapi.json", timeout=1).status_code == 200:
            sys.exit(0)
    except requests.RequestException:
        pass
    time.sleep(0.1)
sys.exit("the central store did not answer within 30 s")
EOF
say "central store: $URL  (SQLite, home $HOME_DIR)"
say "officer console: $URL/   demo accounts (passwords shown only now):"
say "$SETUP"

# 3. enrol a unit with a one-time token, then replay the demo clips through it into the store
TOKEN=$(.venv/bin/alpr-central units enroll-token --home "$HOME_DIR" --site DEMO-GATE --json \
        | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["token"])')
printf '[camera]\ncontext_frame = true\n' > "$WORK/unit.toml"     # a scene frame with each read, for the console
RC=0
.venv/bin/python -m hil run --central-url "$URL" --central-home "$HOME_DIR" --token "$TOKEN" --config "$WORK/unit.toml" \
  --unit-id demo-unit-1 --workdir "$WORK/unit" --show-reads --check "${ARGS[@]+"${ARGS[@]}"}" || RC=$?

say ""
if [ "$KEEP" = 1 ]; then
  say "central store: $URL  (still running; Ctrl-C to stop it)"
  say "  console:  $URL/  log in as demo.officer: Search (purpose + case number) shows the reads, Alerts the"
  say "            hot-list hit; demo.commander or demo.supervisor: Units; demo.auditor: Audit; demo.admin: Users"
  say "  accounts:"
  say "$SETUP"
  say "  public:   $URL/policy   $URL/openapi.json"
  say "  units:    .venv/bin/alpr-central units list --home $HOME_DIR"
  say "  audit:    .venv/bin/alpr-central audit verify --home $HOME_DIR   (the harness's looks at the reads are logged there)"
  wait "$SERVE_PID" || true
else
  say "central store: $URL  (stopped now; run with --keep to use the console at $URL/ afterwards)"
fi
if [ "$RC" = 0 ]; then say "demo: every vehicle read exactly once"; else say "demo: see the report above (exit $RC)"; fi
exit "$RC"
