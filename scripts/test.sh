#!/usr/bin/env bash
# Set up a virtual environment with both roles (unit and central) and the test tools, then run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check --upgrade pip >/dev/null
.venv/bin/pip install -q --disable-pip-version-check -e '.[unit,central,test]'
exec .venv/bin/python -m pytest -q "$@"
