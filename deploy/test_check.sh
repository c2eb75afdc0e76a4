#!/usr/bin/env bash
# Self-test of deploy/check.sh (`deploy/check.sh --self-test`): each case
# copies deploy/ and the image files into a temp dir, breaks one thing, runs
# the copied check.sh, and asserts which stages fail and what they say. The
# unbroken copy must pass, so every failure below is the injected one's.
# The intact copy runs every stage; a broken one runs the stages that must
# catch its fault (checkov alone takes ~6 CPU seconds to start). The cases run
# side by side, one per core.
set -euo pipefail

DEPLOY=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$DEPLOY")
export CHECK_VENV="${CHECK_VENV:-$ROOT/.ci/.tools/venv}"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# Install the tools once, before the cases share them.
bash "$DEPLOY/check.sh" --install-tools

copy() { # CASE: a fresh copy of what check.sh reads
    local dir="$WORK/$1"
    mkdir -p "$dir"
    cp -r "$DEPLOY" "$dir/deploy"
    cp "$ROOT/Dockerfile" "$ROOT/.dockerignore" "$ROOT/Cargo.toml" "$dir/"
    echo "$dir"
}

# Python edits: replace exactly one occurrence, or fail the case loudly.
replace_once() { # FILE OLD NEW
    python3 - "$@" <<'EOF'
import sys
path, old, new = sys.argv[1:]
text = open(path).read()
if text.count(old) != 1:
    sys.exit(f"self-test: expected one {old!r} in {path}, found {text.count(old)}")
open(path, "w").write(text.replace(old, new))
EOF
}

drop_document() { # FILE KIND: remove the YAML document of that kind
    python3 - "$@" <<'EOF'
import sys
path, kind = sys.argv[1:]
docs = open(path).read().split("\n---\n")
kept = [d for d in docs if f"\nkind: {kind}\n" not in f"\n{d}\n"]
if len(kept) != len(docs) - 1:
    sys.exit(f"self-test: expected one {kind} in {path}")
open(path, "w").write("\n---\n".join(kept))
EOF
}

# ------------------------------------------------------------------- cases --
# Each: a name, the stages that must fail (the stages it runs; none: run all,
# all pass), and extended regexes the output must match, one per line.
declare -A WANT_FAIL WANT_TEXT
CASES=()
case_def() { CASES+=("$1"); WANT_FAIL[$1]="$2"; WANT_TEXT[$1]="$3"; }

case_def intact "" \
    'PASS checkov'

d=$(copy typo)
replace_once "$d/deploy/base/contacts.yaml" "revisionHistoryLimit: 5" "revisionHistoryLimt: 5"
case_def typo "validate" \
    "did not validate for resource deployment/contacts against version 1.30: spec: .*'revisionHistoryLimt' was unexpected"

d=$(copy privileged)
replace_once "$d/deploy/base/gateway.yaml" "privileged: false" "privileged: true"
case_def privileged "checkov" \
    'CKV_K8S_16: "Container should not be privileged"
FAILED for resource: Deployment.crm-production.gateway'

d=$(copy no-pdb)
drop_document "$d/deploy/base/sales.yaml" PodDisruptionBudget
case_def no-pdb "structure" \
    '^base: sales: no PodDisruptionBudget selects app=sales$
^overlays/production: sales: no PodDisruptionBudget selects app=sales$'

d=$(copy migrate-not-run)
replace_once "$d/deploy/base/contacts.yaml" 'args: ["migrate"]' 'args: ["serve"]'
# shellcheck disable=SC2016 # backquotes are text here
case_def migrate-not-run "structure" \
    '^base: contacts: the migrate init container does not run `migrate` in the server.s image'

# A service added by steps 1 and 2 of deploy/README.md's "Adding a service"
# and no further: no image tag or replica count in the overlays, no
# NetworkPolicy in production.
d=$(copy half-added)
sed -e 's/contacts/billing/g; s/CONTACTS/BILLING/g; s/50061/50066/g' \
    "$DEPLOY/base/contacts.yaml" >"$d/deploy/base/billing.yaml"
replace_once "$d/deploy/base/kustomization.yaml" "  # - billing.yaml     # 50066" "  - billing.yaml       # 50066"
case_def half-added "structure checkov" \
    '^overlays/production: billing: no NetworkPolicy selects app=billing$
^overlays/dev: billing: no HorizontalPodAutoscaler in this overlay and no replica count
CKV_K8S_14: "Image Tag should be fixed - not latest or blank"'

# The jetstream overlay is scanned like the others, its StatefulSet included.
d=$(copy nats-writable)
replace_once "$d/deploy/overlays/jetstream/nats.yaml" "readOnlyRootFilesystem: true" "readOnlyRootFilesystem: false"
case_def nats-writable "checkov" \
    'CKV_K8S_22: "Use read-only filesystem for containers where possible"
FAILED for resource: StatefulSet.crm-jetstream.nats'

d=$(copy root-image)
replace_once "$d/Dockerfile" "USER 65532:65532" "USER root"
case_def root-image "checkov image" \
    'DL3002 warning: Last USER should not be root
CKV_DOCKER_8'

d=$(copy context)
printf 'shared/\n' >>"$d/.dockerignore"
case_def context "image" \
    "^.dockerignore: 'shared' leaves the workspace member shared out of the build context$"

# --------------------------------------------------------------------- run --
parallel=$(nproc 2>/dev/null || echo 2)
for name in "${CASES[@]}"; do
    dir="$WORK/$name"
    [[ -d "$dir" ]] || copy "$name" >/dev/null
    while (($(jobs -rp | wc -l) >= parallel)); do wait -n || true; done
    stages="${WANT_FAIL[$name]:-validate structure checkov image}"
    (
        rc=0
        CHECK_STAGES="$stages" bash "$dir/deploy/check.sh" >"$dir.log" 2>&1 || rc=$?
        echo "$rc" >"$dir.rc"
    ) &
done
wait

failures=0
for name in "${CASES[@]}"; do
    log="$WORK/$name.log"
    rc=$(cat "$WORK/$name.rc")
    got=$({ grep -E '^FAIL ' "$log" || true; } | awk '{print $2}' | sort | xargs)
    want=$(tr ' ' '\n' <<<"${WANT_FAIL[$name]}" | sort | xargs)
    problems=()
    want_rc=1
    [[ -z "$want" ]] && want_rc=0
    [[ "$rc" == "$want_rc" ]] || problems+=("exit $rc, wanted $want_rc")
    [[ "$got" == "$want" ]] || problems+=("failed stages [$got], wanted [$want]")
    while IFS= read -r pattern; do
        grep -qE -- "$pattern" "$log" || problems+=("no line matches /$pattern/")
    done <<<"${WANT_TEXT[$name]}"
    if ((${#problems[@]})); then
        echo "FAIL $name: ${problems[*]}"
        sed 's/^/     | /' "$log"
        failures=$((failures + 1))
    else
        echo "ok   $name (fails: ${want:-nothing})"
    fi
done

if ((failures)); then
    echo "deploy/check.sh self-test: $failures of ${#CASES[@]} cases failed"
    exit 1
fi
echo "deploy/check.sh self-test: ${#CASES[@]} cases passed"
