#!/usr/bin/env bash
# Set up a virtual environment with both roles (unit and central) and the test tools, then run the suite.
# The console's browser tests drive Debian's chromium through Playwright (never a browser download), and the
# camera tests run real GStreamer: both are installed here with apt when missing (quietly; nothing happens
# when they are there).
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
# GStreamer for the camera kinds, an RTSP server for the IP-camera tests, what PyGObject builds against
APT_NEEDS=(gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
           gstreamer1.0-plugins-ugly gstreamer1.0-libav gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
           gir1.2-gst-rtsp-server-1.0 libgirepository1.0-dev libcairo2-dev pkg-config)
missing=()
for pkg in "${APT_NEEDS[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
  else
    echo "test.sh: missing apt packages (the GStreamer tests will be skipped): ${missing[*]}" >&2
  fi
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check --upgrade pip >/dev/null
.venv/bin/pip install -q --disable-pip-version-check -e '.[unit,central,test,gstreamer,jetson,train]'
exec .venv/bin/python -m pytest -q "$@"
