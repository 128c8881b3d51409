#!/usr/bin/env bash
# Holds the running gateway to its OpenAPI description: starts `bankgate serve` on the embedded
# default (in-memory store, bundled sandbox banks approving at once), then runs schemathesis
# against GET /openapi.json with hooks.py supplying each audience's token (a platform's
# DPoP-bound tokens with a fresh proof per request, compliance and bank tokens, the operator's).
# Every operation the document describes, bounded per operation; fails on any server error or
# any answer the document does not describe (status, content type, headers, body schema).
#
# BANKGATE_SCHEMATHESIS_LISTEN sets the gateway's address (default 127.0.0.1:8080); the
# sandbox banks listen on their own ports (8091-8095), which must be free, or on those ports
# plus SCHEMATHESIS_PORT_OFFSET (the bundled manifests copied with their ports moved), to run
# beside another gateway.
# SCHEMATHESIS_MAX_EXAMPLES bounds the cases per operation and phase (default 50).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
listen="${BANKGATE_SCHEMATHESIS_LISTEN:-127.0.0.1:8080}"
max_examples="${SCHEMATHESIS_MAX_EXAMPLES:-50}"
target="${CARGO_TARGET_DIR:-$root/target}"
venv="$target/schemathesis-venv"

# The pinned tools, in a virtual environment under target/ (installed again when the pins change).
if ! cmp -s "$here/requirements.txt" "$venv/requirements.txt" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$venv/requirements.txt"
fi

(cd "$root" && cargo build --locked --quiet --bin bankgate)
admin_token="$("$venv/bin/python" -c 'import secrets; print(secrets.token_urlsafe(32))')"
work="$(mktemp -d)"
log="$work/gateway.log"
config="$here/bankgate.toml"
offset="${SCHEMATHESIS_PORT_OFFSET:-0}"
if [[ $offset != 0 ]]; then
    mkdir "$work/adapters"
    "$venv/bin/python" - "$root/adapters" "$work/adapters" "$offset" <<'PY'
import pathlib, re, sys
source, target, offset = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3])
for manifest in source.glob("*.toml"):
    text = re.sub(r"127\.0\.0\.1:(\d+)", lambda m: f"127.0.0.1:{int(m[1]) + offset}", manifest.read_text())
    text = re.sub(r"(?m)^port = (\d+)", lambda m: f"port = {int(m[1]) + offset}", text)
    (target / manifest.name).write_text(text)
PY
    { cat "$config"; echo "adapters_dir = \"$work/adapters\""; } >"$work/bankgate.toml"
    config="$work/bankgate.toml"
fi
(cd "$root" && exec env -u DATABASE_URL \
    BANKGATE_CONFIG="$config" BANKGATE_LISTEN="$listen" \
    BANKGATE_ADMIN_TOKEN="$admin_token" BANKGATE_LOG_FORMAT=json \
    "$target/debug/bankgate" serve) >"$log" 2>&1 &
gateway=$!
stop() {
    kill "$gateway" 2>/dev/null || true
    wait "$gateway" 2>/dev/null || true
    rm -rf "$work"
}
failed() {
    echo "schemathesis run failed; the gateway's log (last lines):" >&2
    tail -n 40 "$log" >&2
}
trap stop EXIT
trap failed ERR

ready() {
    "$venv/bin/python" -c 'import sys, urllib.request; sys.exit(0 if urllib.request.urlopen(sys.argv[1]).status == 200 else 1)' \
        "http://$listen/readyz" 2>/dev/null
}
for _ in $(seq 1 100); do
    ready && break
    kill -0 "$gateway" 2>/dev/null || { echo "the gateway exited" >&2; false; }
    sleep 0.2
done
ready || { echo "the gateway at $listen is not ready" >&2; false; }

# Run from target/ so that schemathesis and Hypothesis keep their caches there.
report="$target/schemathesis"
rm -rf "$report"
mkdir -p "$report"
(cd "$report" && env PYTHONPATH="$here" PYTHONDONTWRITEBYTECODE=1 SCHEMATHESIS_HOOKS=hooks \
    BANKGATE_URL="http://$listen" BANKGATE_ADMIN_TOKEN="$admin_token" \
    "$venv/bin/schemathesis" run "http://$listen/openapi.json" \
    --checks "${SCHEMATHESIS_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,unsupported_method}" \
    --phases examples,coverage,fuzzing \
    --max-examples "$max_examples" \
    --seed 15 \
    --workers 1 \
    --suppress-health-check all \
    --report junit --report-dir "$report" \
    --no-color)
