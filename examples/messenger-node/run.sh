#!/usr/bin/env bash
# Runs the messenger example: installs its pinned dependency (npm ci), starts messenger.mjs,
# then `bankgate demo` with the demo's notification events sent to it (the demo's gateway on
# BANKGATE_DEMO_LISTEN, whose JWKS the messenger trusts), and checks that the messenger told
# its user of the new balance and of the unusual payment. Prints what the messenger said;
# exits non-zero if it said neither.
#
# The demo's gateway listens on 127.0.0.1:8181 and the messenger on 127.0.0.1:8099 (set
# MESSENGER_DEMO_LISTEN / MESSENGER_LISTEN otherwise); the sandbox banks on 8091-8095.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
gateway_listen="${MESSENGER_DEMO_LISTEN:-127.0.0.1:8181}"
messenger_listen="${MESSENGER_LISTEN:-127.0.0.1:8099}"

(cd "$here" && npm ci --no-audit --no-fund --silent)
(cd "$root" && cargo build --locked --quiet --bin bankgate)
binary="${CARGO_TARGET_DIR:-$root/target}/debug/bankgate"

told="$(mktemp)"
(cd "$here" && exec env BANKGATE_URL="http://$gateway_listen" MESSENGER_LISTEN="$messenger_listen" \
    node messenger.mjs) >"$told" 2>/dev/null &
messenger=$!
trap 'kill "$messenger" 2>/dev/null || true; wait "$messenger" 2>/dev/null || true; rm -f "$told"' EXIT
for _ in $(seq 1 50); do
    node -e 'fetch(process.argv[1]).then(() => process.exit(0), () => process.exit(1))' \
        "http://$messenger_listen/" && break
    sleep 0.2
done

(cd "$root" && env -u DATABASE_URL BANKGATE_DEMO_LISTEN="$gateway_listen" \
    BANKGATE_DEMO_WEBHOOK_URL="http://$messenger_listen/events" "$binary" demo >/dev/null)

echo "The messenger told its user:"
cat "$told"
grep -q '^Balance of ' "$told" || { echo "no balance message" >&2; exit 1; }
grep -q '^Fraud alert ' "$told" || { echo "no fraud alert" >&2; exit 1; }
