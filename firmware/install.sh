#!/usr/bin/env bash
# firmware/install.sh - put the unit software onto a Raspberry Pi OS (bookworm) system. Idempotent.
#
#   sudo firmware/install.sh                  # on the Pi, from a checkout or an unpacked release
#   firmware/install.sh --prefix /mnt/img     # into an image or a throwaway root (no apt, no systemctl start)
#
# What it does (each step only if not already done):
#   1. apt packages: python3-venv python3-picamera2 python3-lgpio (skipped with --prefix unless --apt)
#   2. the service user `alpr` (system, no login) in the video and gpio groups
#   3. directories: /etc/alpr-unit (root:alpr 0750), /etc/alpr-unit/identity (root 0700),
#      /var/lib/alpr-unit (alpr 0750), /opt/alpr/slots
#   4. a venv at /opt/alpr/venv with --system-site-packages (picamera2 and lgpio come from apt) and the
#      unit's Python dependencies from setup.cfg, what `pip install '.[unit]'` would pull (the bare
#      requirements and the `unit` extra; numpy kept < 2: firmware/constraints-pi.txt)
#   5. the code into slot a (/opt/alpr/slots/a/lib, current -> slots/a) - first install only; later
#      versions arrive as signed bundles (alpr-unit update apply)
#   6. /usr/local/bin/alpr-unit and alpr-provision
#   7. systemd: alpr-unit.service, alpr-unit-update-check.service, hardware watchdog and journald limits;
#      both services enabled (started once provisioned: alpr-provision ... then systemctl start alpr-unit)
#
# With --prefix, users are made with `useradd --prefix` in the target's databases and owners set by
# number from them; systemd units are enabled with `systemctl --root`. Commands can be replaced for
# tests and image builds through the environment: APT_GET, SYSTEMCTL, USERADD, USERMOD, GETENT, CHOWN,
# PYTHON, ALPR_PIP (the pip command), ALPR_VENV_FLAGS.
set -euo pipefail

PREFIX=/
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DO_APT=auto
SVC_USER=alpr

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="$2"; shift 2 ;;
    --prefix=*) PREFIX="${1#*=}"; shift ;;
    --source) SRC="$2"; shift 2 ;;
    --apt) DO_APT=yes; shift ;;
    --no-apt) DO_APT=no; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

PREFIX="${PREFIX%/}"
LIVE=no
[ -z "$PREFIX" ] && LIVE=yes
R="$PREFIX"                       # R/etc/... is /etc/... on a live system
[ "$DO_APT" = auto ] && DO_APT=$LIVE
if [ "$LIVE" = yes ]; then TARGET=(); else TARGET=(--prefix "$PREFIX"); fi

APT_GET=${APT_GET:-apt-get}
SYSTEMCTL=${SYSTEMCTL:-systemctl}
USERADD=${USERADD:-useradd}
USERMOD=${USERMOD:-usermod}
GETENT=${GETENT:-getent}
CHOWN=${CHOWN:-chown}
PYTHON=${PYTHON:-python3}
ALPR_VENV_FLAGS=${ALPR_VENV_FLAGS:-}

say() { echo "install.sh: $*"; }
die() { echo "install.sh: $*" >&2; exit 1; }
changed=0
did() { say "$*"; changed=$((changed + 1)); }

[ -f "$SRC/setup.cfg" ] && [ -d "$SRC/unit" ] || die "$SRC is not the software's source tree (no setup.cfg, unit/)"
if [ "$LIVE" = yes ]; then
  [ "$(id -u)" = 0 ] || die "run as root (sudo $0)"
  if ! grep -q 'VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null; then
    say "warning: not Raspberry Pi OS / Debian bookworm; continuing"
  fi
fi

