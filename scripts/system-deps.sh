#!/usr/bin/env bash
# System packages the tests use. Installed when missing and we are root; otherwise the tests that
# need them skip with the reason (and fail in CI, where CI=true).
set -euo pipefail
MISSING=()
# need BINARY DEBIAN-PACKAGE [EXTRA-DIR-TO-SEARCH]
need() {
  if command -v "$1" >/dev/null 2>&1; then return; fi
  if [ -n "${3:-}" ] && compgen -G "$3/$1" >/dev/null; then return; fi
  MISSING+=("$2")
}
need initdb postgresql "/usr/lib/postgresql/*/bin"
need prometheus prometheus
need dockerd docker.io
need debootstrap debootstrap
need espeak-ng espeak-ng
need sox sox
need shellcheck shellcheck
need openssl openssl

if [ "${#MISSING[@]}" -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "note: not root: missing system packages ${MISSING[*]} (tests that need them will skip)" >&2
  exit 0
fi
echo "==> apt-get install ${MISSING[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${MISSING[@]}" >/dev/null
