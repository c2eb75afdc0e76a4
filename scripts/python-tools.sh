#!/usr/bin/env bash
# The Python the tests use, in .ci/.tools/venv: grpcio and friends for the
# Python suite, aiosmtpd for the real SMTP server the marketing tests send
# to (crm_testkit::smtp). Installs what is missing; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="$PWD/.ci/.tools/venv"
if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -c 'import grpc, grpc_tools, psycopg, opentelemetry.proto, aiosmtpd' 2>/dev/null \
    || "$VENV/bin/pip" install --quiet --disable-pip-version-check 'grpcio>=1.60' 'grpcio-tools>=1.60' 'protobuf>=5' \
        'psycopg[binary]>=3.1' 'opentelemetry-proto==1.45.2' 'aiosmtpd>=1.4'
