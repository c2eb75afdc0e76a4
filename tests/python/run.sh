#!/usr/bin/env bash
# End-to-end from another language: generates Python stubs from proto/, starts
# the real contacts, sales, support and gateway binaries on free ports with fresh
# SQLite files, and drives the suite through the gateway as any client would.
# Part of `make test`; `make bench` runs the grpcio import test alone on release
# builds (CRM_PROFILE=release, and the test file's name as the argument).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"

VENV="$ROOT/.ci/.tools/venv"
scripts/python-tools.sh

PROFILE="${CRM_PROFILE:-debug}"
PATTERN="${1:-test_*.py}"
if [[ "$PROFILE" == release ]]; then
    cargo build --quiet --release --bin contacts --bin sales --bin support --bin gateway
else
    cargo build --quiet --bin contacts --bin sales --bin support --bin gateway
fi

GEN=$(mktemp -d)
trap 'rm -rf "$GEN"' EXIT
"$VENV/bin/python" -m grpc_tools.protoc -I proto -I tests/python \
    --python_out="$GEN" --grpc_python_out="$GEN" \
    crm/common/v1/common.proto crm/events/v1/events.proto crm/contacts/v1/contacts.proto \
    crm/sales/v1/sales.proto crm/support/v1/support.proto \
    rpc_status.proto

BIN="$ROOT/target/$PROFILE"
CRM_CONTACTS_BIN="$BIN/contacts" CRM_GATEWAY_BIN="$BIN/gateway" CRM_SALES_BIN="$BIN/sales" CRM_SUPPORT_BIN="$BIN/support" \
    PYTHONPATH="$GEN" \
    "$VENV/bin/python" -m unittest discover -s tests/python -p "$PATTERN" -v
