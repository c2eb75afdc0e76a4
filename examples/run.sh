#!/usr/bin/env bash
# Tests the client examples against the real suite: installs their npm
# dependencies, starts contacts, sales and the gateway on free ports with fresh
# SQLite files (the gateway allowing one page origin for gRPC-Web), runs the
# Node client's tests and the browser page's tests, and stops the suite on exit.
# Needs node >= 20 and, for the page, chromium (/usr/bin/chromium, or
# CHROMIUM_PATH); under CI=true a missing chromium fails the run.
# CRM_BIN_DIR names a folder of already built contacts, sales and gateway
# binaries to use instead of building target/debug's.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

# No install scripts: none of these packages needs one (esbuild and buf find
# their platform binary among their optional dependencies).
for example in node browser; do
    npm ci --prefix "examples/$example" --ignore-scripts --no-audit --no-fund --loglevel=error
done

BIN="${CRM_BIN_DIR:-}"
if [[ -z "$BIN" ]]; then
    cargo build --quiet --bin contacts --bin sales --bin gateway
    BIN="$ROOT/target/debug"
fi

WORK=$(mktemp -d)
PIDS=()
stop_suite() {
    if ((${#PIDS[@]})); then
        kill -TERM "${PIDS[@]}" 2>/dev/null || true
        # The services drain in-flight calls on SIGTERM; past 15 s, no more waiting.
        for _ in $(seq 150); do
            kill -0 "${PIDS[@]}" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "${PIDS[@]}" 2>/dev/null || true
        wait "${PIDS[@]}" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap stop_suite EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Five distinct free ports, held all at once while they are picked.
read -r CONTACTS SALES GATEWAY METRICS PAGE < <(node -e '
    const net = require("node:net");
    const servers = Array.from({ length: 5 }, () => net.createServer().listen(0, "127.0.0.1"));
    Promise.all(servers.map((s) => new Promise((ok) => s.on("listening", ok)))).then(() => {
        console.log(servers.map((s) => s.address().port).join(" "));
        servers.forEach((s) => s.close());
    });')

export RUST_LOG="${RUST_LOG:-warn}"
export CRM_AUTH__HS256_SECRET="examples-e2e-secret"
export CRM_AUTH__SERVICE_SECRET="examples-e2e-service-secret"
export CRM_PAGING_SECRET="examples-paging"
export CRM_GATEWAY_ADDR="127.0.0.1:$GATEWAY"
export CRM_PAGE_ORIGIN="http://127.0.0.1:$PAGE"

CRM_CONTACTS__LISTEN_ADDR="127.0.0.1:$CONTACTS" \
CRM_CONTACTS__DATABASE_URL="sqlite://$WORK/contacts.db?mode=rwc" \
    "$BIN/contacts" &
PIDS+=($!)
CRM_SALES__LISTEN_ADDR="127.0.0.1:$SALES" \
CRM_SALES__DATABASE_URL="sqlite://$WORK/sales.db?mode=rwc" \
CRM_SALES__CONTACTS_URL="http://127.0.0.1:$CONTACTS" \
    "$BIN/sales" &
PIDS+=($!)
CRM_GATEWAY__LISTEN_ADDR="$CRM_GATEWAY_ADDR" \
CRM_GATEWAY__METRICS_ADDR="127.0.0.1:$METRICS" \
CRM_GATEWAY__UPSTREAMS__CONTACTS__ADDRESSES="http://127.0.0.1:$CONTACTS" \
CRM_GATEWAY__UPSTREAMS__SALES__ADDRESSES="http://127.0.0.1:$SALES" \
CRM_GATEWAY__CORS_ALLOWED_ORIGINS="$CRM_PAGE_ORIGIN" \
    "$BIN/gateway" &
PIDS+=($!)

# Until contacts has migrated and the gateway has seen it healthy: a call
# through the gateway succeeds.
node --input-type=module -e '
    import { connect } from "./examples/node/crm.js";
    import { devToken } from "./examples/dev-token.mjs";
    const secret = process.env.CRM_AUTH__HS256_SECRET;
    const token = devToken({ secret, tenant: "probe", roles: ["admin"], subject: "run.sh" });
    const contacts = connect(process.env.CRM_GATEWAY_ADDR, token, { timeoutMs: 1000 });
    for (const deadline = Date.now() + 60_000; ; await new Promise((ok) => setTimeout(ok, 100))) {
        try { await contacts.listContacts(); break; }
        catch (error) { if (Date.now() > deadline) throw error; }
    }
    contacts.close();'

npm test --prefix examples/node
npm test --prefix examples/browser
