#!/usr/bin/env bash
# Checks what we deploy, as CI runs it (~15 s once the tools are in):
#
#   render     `kubectl kustomize` of deploy/base and every deploy/overlays/*
#   validate   every rendered object against the Kubernetes API schemas,
#              strictly (an unknown or misspelt field fails): the oldest
#              version deploy/README.md supports and the newest the pinned
#              kubernetes-validate knows
#   structure  every service has its Deployment, Service, probes, PDB, HPA or
#              replica count, NetworkPolicy and migration step
#              (check_structure.py says which, and why)
#   checkov    security and reliability policies, one run over the rendered
#              overlays (each in a namespace of its own, crm-<overlay>) and
#              the Dockerfile; the skipped checks and why: .checkov.yaml
#   image      hadolint on the Dockerfile, and no workspace member left out of
#              the build context by .dockerignore
#
#   deploy/check.sh               all of the above; exit 1 if any stage fails
#   deploy/check.sh --self-test   proves each stage fails on a bad input (test_check.sh)
#   deploy/check.sh --install-tools   only installs the pinned tools
#   CHECK_STAGES="validate structure" deploy/check.sh   only those stages (and render)
#
# The base is scanned by checkov only through the overlays, which contain all
# of it: its images carry no tag on purpose (each overlay pins its own), so
# checkov's "image tag is fixed" check applies to what is deployed.
#
# Tools: kubectl (with kustomize) on PATH; the PyPI tools pinned in
# requirements-check.txt, installed into .ci/.tools/venv if missing
# (CHECK_VENV overrides the venv).
# The stage functions run through `stage NAME FUNCTION`:
# shellcheck disable=SC2317
set -uo pipefail

DEPLOY=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$DEPLOY")

# deploy/README.md: "Kubernetes 1.30 or newer".
KUBERNETES_OLDEST=1.30.0
KUBERNETES_NEWEST=1.37.0

VENV="${CHECK_VENV:-$ROOT/.ci/.tools/venv}"

ensure_tools() {
    command -v kubectl >/dev/null 2>&1 || { echo "kubectl not found on PATH" >&2; return 1; }
    if [[ ! -x "$VENV/bin/python" ]]; then
        python3 -m venv "$VENV" || return 1
    fi
    # Install only when a pinned version is missing: the venv is shared with
    # the Python end-to-end tests, which add their own packages.
    if ! "$VENV/bin/python" - "$DEPLOY/requirements-check.txt" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version

for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, _, pinned = line.partition("==")
    try:
        if version(name) != pinned:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
EOF
    then
        echo "installing deploy/requirements-check.txt into $VENV"
        # uv installs checkov's hundred-odd dependencies in seconds, pip in
        # over a minute; compiled once, so that each checkov run starts fast.
        "$VENV/bin/pip" install --quiet --disable-pip-version-check \
            "$(sed -nE 's/^(uv==[^ #]+).*/\1/p' "$DEPLOY/requirements-check.txt")" || return 1
        "$VENV/bin/uv" pip install --quiet --compile-bytecode --python "$VENV/bin/python" \
            -r "$DEPLOY/requirements-check.txt" || return 1
    fi
}

case "${1:-}" in
    --self-test) exec bash "$DEPLOY/test_check.sh" ;;
    --install-tools) ensure_tools; exit ;;
    "") ;;
    *) sed -n '2,28p' "${BASH_SOURCE[0]}"; exit 2 ;;
esac

ensure_tools || { echo "FAIL tools"; exit 1; }

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
mkdir -p "$OUT/overlays"
declare -a RESULTS=()
failed=0

STAGES=" ${CHECK_STAGES:-validate structure checkov image} "

