#!/usr/bin/env bash
# Runs the platform example against a real gateway: builds bankgate, starts `bankgate serve` on
# the embedded default (in-memory store, the bundled sandbox banks; bankgate.toml here only
# lets the sandbox banks approve at once, as a user clicking "approve" would), waits for
# /readyz, installs the example's pinned dependencies (npm ci), runs platform.mjs, and stops
# the gateway. Exits non-zero if anything fails; the gateway's log is shown then.
#
# BANKGATE_EXAMPLE_LISTEN sets the gateway's address (default 127.0.0.1:8080); the sandbox
# banks listen on their own ports (8091-8095), which must be free.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
listen="${BANKGATE_EXAMPLE_LISTEN:-127.0.0.1:8080}"

(cd "$here" && npm ci --no-audit --no-fund --silent)
(cd "$root" && cargo build --locked --quiet --bin bankgate)
binary="${CARGO_TARGET_DIR:-$root/target}/debug/bankgate"

admin_token="$(node -e 'console.log(require("crypto").randomBytes(32).toString("base64url"))')"
log="$(mktemp)"
# The embedded default, whatever the environment says: no database, no other configuration.
(cd "$root" && exec env -u DATABASE_URL \
    BANKGATE_CONFIG="$here/bankgate.toml" BANKGATE_LISTEN="$listen" \
    BANKGATE_ADMIN_TOKEN="$admin_token" BANKGATE_LOG_FORMAT=json \
    "$binary" serve) >"$log" 2>&1 &
gateway=$!
stop() {
    kill "$gateway" 2>/dev/null || true
    wait "$gateway" 2>/dev/null || true
}
failed() {
    echo "platform example failed; the gateway's log:" >&2
    tail -n 40 "$log" >&2
}
trap stop EXIT
trap failed ERR

ready() {
    node -e 'fetch(process.argv[1]).then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))' \
        "http://$listen/readyz"
}
for _ in $(seq 1 100); do
    ready && break
    kill -0 "$gateway" 2>/dev/null || { echo "the gateway exited" >&2; false; }
    sleep 0.2
done
ready || { echo "the gateway at $listen is not ready" >&2; false; }

(cd "$here" && BANKGATE_URL="http://$listen" BANKGATE_ADMIN_TOKEN="$admin_token" node platform.mjs)
rm -f "$log"
