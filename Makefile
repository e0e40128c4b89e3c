# `make demo` and `make test` are the README's commands; both first run
# deploy/setup.sh (idempotent: Debian packages + .venv).
.PHONY: demo test lint setup

setup:
	deploy/setup.sh

demo: setup
	.venv/bin/bpbot demo

test: setup
	deploy/install-kernel-headers.sh >/dev/null
	.venv/bin/python -m pytest -q
	.venv/bin/ruff check bot tests bench

lint: setup
	.venv/bin/ruff check bot tests bench
