"""Run the crash test again and again; how often does it pass?

Each run is a fresh pytest process running tests/test_crash.py (by default
only the SIGKILL test). The output of each failed run is kept in
``--keep DIR`` (default: a temporary folder, named on stderr). The last line
is ``runs=N passed=N failed=N seconds=S``. Not part of CI: 30 runs take an
hour or more.

    .venv/bin/python bench/crash_loop.py --count 30 [--seed-step 1]

``--seed-step`` gives run i the BPBOT_CRASH_SEED 5 + i * step (default 0:
the test's default sequence every time).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/test_crash.py::test_sigkill_at_20_points_loses_nothing_and_answers_once"
RUN_TIMEOUT = 900  # one run; the test itself asserts < 240 s

log = logging.getLogger("crash_loop")


def one_run(i: int, seed_step: int, keep: Path) -> bool:
    env = dict(os.environ, BPBOT_CRASH_SEED=str(5 + i * seed_step))
    started = time.monotonic()
    try:
        res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                              TEST], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=RUN_TIMEOUT)
        ok, output = res.returncode == 0, res.stdout + res.stderr
    except subprocess.TimeoutExpired as exc:
        ok, output = False, f"{exc.stdout or ''}\n[run timed out after {RUN_TIMEOUT}s]"
    summary = next((line for line in output.splitlines() if "kill points survived" in line), "")
    log.info("run %d: %s in %.0fs %s", i + 1, "passed" if ok else "FAILED",
             time.monotonic() - started, summary.strip())
    if not ok:
        path = keep / f"run-{i + 1}.log"
        path.write_text(output)
        log.info("run %d: output in %s", i + 1, path)
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=30)
    ap.add_argument("--seed-step", type=int, default=0)
    ap.add_argument("--keep", type=Path, default=None, help="folder for the logs of failed runs")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    keep = args.keep or Path(tempfile.mkdtemp(prefix="bpbot-crash-loop-"))
    keep.mkdir(parents=True, exist_ok=True)
    log.info("failed runs' output goes to %s", keep)
    started = time.monotonic()
    passed = sum(one_run(i, args.seed_step, keep) for i in range(args.count))
    sys.stdout.write(f"runs={args.count} passed={passed} failed={args.count - passed} "
                     f"seconds={time.monotonic() - started:.0f}\n")
    return 0 if passed == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
