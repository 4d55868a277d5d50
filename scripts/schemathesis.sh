#!/usr/bin/env bash
# Property-based run of schemathesis against the example app, on a free
# loopback port with a fresh seeded SQLite database and a known token.
#
# The OpenAPI document is the one the example app's extension builds
# (EmailCancel.openapi_spec). Every check runs (--checks all): no 5xx, every
# status, header, content type and body as documented, invalid input
# rejected, unsupported methods answered 405 with Allow, and requests
# without or with wrong credentials answered 401 (ignored_auth). No check is
# excluded. positive_data_acceptance counts 400 as an accepted answer (see
# scripts/schemathesis.toml). The stateful phase is off: the document has no
# links, so use_after_free and ensure_resource_availability have nothing to
# follow, and object_level_authorization needs identities not configured here.
#
# Expected warnings, not failures: "mostly rejected generated data" (random
# well-formed ids name no request: 400 No cancellable messages found) and,
# in the passes without valid credentials, "returned only 401/403".
#
# Three passes: with the valid token, with a wrong one, and without any; each
# must end without a failure.
#
# Usage: scripts/schemathesis.sh [extra schemathesis options]
# PYTHON (default .venv/bin/python) must have the openapi extra and schemathesis.
# SCHEMATHESIS_SERVER_LOG, when set, names a file to keep the app's log in.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-.venv/bin/python}"
EXTRA_ARGS=("$@")
SCHEMATHESIS="$(cd "$(dirname "$PYTHON")" && pwd)/schemathesis"
root="$(pwd)"
work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ -n "${SCHEMATHESIS_SERVER_LOG:-}" && -f "$work/server.log" ]]; then
        cp "$work/server.log" "$SCHEMATHESIS_SERVER_LOG"
    fi
    rm -rf "$work"
}
trap cleanup EXIT

export EXAMPLE_TOKEN="schemathesis-$RANDOM$RANDOM"
export EXAMPLE_DATABASE_URL="sqlite:///$work/queue.db"
export EXAMPLE_OUTBOX="$work/outbox.log"
EXAMPLE_PORT="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export EXAMPLE_PORT

# The document, as the example app's own extension describes it.
"$PYTHON" - "$work/openapi.json" <<'PY'
import json
import runpy
import sys

from flask_email_cancel import EmailCancel

example = runpy.run_path("examples/app.py", run_name="example_app")
app = example["create_app"]()
with open(sys.argv[1], "w", encoding="utf-8") as file:
    json.dump(EmailCancel.state(app).extension.openapi_spec(app), file, indent=2)
PY

"$PYTHON" examples/app.py >"$work/server.log" 2>&1 &
server_pid=$!
base="http://127.0.0.1:$EXAMPLE_PORT"
for _ in $(seq 100); do
    if "$PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
        "$base/queue" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        cat "$work/server.log" >&2
        echo "the example app did not start" >&2
        exit 1
    fi
    sleep 0.2
done

status=0
run() {
    local label="$1"
    shift
    echo "=== schemathesis: $label ==="
    # Run from the scratch folder, where schemathesis keeps its own cache.
    (cd "$work" && "$SCHEMATHESIS" --config-file "$root/scripts/schemathesis.toml" \
        run "$work/openapi.json" \
        --url "$base" \
        --checks all \
        --phases examples,coverage,fuzzing \
        --seed "${SCHEMATHESIS_SEED:-20260501}" \
        --generation-database none \
        --request-timeout 10 \
        --workers 2 \
        --no-color \
        "$@") || status=$?
}

# With valid credentials first: the examples phase cancels the seeded request,
# so a 200 is seen and ignored_auth probes it without and with wrong credentials.
run "valid credentials" --header "X-VoltMX-Authorization: $EXAMPLE_TOKEN" \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-200}" "${EXTRA_ARGS[@]}"
run "wrong credentials" --header "X-VoltMX-Authorization: not-$EXAMPLE_TOKEN" \
    --max-examples 50 "${EXTRA_ARGS[@]}"
run "no credentials" --max-examples 50 "${EXTRA_ARGS[@]}"

if grep -q "Traceback" "$work/server.log"; then
    echo "the example app logged a traceback:" >&2
    cat "$work/server.log" >&2
    status=1
fi
exit "$status"
