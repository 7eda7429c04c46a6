# One-command entry points. Each depends on `setup`, which installs only what is missing.
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo

.PHONY: setup setup-demo build demo demo-relay demo-direct console test lint bench soak

# Everything the tests and benchmarks need.
setup:
	@bash scripts/setup.sh

# Only what building and running callfeed needs, so a newcomer's first command stays quick.
setup-demo:
	@bash scripts/setup.sh demo

build: setup-demo
	$(CARGO) build

# The main job on the embedded default, no Tencent account needed.
demo: build
	@bash scripts/demo.sh

# The other deployment shapes (README, "Deployment shapes"): through an RTMP relay, and a
# public URL the cloud pulls itself.
demo-relay: build
	@bash scripts/setup.sh relay
	@bash scripts/shapes.sh relay

demo-direct: build
	@bash scripts/shapes.sh direct

# The operator console on the in-process emulator: open the printed address, paste the token.
console: build
	@bash scripts/console.sh

test: setup
	$(CARGO) test

lint: setup-demo
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

bench: setup
	$(CARGO) bench --bench signing
	$(CARGO) bench --bench compare

# A bounded soak of real processes under a mixed workload with faults and kill -9s (tests/soak/):
# SOAK_SECS (default 600), half on one node, half on a two-node cluster on PostgreSQL.
soak: setup
	$(CARGO) test --test soak -- --ignored --nocapture
