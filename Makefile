# One-command entry points. Each depends on `setup`, which installs only what is missing.
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo

.PHONY: setup build demo demo-relay demo-direct test lint bench

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build

# The main job on the embedded default, no Tencent account needed.
demo: build
	@bash scripts/demo.sh

# The other deployment shapes (README, "Deployment shapes"): through an RTMP relay, and a
# public URL the cloud pulls itself.
demo-relay: build
	@bash scripts/shapes.sh relay

demo-direct: build
	@bash scripts/shapes.sh direct

test: setup
	$(CARGO) test

lint: setup
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

bench: setup
	$(CARGO) bench --bench signing
	$(CARGO) bench --bench compare
