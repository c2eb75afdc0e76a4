#!/usr/bin/env bash
# Contract safety: fails when proto/ as it is in the working tree (in CI, a
# fresh clone: the commit under test) breaks what the commit before it
# published, by the rules in proto/buf.yaml (`breaking: use: [FILE]`: wire
# and generated-code compatibility, file by file). A new package version
# (crm.contacts.v2) lives in new files and never breaks; changing or removing
# what a published package already has does.
#
#   scripts/check-proto-breaking.sh               # against HEAD~1
#   scripts/check-proto-breaking.sh origin/main   # against any commit
#   scripts/check-proto-breaking.sh --self-test   # proves it catches a break
#
# Nothing to compare (exit 0, says why): no commit before HEAD, or the
# commit compared against has no proto/. A shallow clone that lacks HEAD~1 is
# an error, not a pass: fetch the history (`git fetch --deepen=1`).
# Needs git and buf (on PATH, in .ci/.tools, or installed there from npm).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

find_buf() {
    if command -v buf >/dev/null 2>&1; then
        command -v buf
        return
    fi
    local tools="$ROOT/.ci/.tools"
    if [[ ! -x "$tools/node_modules/.bin/buf" ]]; then
        echo "buf not found: installing @bufbuild/buf@1 into .ci/.tools" >&2
        npm install --no-save --no-audit --no-fund --prefix "$tools" @bufbuild/buf@1 >&2
    fi
    echo "$tools/node_modules/.bin/buf"
}

check() {
    local against="${1:-HEAD~1}"
    cd "$ROOT"
    git rev-parse --git-dir >/dev/null 2>&1 \
        || { echo "check-proto-breaking: $ROOT is not a git repository" >&2; return 2; }

    local commit
    if ! commit=$(git rev-parse --verify --quiet "$against^{commit}"); then
        if [[ "$against" == HEAD~1 && $(git rev-parse --is-shallow-repository) == true ]]; then
            echo "check-proto-breaking: HEAD~1 is missing from this shallow clone; fetch it (git fetch --deepen=1)" >&2
            return 2
        fi
        if [[ "$against" == HEAD~1 ]]; then
            echo "check-proto-breaking: HEAD is the first commit: nothing to compare against"
            return 0
        fi
        echo "check-proto-breaking: no commit $against" >&2
        return 2
    fi
    if ! git cat-file -e "$commit:proto" 2>/dev/null; then
        echo "check-proto-breaking: $against ($(git rev-parse --short "$commit")) has no proto/: nothing to compare against"
        return 0
    fi

    local buf previous rc=0
    buf=$(find_buf)
    previous=$(mktemp -d)
    # The tree of that commit, not a clone: works in worktrees and for any
    # commit the repository has, however deep.
    git archive "$commit" proto | tar -x -C "$previous"
    "$buf" breaking proto --against "$previous/proto" || rc=$?
    rm -rf "$previous"

    if [[ $rc -eq 0 ]]; then
        echo "check-proto-breaking: proto/ is compatible with $against ($(git rev-parse --short "$commit"))"
    else
        echo "check-proto-breaking: proto/ breaks the contract of $against ($(git rev-parse --short "$commit")); publish the change as a new package version (e.g. crm.contacts.v2) instead" >&2
        return 1
    fi
}

# ------------------------------------------------------------------ self-test --
# Each case is a commit on top of a copy of this repository's proto/, checked
# by this very script (copied into the temp repository) exactly as CI runs it.

