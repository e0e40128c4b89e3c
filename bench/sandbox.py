"""Sandbox overhead per build, in milliseconds.

Runs the same commands plain and through ``bot.sandbox`` (bubblewrap +
prlimit + pids cgroup, exactly as generate.py and build.py wrap them):
an empty command (``true``, the pure setup and teardown cost) and one real
build of the sample package against the newest sample kernel. Prints a
table, then a last line ``sandbox_overhead_ms=<n>``: the median extra time
the sandbox adds to one build command.

    .venv/bin/python bench/sandbox.py [--runs N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.demo import layout
from bot.sandbox import bwrap as sandbox  # noqa: E402
from bot.sandbox import proc


def timed(argv: list[str], env: dict | None, cwd: Path | None = None) -> float:
    started = time.perf_counter()
    res = proc.run(argv, env=env, cwd=cwd, timeout=300)
    elapsed = time.perf_counter() - started
    if not res.ok:
        raise SystemExit(f"failed: {argv}\n{res.output}")
    return elapsed * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bpbot-bench-sandbox-"))
    rules = layout.prepare(work / "sample", with_list=False)
    box = sandbox.Sandbox.detect("bwrap", [rules.state_dir])
    plain = sandbox.Sandbox("none", [])  # same clean env, no bwrap, no limits
    out = work / "pkg"
    argv, env = box.wrap([sys.executable, str(rules.tree_path / "gentree.py"), str(rules.upstream),
                          str(out)], readonly=[rules.tree_path, rules.upstream], writable=[out])
    timed(argv, env)
    kernel = rules.kernels[-1]

    def build(b: sandbox.Sandbox, n: int) -> tuple[list[str], dict]:
        build_dir = work / f"build-{b.mode}-{n}"
        return b.wrap(["make", "-s", "-C", str(out), f"KLIB_BUILD={kernel.path}", f"O={build_dir}"],
                      readonly=[out, kernel.path], writable=[build_dir], cwd=out)

    rows = {"true (setup+teardown)": ([], []), f"build on {kernel.name}": ([], [])}
    for n in range(args.runs):
        for label, (plain_ms, boxed_ms) in rows.items():
            if label.startswith("true"):
                plain_ms.append(timed(*plain.wrap(["true"], readonly=[], writable=[])))
                boxed_ms.append(timed(*box.wrap(["true"], readonly=[], writable=[])))
            else:
                plain_ms.append(timed(*build(plain, n), cwd=out))
                boxed_ms.append(timed(*build(box, n), cwd=out))
    print(f"sandbox: {box.describe()}")
    print(f"{'command':28} {'plain ms':>10} {'sandboxed ms':>13} {'overhead ms':>12}")
    overheads = []
    for label, (plain_ms, boxed_ms) in rows.items():
        p, b = statistics.median(plain_ms), statistics.median(boxed_ms)
        overheads.append(b - p)
        print(f"{label:28} {p:10.1f} {b:13.1f} {b - p:12.1f}")
    shutil.rmtree(work, ignore_errors=True)
    # The empty command isolates the sandbox's own cost; a build adds noise.
    print(f"sandbox_overhead_ms={overheads[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
