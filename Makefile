# `make demo` and `make test` are the README's commands; both first run
# deploy/setup.sh (idempotent: Debian packages + .venv).
.PHONY: demo test lint setup realtree-test golden

setup:
	deploy/setup.sh

demo: setup
	.venv/bin/bpbot demo

test: setup
	deploy/install-kernel-headers.sh >/dev/null
	.venv/bin/python -m pytest -q
	.venv/bin/ruff check bot tests bench

# Rewrite tests/golden/*.txt from today's templates (read the diff before committing).
golden: setup
	BPBOT_GOLDEN_UPDATE=1 .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_golden.py

lint: setup
	.venv/bin/ruff check bot tests bench

# Opt-in: the real gentree.py in the shipped sandbox (deploy/install-real-tree.sh
# prepares the paths): make realtree-test TREE=/var/lib/bpbot/backports UPSTREAM=/var/lib/bpbot/linux-6.1.y
realtree-test: setup
	BPBOT_REAL_TREE=$(TREE) BPBOT_REAL_UPSTREAM=$(UPSTREAM) .venv/bin/python -m pytest -q -m realtree tests/test_generator_sandbox.py
