#!/usr/bin/env bash
# The inspector app (/m/): npm ci (package-lock.json) + tsc + vite build → web/static/mobile/.
# Idempotent (make mobile, make demo, make test, the browser tests): npm packages are reinstalled
# only when package-lock.json changed, and the build is skipped while its inputs are unchanged.
# Run time needs no network: everything the app loads is in the build output (no CDN).
source "$(dirname "$0")/../../deploy/lib.sh"

APP="$REPO_DIR/web/mobile"
OUT="$REPO_DIR/web/static/mobile"

command -v npm >/dev/null || apt_ensure nodejs npm

lock_sum="$(sha256sum "$APP/package-lock.json" | cut -d' ' -f1)"
stamp_deps="$APP/node_modules/.youhu-lock.sha256"
if [ ! -f "$stamp_deps" ] || [ "$(cat "$stamp_deps")" != "$lock_sum" ]; then
  log "installing the inspector app's npm packages (npm ci)"
  (cd "$APP" && npm ci --no-audit --no-fund --loglevel=error >&2)
  echo "$lock_sum" > "$stamp_deps"
fi

src_sum="$(cd "$APP" && find src public index.html package.json package-lock.json tsconfig.json vite.config.ts \
  -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
stamp_build="$OUT/.youhu-build.sha256"
if [ -f "$stamp_build" ] && [ "$(cat "$stamp_build")" = "$src_sum" ] && [ -f "$OUT/index.html" ]; then
  exit 0
fi
log "building the inspector app into ${OUT#"$REPO_DIR"/}"
(cd "$APP" && npx --no-install tsc --noEmit -p . >&2 && npx --no-install vite build --logLevel warn >&2)
echo "$src_sum" > "$stamp_build"
