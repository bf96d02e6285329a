# Helpers shared by the scripts; source it after setting LOG_NAME:
#   LOG_NAME=stack; . "$ROOT/scripts/lib/common.sh"

log() { printf '[%s] %s\n' "${LOG_NAME:-slotguard}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# port_open PORT: something accepts connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# require_free_port PORT WHAT VARIABLE: stop with an error naming the variable
# that moves WHAT to another port, instead of failing later and less clearly.
require_free_port() {
  if port_open "$1"; then
    die "port $1 (for $2) is already in use; stop what holds it or set $3"
  fi
}
