# The suite's entry points; README.md explains each.
SHELL := /bin/bash
BUF_DIR := .ci/.tools
export PATH := $(CURDIR)/$(BUF_DIR)/node_modules/.bin:$(PATH)

TENANT ?= acme
ROLES ?= admin
SUBJECT ?= dev

FUZZ_SECONDS ?= 60
FUZZ_TARGETS := filter page_token requests values

.PHONY: run test lint fmt bench token buf fuzz

## run: build and start every service on SQLite under ./data (Ctrl-C stops)
run:
	@scripts/run.sh

## test: unit, service and end-to-end tests, on SQLite and PostgreSQL; the Node and browser clients
test:
	scripts/python-tools.sh
	cargo test --workspace --all-targets -- --test-threads=4
	tests/python/run.sh
	examples/run.sh

## lint: rustfmt, clippy with warnings denied, buf lint and breaking-change check, manifest checks (each with its self-test)
lint: buf
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	buf lint proto
	scripts/check-proto-breaking.sh
	scripts/check-proto-breaking.sh --self-test
	deploy/check.sh
	deploy/check.sh --self-test

## fmt: format the code
fmt:
	cargo fmt --all

## bench: every benchmark (contacts' writes and its 1,000,000-contact scale run, sales' leads and forecast, support's, marketing's, reporting's, events, the gateway beside nginx grpc_pass (needs nginx-light), grpcio imports), results in target/bench-results.jsonl; QUICK=1 runs each one's small smoke pass instead
BENCH := $(if $(QUICK),cargo test --release,cargo bench)
bench: export CRM_BENCH_RESULTS := $(CURDIR)/target/bench-results.jsonl
bench:
	mkdir -p target && rm -f target/bench-results.jsonl
	$(BENCH) -p crm-contacts --bench contacts_bench
	$(BENCH) -p crm-sales --bench sales_bench
	$(BENCH) -p crm-support --bench support_bench
	$(BENCH) -p crm-marketing --bench marketing_bench
	$(BENCH) -p crm-reporting --bench reporting_bench
	$(BENCH) -p crm-shared --bench events_bench
	cargo build --release --bin contacts
	$(BENCH) -p crm-gateway --bench gateway_bench
	$(if $(QUICK),,CRM_PROFILE=release tests/python/run.sh test_large_imports.py)
	@echo "results: target/bench-results.jsonl"

## fuzz: every fuzz target for FUZZ_SECONDS each (cargo-fuzz, nightly); a crash fails it
fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
	cd fuzz && for target in $(FUZZ_TARGETS); do \
		cargo +nightly fuzz run $$target -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

## token: print a development token (TENANT, ROLES, SUBJECT)
token:
	@cargo run --quiet -p crmctl -- token --tenant "$(TENANT)" --roles "$(ROLES)" --subject "$(SUBJECT)"

buf:
	@command -v buf >/dev/null 2>&1 || npm install --no-save --no-audit --no-fund --prefix $(BUF_DIR) @bufbuild/buf@1 >/dev/null
