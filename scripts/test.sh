#!/usr/bin/env bash
# Set up a virtual environment with both roles (unit and central) and the test tools, then run the suite.
# The console's browser tests drive Debian's chromium through Playwright (never a browser download):
# it is installed here with apt when missing (quietly; nothing happens when it is there).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
  echo "test.sh: installing Debian's chromium for the console's browser tests..." >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
         || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; }; }; then
    echo "test.sh: could not install chromium (the browser tests will fail saying so)" >&2
  fi
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check --upgrade pip >/dev/null
.venv/bin/pip install -q --disable-pip-version-check -e '.[unit,central,test]'
exec .venv/bin/python -m pytest -q "$@"
