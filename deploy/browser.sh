#!/usr/bin/env bash
# The command center's front end and the browser the end-to-end tests drive.
#   deploy/browser.sh frontend   # npm ci (package-lock.json) + vite build → web/static/center/
#   deploy/browser.sh chromium   # Debian chromium + fonts-noto-cjk; prints the browser's path
#   deploy/browser.sh all        # both
# Idempotent: the build is skipped while the sources and the lock file are unchanged, and the
# npm packages are reinstalled only when package-lock.json changed. Run time needs no network:
# everything the page loads is in the build output (no CDN).
source "$(dirname "$0")/lib.sh"

FRONT="$REPO_DIR/web/frontend"
OUT="$REPO_DIR/web/static/center"

ensure_node() {
  command -v npm >/dev/null || apt_ensure nodejs npm
}

frontend() {
  ensure_node
  local lock_sum stamp_deps="$FRONT/node_modules/.youhu-lock.sha256"
  lock_sum="$(sha256sum "$FRONT/package-lock.json" | cut -d' ' -f1)"
  if [ ! -f "$stamp_deps" ] || [ "$(cat "$stamp_deps")" != "$lock_sum" ]; then
    log "installing the front end's npm packages (npm ci)"
    (cd "$FRONT" && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$lock_sum" > "$stamp_deps"
  fi
  # The build's inputs: sources, configs and the lock file. Same hash → the output is current.
  local src_sum stamp_build="$OUT/.youhu-build.sha256"
  src_sum="$(cd "$FRONT" && find src index.html package.json package-lock.json tsconfig.json vite.config.ts \
    -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
  if [ -f "$stamp_build" ] && [ "$(cat "$stamp_build")" = "$src_sum" ] && [ -f "$OUT/index.html" ]; then
    return 0
  fi
  log "building the command center front end into ${OUT#"$REPO_DIR"/}"
  (cd "$FRONT" && npx --no-install tsc --noEmit -p . >&2 && npx --no-install vite build --logLevel warn >&2)
  echo "$src_sum" > "$stamp_build"
}

ensure_chromium() {
  # Debian's chromium (no browser download: the machines reach only the package registries) and
  # CJK fonts, so screenshots show Chinese text rather than boxes.
  apt_ensure chromium fonts-noto-cjk
  local bin
  bin="$(type -P chromium || echo /usr/bin/chromium)"
  [ -x "$bin" ] || die "chromium not found after installing it"
  echo "$bin"
}

case "${1:-}" in
  frontend) frontend ;;
  chromium) ensure_chromium ;;
  all) frontend; ensure_chromium ;;
  *) echo "usage: $0 frontend|chromium|all" >&2; exit 2 ;;
esac
