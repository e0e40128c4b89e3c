"""``bpbot check`` twice on the same series: how much the base cache saves.

Runs ``bpbot check --cache DIR`` on a sample series (by default the one that
breaks 3.10: the base is built on four kernels) with an empty cache dir, then
again with the same cache, as a contributor checking a series twice would.
Both must give the same exit code and reply; the second must say the base was
reused. The first includes what a first check on a machine does (laying out
the sample tree in the cache, a cold ccache). Prints the times, then a last
line ``first_s=... second_s=... ratio=...`` (ratio = second / first; the
medians over ``--runs`` pairs).

    .venv/bin/python bench/check_reuse.py [--runs N] [--series 06,07]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.demo import layout  # noqa: E402


def check(inputs: list[str], cache: Path, tmp: Path) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "TMPDIR": str(tmp)}
    started = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "bot.cli", "check", "--cache", str(cache),
                          *inputs], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=1800)
    return time.perf_counter() - started, res


def one_pair(inputs: list[str], work: Path) -> tuple[float, float]:
    cache, tmp = work / "cache", work / "tmp"
    shutil.rmtree(work, ignore_errors=True)
    tmp.mkdir(parents=True)
    first_s, first = check(inputs, cache, tmp)
    second_s, second = check(inputs, cache, tmp)
    if first.returncode != second.returncode or first.stdout != second.stdout:
        raise SystemExit(f"the two checks differ: exit {first.returncode} vs {second.returncode}"
                         f"\n{first.stderr}\n{second.stderr}")
    if first.returncode not in (0, 1) or "reused from the cache" not in second.stderr:
        raise SystemExit(f"the base was not reused:\n{second.stderr}")
    if list(tmp.iterdir()):
        raise SystemExit(f"scratch dirs left behind: {list(tmp.iterdir())}")
    return first_s, second_s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="pairs of checks (default 3)")
    ap.add_argument("--series", default="06,07", help="sample mail numbers (default 06,07)")
    args = ap.parse_args()
    sample = {p.name[:2]: str(p) for p in layout.sample_list()}
    inputs = [sample[n] for n in args.series.split(",")]
    firsts, seconds = [], []
    with tempfile.TemporaryDirectory(prefix="bench-check-") as work:
        for i in range(args.runs):
            first_s, second_s = one_pair(inputs, Path(work) / str(i))
            print(f"pair {i + 1}: first {first_s:.2f}s, second {second_s:.2f}s")
            firsts.append(first_s)
            seconds.append(second_s)
    first, second = statistics.median(firsts), statistics.median(seconds)
    print(f"first_s={first:.2f} second_s={second:.2f} ratio={second / first:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