# 1. apt ---------------------------------------------------------------------------------------------
if [ "$DO_APT" = yes ]; then
  APT_PACKAGES=(python3-venv python3-picamera2 python3-lgpio)
  if ! $APT_GET install -y --no-install-recommends "${APT_PACKAGES[@]}"; then
    $APT_GET update && $APT_GET install -y --no-install-recommends "${APT_PACKAGES[@]}"
  fi
fi

# 2. the service user --------------------------------------------------------------------------------
# Users and groups are looked up in the target's own databases (R/etc/passwd with --prefix), and owners
# are set by number, so an image built elsewhere gets the target's ids.
lookup() {   # lookup passwd|group NAME
  if [ "$LIVE" = yes ]; then $GETENT "$1" "$2"; else grep -s "^$2:" "$R/etc/$1"; fi
}
if ! lookup passwd "$SVC_USER" >/dev/null 2>&1; then
  $USERADD "${TARGET[@]}" --system --user-group --home-dir /var/lib/alpr-unit --no-create-home \
           --shell /usr/sbin/nologin --comment "ALPR unit service" "$SVC_USER"
  did "made user $SVC_USER"
fi
for g in video gpio; do
  if line=$(lookup group "$g" 2>/dev/null) && [ -n "$line" ]; then
    case ",$(echo "$line" | cut -d: -f4)," in
      *",$SVC_USER,"*) ;;
      *) $USERMOD "${TARGET[@]}" -a -G "$g" "$SVC_USER"; did "added $SVC_USER to group $g" ;;
    esac
  fi