stage() { # NAME COMMAND...: run a stage, keep its verdict for the summary
    local name="$1" start rc=0
    shift
    if [[ $name != render && $STAGES != *" $name "* ]]; then
        RESULTS+=("SKIP $name")
        return
    fi
    start=$(date +%s)
    printf '\n--- %s\n' "$name"
    "$@" || rc=$?
    if [[ $rc -eq 0 ]]; then
        RESULTS+=("PASS $name ($(($(date +%s) - start))s)")
    else
        RESULTS+=("FAIL $name ($(($(date +%s) - start))s)")
        failed=1
    fi
}

render() {
    local rc=0 dir name
    kubectl kustomize "$DEPLOY/base" >"$OUT/base.yaml" || rc=1
    for dir in "$DEPLOY"/overlays/*/; do
        name=$(basename "$dir")
        kubectl kustomize "$dir" >"$OUT/overlays/$name.yaml" || rc=1
    done
    [[ $rc -eq 0 ]] && echo "rendered base and overlays: $(basename -s .yaml "$OUT"/overlays/*.yaml | xargs)"
    return "$rc"
}

validate() {
    local rc=0 version
    for version in "$KUBERNETES_OLDEST" "$KUBERNETES_NEWEST"; do
        "$VENV/bin/kubernetes-validate" --strict --quiet -k "$version" "$OUT/base.yaml" "$OUT"/overlays/*.yaml || rc=1
        [[ $rc -eq 0 ]] && echo "every object is valid for Kubernetes $version (strict)"
    done
    return "$rc"
}

structure() {
    "$VENV/bin/python" "$DEPLOY/check_structure.py" "$DEPLOY" "$OUT"
}

scan() {
    local files=() overlay
    # One checkov run for all overlays (it takes seconds to start), each
    # overlay in a namespace of its own (crm-dev, crm-production): the graph
    # checks link objects by namespace and labels, and would otherwise let one
    # overlay's NetworkPolicies or RBAC stand in for another's.
    mkdir -p "$OUT/checkov"
    "$VENV/bin/python" - "$OUT" <<'EOF' || return 1
import sys
from pathlib import Path

import yaml

out = Path(sys.argv[1])
for path in sorted((out / "overlays").glob("*.yaml")):
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for doc in docs:
        meta = doc.setdefault("metadata", {})
        key = "name" if doc.get("kind") == "Namespace" else "namespace"
        if key in meta:
            meta[key] = f"{meta[key]}-{path.stem}"
    (out / "checkov" / path.name).write_text(yaml.safe_dump_all(docs, sort_keys=False))
EOF
    for overlay in "$OUT"/checkov/*.yaml; do
        files+=(--file "$overlay")
    done
    (cd "$OUT/checkov" && "$VENV/bin/checkov" --config-file "$DEPLOY/.checkov.yaml" \
        "${files[@]}" --file "$ROOT/Dockerfile")
}

image() {
    local rc=0
    "$VENV/bin/hadolint" --no-color "$ROOT/Dockerfile" || rc=1
    # A workspace member that .dockerignore leaves out breaks every image build.
    "$VENV/bin/python" - "$ROOT" <<'EOF' || rc=1
import fnmatch, sys, tomllib
from pathlib import Path

root = Path(sys.argv[1])
members = tomllib.loads((root / "Cargo.toml").read_text())["workspace"]["members"]
ignored = [
    line.strip().rstrip("/")
    for line in (root / ".dockerignore").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]
bad = [
    (m, p) for m in members for p in ignored
    if fnmatch.fnmatch(m, p) or m.startswith(p + "/") or fnmatch.fnmatch(m, p + "/*")
]
for member, pattern in bad:
    print(f".dockerignore: '{pattern}' leaves the workspace member {member} out of the build context")
sys.exit(1 if bad else 0)
EOF
    [[ $rc -eq 0 ]] && echo "Dockerfile: hadolint clean; build context holds every workspace member"
    return "$rc"
}

stage render render
if [[ $failed -eq 0 ]]; then
    stage validate validate
    stage structure structure
    stage checkov scan
fi
stage image image

printf '\n=== deploy/check.sh\n'
printf '%s\n' "${RESULTS[@]}"
exit $failed
