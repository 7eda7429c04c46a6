# One-command entry points. Each depends on `setup`, which installs only what is missing.
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo

.PHONY: setup build demo test lint bench

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build

# The main job on the embedded default, no Tencent account needed.
demo: build
	@bash scripts/demo.sh

test: setup
	$(CARGO) test

lint: setup
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

bench: setup
	$(CARGO) bench --bench signing
	$(CARGO) bench --bench compare