done
ids() {      # ids USER:GROUP -> UID:GID in the target
  local u=${1%%:*} g=${1##*:} uid=0 gid=0
  [ "$u" = root ] || uid=$(lookup passwd "$u" | cut -d: -f3)
  [ "$g" = root ] || gid=$(lookup group "$g" | cut -d: -f3)
  [ -n "$uid" ] && [ -n "$gid" ] || die "no user/group $1 in the target"
  echo "$uid:$gid"
}

# 3. directories -------------------------------------------------------------------------------------
mkdirp() {   # mkdirp MODE OWNER:GROUP DIR
  if [ ! -d "$3" ]; then mkdir -p "$3"; did "made $3"; fi
  chmod "$1" "$3"
  $CHOWN "$(ids "$2")" "$3"
}
mkdirp 0755 root:root "$R/opt/alpr"
mkdirp 0755 root:root "$R/opt/alpr/slots"
mkdirp 0750 "root:$SVC_USER" "$R/etc/alpr-unit"
mkdirp 0700 root:root "$R/etc/alpr-unit/identity"
mkdirp 0750 "$SVC_USER:$SVC_USER" "$R/var/lib/alpr-unit"

# 4. venv and Python dependencies --------------------------------------------------------------------
VENV="$R/opt/alpr/venv"
if [ ! -x "$VENV/bin/python" ]; then
  # shellcheck disable=SC2086
  "$PYTHON" -m venv --system-site-packages $ALPR_VENV_FLAGS "$VENV"
  did "made venv $VENV (with system site packages: picamera2, lgpio from apt)"
fi
REQS="$VENV/alpr-requirements.txt"
"$PYTHON" - "$SRC/setup.cfg" > "$REQS.new" <<'PY'
import configparser, sys
cp = configparser.ConfigParser()
cp.read(sys.argv[1])
for section, key in (("options", "install_requires"), ("options.extras_require", "unit")):
    for line in cp.get(section, key).splitlines():
        if line.strip():
            print(line.strip())
PY
cat "$SRC/firmware/constraints-pi.txt" >> "$REQS.new"
if [ -f "$REQS" ] && cmp -s "$REQS" "$REQS.new"; then
  rm -f "$REQS.new"
else
  PIP=${ALPR_PIP:-"$VENV/bin/python -m pip"}
  # shellcheck disable=SC2086
  $PIP install --disable-pip-version-check --requirement "$REQS.new" --constraint "$SRC/firmware/constraints-pi.txt"
  mv "$REQS.new" "$REQS"
  did "installed Python dependencies into $VENV"
fi

# 5. the code: slot a, first install only --------------------------------------------------------------
if [ ! -e "$R/opt/alpr/current" ] && [ ! -L "$R/opt/alpr/current" ]; then
  VERSION=$("$PYTHON" -c 'import configparser,sys; c=configparser.ConfigParser(); c.read(sys.argv[1]); print(c.get("metadata","version"))' "$SRC/setup.cfg")
  STAGE="$R/opt/alpr/slots/.a.install-$$"
  rm -rf "$STAGE"
  mkdir -p "$STAGE/lib"
  (cd "$SRC" && tar --exclude=__pycache__ --exclude='*.pyc' --exclude=models/training -cf - unit wire models provisioning) \
    | tar -C "$STAGE/lib" -xf -
  printf '{\n "version": "%s",\n "installed_at": "%s",\n "source": "install.sh"\n}\n' \
    "$VERSION" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$STAGE/slot.json"
  rm -rf "$R/opt/alpr/slots/a"
  mv "$STAGE" "$R/opt/alpr/slots/a"
  ln -sfn slots/a "$R/opt/alpr/current"
  did "installed version $VERSION into slot a (current -> slots/a)"
else
  say "kept the installed software ($(readlink "$R/opt/alpr/current")); new versions come as signed bundles: alpr-unit update apply"
fi

# 6. commands ------------------------------------------------------------------------------------------
put() {   # put MODE FILE < content: write only when different
  local tmp
  tmp=$(mktemp)
  cat > "$tmp"
  if [ -f "$2" ] && cmp -s "$tmp" "$2"; then rm -f "$tmp"; chmod "$1" "$2"; return; fi
  mkdir -p "$(dirname "$2")"
  install -m "$1" "$tmp" "$2"
  rm -f "$tmp"
  did "wrote $2"
}
for cmd in "alpr-unit unit.cli" "alpr-provision provisioning.cli"; do
  set -- $cmd
  put 0755 "$R/usr/local/bin/$1" <<SH
#!/bin/sh
# $1 from the running software slot (/opt/alpr/current); written by firmware/install.sh
PYTHONPATH=/opt/alpr/current/lib PYTHONDONTWRITEBYTECODE=1 exec /opt/alpr/venv/bin/python -m $2 "\$@"
SH
done

# 7. systemd --------------------------------------------------------------------------------------------
put 0644 "$R/etc/systemd/system/alpr-unit.service" < "$SRC/firmware/systemd/alpr-unit.service"
put 0644 "$R/etc/systemd/system/alpr-unit-update-check.service" < "$SRC/firmware/systemd/alpr-unit-update-check.service"
put 0644 "$R/etc/systemd/system.conf.d/50-alpr-watchdog.conf" < "$SRC/firmware/systemd/50-alpr-watchdog.conf"
put 0644 "$R/etc/systemd/journald.conf.d/50-alpr-journald.conf" < "$SRC/firmware/systemd/50-alpr-journald.conf"
if [ "$LIVE" = yes ]; then
  $SYSTEMCTL daemon-reload
  $SYSTEMCTL enable alpr-unit.service alpr-unit-update-check.service
  if [ "$changed" -gt 0 ]; then
    $SYSTEMCTL daemon-reexec          # the hardware watchdog setting takes effect
    $SYSTEMCTL restart systemd-journald
  fi
  [ -e /dev/watchdog ] || say "warning: no /dev/watchdog: enable it with dtparam=watchdog=on in /boot/firmware/config.txt"
else
  $SYSTEMCTL --root="$PREFIX" enable alpr-unit.service alpr-unit-update-check.service
fi

if [ "$changed" -eq 0 ]; then
  say "nothing to change: already installed"
else
  say "done ($changed changes). Next: alpr-provision init; alpr-provision enroll ...; alpr-provision site ...;"
  say "alpr-provision selftest; then systemctl start alpr-unit"
fi
