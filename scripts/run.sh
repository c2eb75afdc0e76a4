#!/usr/bin/env bash
# `make run`: builds and starts every service of the suite, each as its own
# process on its own SQLite file under ./data, and the gateway in front of
# them, in the foreground. Ctrl-C or SIGTERM stops them all. Set CRM_<SERVICE>__DATABASE_URL=postgres://... to
# run a service against PostgreSQL instead.
set -euo pipefail
cd "$(dirname "$0")/.."

mkdir -p data
# Local signing secrets, made once, never committed (data/ is ignored): one
# for users' tokens (`make token`), one the services sign their identity with.
for secret in dev-secret dev-service-secret; do
    if [[ ! -s "data/$secret" ]]; then
        head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "data/$secret"
    fi
done
export CRM_AUTH__HS256_SECRET="${CRM_AUTH__HS256_SECRET:-$(cat data/dev-secret)}"
export CRM_AUTH__SERVICE_SECRET="${CRM_AUTH__SERVICE_SECRET:-$(cat data/dev-service-secret)}"
export CRM_PAGING_SECRET="${CRM_PAGING_SECRET:-$CRM_AUTH__HS256_SECRET}"

cargo build --bins

SERVICES=(contacts sales marketing support reporting gateway)
pids=()
stop() {
    trap - INT TERM EXIT
    if ((${#pids[@]})); then
        kill -TERM "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
    fi
}
trap stop INT TERM EXIT

for service in "${SERVICES[@]}"; do
    "target/debug/$service" &
    pids+=($!)
done

# Where marketing's mail goes (never print the URL: it may hold a password).
if [[ -n "${CRM_MARKETING__SMTP_URL:-}" ]]; then
    marketing_mail="mail to the SMTP relay in CRM_MARKETING__SMTP_URL"
else
    marketing_mail="mail as .eml files into ${CRM_MARKETING__MAIL_DIR:-data/mail}/ (no CRM_MARKETING__SMTP_URL)"
fi

cat <<INFO

The suite is starting:
  gateway    127.0.0.1:50051   every client calls here (gRPC and gRPC-Web)
             127.0.0.1:9464    /metrics (Prometheus text)
  contacts   127.0.0.1:50061   (data/contacts.db), reached through the gateway
  sales      127.0.0.1:50062   (data/sales.db), reached through the gateway
  marketing  127.0.0.1:50063   (data/marketing.db), reached through the gateway
                               $marketing_mail
  support    127.0.0.1:50064   (data/support.db), reached through the gateway
  reporting  127.0.0.1:50065   (data/reporting.db), reached through the gateway
                               follows the feeds of contacts, sales, marketing and support

Get a token:   TOKEN=\$(make token TENANT=acme ROLES=admin SUBJECT=ada | tail -1)
Then:          grpcurl -plaintext -H "authorization: Bearer \$TOKEN" 127.0.0.1:50051 list
Stop:          Ctrl-C

INFO

# Stop everything as soon as any one service exits.
wait -n "${pids[@]}" || true