self_test() {
    local work script_src buf_dir failures=0
    work=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
    script_src="$ROOT/scripts/check-proto-breaking.sh"
    # The temp repositories have no .ci/.tools: find this one's buf on PATH.
    buf_dir=$(dirname "$(find_buf)")
    export PATH="$buf_dir:$PATH"
    export GIT_AUTHOR_NAME=self-test GIT_AUTHOR_EMAIL=self-test@example.invalid
    export GIT_COMMITTER_NAME=self-test GIT_COMMITTER_EMAIL=self-test@example.invalid

    new_repo() { # $1: dir; an empty repository holding this script
        git init -q "$1"
        mkdir -p "$1/scripts"
        cp "$script_src" "$1/scripts/"
    }
    commit_all() { git -C "$1" add -A && git -C "$1" commit -q -m "$2"; }

    # expect DIR CASE WANT_RC PATTERN: run the check in DIR, assert exit code and output.
    expect() {
        local dir="$1" name="$2" want="$3" pattern="$4" out rc=0
        out=$(cd "$dir" && bash scripts/check-proto-breaking.sh 2>&1) || rc=$?
        if [[ $rc -eq $want ]] && grep -qE -- "$pattern" <<<"$out"; then
            echo "ok   $name"
        else
            echo "FAIL $name: exit $rc (wanted $want), output lacks /$pattern/:"
            # shellcheck disable=SC2001 # every line, not one substitution
            sed 's/^/     | /' <<<"$out"
            failures=$((failures + 1))
        fi
    }

    local repo="$work/repo" contacts="proto/crm/contacts/v1/contacts.proto"
    new_repo "$repo"
    cp -r "$ROOT/proto" "$repo/proto"
    commit_all "$repo" "published contract"

    # 1. A field changes type: breaking.
    sed -E -i '0,/^( +)string ([a-z_]+ = [0-9]+;)/s//\1int64 \2/' "$repo/$contacts"
    git -C "$repo" diff --quiet && { echo "FAIL self-test could not edit $contacts"; return 1; }
    commit_all "$repo" "field type changed"
    expect "$repo" "a field's type changed -> fails" 1 'changed type from "string" to "int64"'
    git -C "$repo" reset -q --hard HEAD~1

    # 2. A field changes number: breaking.
    sed -E -i '0,/^( +)string ([a-z_]+) = ([0-9]+);/s//\1string \2 = 9\3;/' "$repo/$contacts"
    commit_all "$repo" "field number changed"
    expect "$repo" "a field's number changed -> fails" 1 'Previously present field "[0-9]+" with name .* was deleted'
    git -C "$repo" reset -q --hard HEAD~1

    # 3. The same break, not yet committed (a developer's working tree): fails too.
    sed -E -i '0,/^( +)string ([a-z_]+ = [0-9]+;)/s//\1int64 \2/' "$repo/$contacts"
    git -C "$repo" commit -q --allow-empty -m "unrelated commit"
    expect "$repo" "an uncommitted break in the working tree -> fails" 1 'changed type'
    git -C "$repo" reset -q --hard HEAD~1

    # 4. A new field: compatible.
    sed -E -i '0,/^message ([A-Za-z]+) \{$/s//message \1 {\n  string self_test_added = 536870000;/' "$repo/$contacts"
    commit_all "$repo" "field added"
    expect "$repo" "a field added -> passes" 0 'is compatible with HEAD~1'
    git -C "$repo" reset -q --hard HEAD~1

    # 5. A new package version beside v1: compatible.
    mkdir -p "$repo/proto/crm/contacts/v2"
    sed -e 's/crm\.contacts\.v1/crm.contacts.v2/g; s#contacts/v1#contacts/v2#g; s/contactsv1/contactsv2/g' \
        "$repo/$contacts" >"$repo/proto/crm/contacts/v2/contacts.proto"
    sed -E -i '0,/^( +)string ([a-z_]+ = [0-9]+;)/s//\1int64 \2/' "$repo/proto/crm/contacts/v2/contacts.proto"
    commit_all "$repo" "crm.contacts.v2"
    expect "$repo" "a new package crm.contacts.v2 (with a changed field) -> passes" 0 'is compatible'
    git -C "$repo" reset -q --hard HEAD~1

    # 6. Removing a published file: breaking.
    git -C "$repo" rm -q "$contacts"
    commit_all "$repo" "contacts v1 removed"
    expect "$repo" "a published file removed -> fails" 1 'Previously present file "crm/contacts/v1/contacts.proto" was deleted'

    # 7. The first commit: nothing to compare.
    local first="$work/first"
    new_repo "$first"
    cp -r "$ROOT/proto" "$first/proto"
    commit_all "$first" "first"
    expect "$first" "the first commit -> passes, says so" 0 'first commit: nothing to compare'

    # 8. HEAD~1 had no proto/ yet.
    local fresh="$work/fresh"
    new_repo "$fresh"
    commit_all "$fresh" "before the protos"
    cp -r "$ROOT/proto" "$fresh/proto"
    commit_all "$fresh" "protos added"
    expect "$fresh" "HEAD~1 without proto/ -> passes, says so" 0 'has no proto/: nothing to compare'

    # 9. A shallow clone missing HEAD~1: an error, not a silent pass.
    local shallow="$work/shallow"
    git clone -q --depth 1 "file://$repo" "$shallow"
    cp "$script_src" "$shallow/scripts/"
    expect "$shallow" "a shallow clone without HEAD~1 -> error" 2 'shallow clone'

    if ((failures)); then
        echo "check-proto-breaking self-test: $failures case(s) failed"
        return 1
    fi
    echo "check-proto-breaking self-test: all cases passed"
}

case "${1:-}" in
    --self-test) self_test ;;
    -h | --help) sed -n '2,17p' "${BASH_SOURCE[0]}" ;;
    *) check "$@" ;;
esac
