# Shared helpers for the scripts in this folder (sourced, not run).

# Installs the system packages the build and the tests need, when they are missing and we can.
ensure_system_packages() {
  local missing=()
  command -v fusermount3 >/dev/null 2>&1 || missing+=(fuse3)
  pkg-config --exists fuse3 2>/dev/null || missing+=(libfuse3-dev)
  command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
  command -v rclone >/dev/null 2>&1 || missing+=(rclone)
  command -v bindfs >/dev/null 2>&1 || missing+=(bindfs)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  if [ ${#missing[@]} -eq 0 ]; then return 0; fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "installing system packages: ${missing[*]}" >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Starts cells-testserver in the background on a free port; sets SERVER_URL and SERVER_PID.
# Usage: start_testserver DATA_DIR [extra flags...]
start_testserver() {
  local data=$1; shift
  local out; out=$(mktemp)
  "$TESTSERVER_BIN" --listen 127.0.0.1:0 --data "$data" --user alice:alice-password \
    --token alice:alice-token "$@" >"$out" 2>"$out.err" &
  SERVER_PID=$!
  local i=0
  while ! grep -q '^listening on ' "$out"; do
    i=$((i + 1))
    if [ $i -gt 300 ] || ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "cells-testserver did not start:" >&2; cat "$out.err" >&2; return 1
    fi
    sleep 0.1
  done
  SERVER_URL=$(sed -n 's/^listening on //p' "$out" | head -n1)
}
