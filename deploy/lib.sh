# Shared helpers for the deploy scripts (sourced, not run).
# Everything the scripts create lives under $YOUHU_RUN_DIR (default: <repo>/.run, git-ignored).
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="${YOUHU_RUN_DIR:-$REPO_DIR/.run}"
mkdir -p "$RUN_DIR"

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# A free TCP port on loopback. The kernel picks it; a race with another process is possible
# but harmless: the service then fails to bind and the start is retried by the caller.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

port_open() {  # port_open PORT
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root for: $*"; fi
}

# Install Debian packages that are missing. `apt-get update` runs once per machine boot
# (a fresh machine's package lists can be empty or stale).
apt_ensure() {  # apt_ensure PKG...
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  local stamp=/tmp/.youhu-apt-updated
  if [ ! -f "$stamp" ]; then as_root apt-get update -qq && touch "$stamp"; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}
