"""Benchmark: kernel subset vs the full matrix on a generated corpus.

Generates >= 40 series on the sample tree (some break exactly one kernel,
some touch only devel/, some land on a base that already fails on a kernel,
some are clean), tests each once with the subset and once with the full
matrix, and prints as its last line:

    subset_build_ratio=<x> recall=<x> false_blames=<n> series=<n>

- subset_build_ratio: series builds with the subset / series builds with the
  full matrix (base builds are cached and not counted);
- recall: of the series that break some kernel in the full matrix, the share
  the subset run also reports as FAIL;
- false_blames: kernels reported as FAIL in the subset run that the corpus
  did not design the series to break (e.g. where the base already fails).

Also prints the bot's own overhead per series (wall time outside the
generator and the compiler). Run: .venv/bin/python bench/subset.py [--series N]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot import git, layout, pipeline, sandbox, spool, tracker  # noqa: E402
from bot.series import configure_b4  # noqa: E402
from bot.state import State  # noqa: E402

KERNELS = ["3.10", "3.16", "4.4", "4.9", "4.14", "4.19", "5.4", "5.10", "5.15", "6.1"]


def _only(kernel: str) -> str:
    """A guard true for exactly one of the sample kernels."""
    if kernel == KERNELS[0]:
        return "LINUX_VERSION_IS_LESS(3,11,0)"
    if kernel == KERNELS[-1]:
        return "LINUX_VERSION_IS_GEQ(6,0,0)"
    major, minor = (int(p) for p in kernel.split("."))
    return f"LINUX_VERSION_IN_RANGE({major},{minor},0, {major},{minor + 1},0)"


ONLY = {k: _only(k) for k in KERNELS}
SAFE_GUARDS = ["LINUX_VERSION_IS_LESS(4,14,0)", "LINUX_VERSION_IS_GEQ(5,4,0)",
               "LINUX_VERSION_IN_RANGE(4,4,0, 5,15,0)", "LINUX_VERSION_IS_LESS(6,2,0)"]


@dataclass
class Case:
    name: str
    path: str
    text: str
    breaks: set[str]       # kernels the series is designed to break
    tag: str = ""          # subject tag: "[PATCH broken]" -> the broken base branch


def corpus(n: int, seed: int) -> list[Case]:
    rnd = random.Random(seed)
    cases: list[Case] = []
    kinds = ["one", "clean", "devel", "base-fails"]
    for i in range(n):
        kind = kinds[i % len(kinds)]
        sym = f"bpbench_{i}"
        if kind == "one":
            k = rnd.choice(KERNELS)
            cases.append(Case(f"s{i:03d}-breaks-{k}", "compat/main.c",
                              f"\n#if {ONLY[k]}\nint {sym} = undefined_{i};\n#endif\n", {k}))
        elif kind == "clean":
            guard = rnd.choice(SAFE_GUARDS)
            path = rnd.choice(["compat/main.c", "backport-include/linux/bitmap.h"])
            cases.append(Case(f"s{i:03d}-clean", path,
                              f"\n#if {guard}\nstatic inline int {sym}(void) {{ return {i}; }}\n"
                              "#endif\n", set()))
        elif kind == "devel":
            cases.append(Case(f"s{i:03d}-devel", "devel/README", f"\nNote {i}.\n", set()))
        else:
            k = rnd.choice(KERNELS[:-1])  # breaks one kernel that is not the broken 6.1
            if rnd.random() < 0.5:
                cases.append(Case(f"s{i:03d}-on-broken-base-clean", "compat/main.c",
                                  f"\nint {sym};\n", set(), tag="broken"))
            else:
                cases.append(Case(f"s{i:03d}-on-broken-base-breaks-{k}", "compat/main.c",
                                  f"\n#if {ONLY[k]}\nint {sym} = undefined_{i};\n#endif\n", {k},
                                  tag="broken"))
    return cases


def make_tree(work: Path):
    rules = layout.prepare(work, with_list=False)
    tree = rules.tree_path
    git.git(tree, "checkout", "-q", "-b", "broken-6.1")
    header = tree / "backport-include" / "linux" / "bitmap.h"
    header.write_text(header.read_text() +
                      "\n#if LINUX_VERSION_IS_GEQ(6,0,0)\n#error broken base on 6.x\n#endif\n")
    git.git(tree, "commit", "-qam", "headers: a base that fails on 6.1")
    git.git(tree, "checkout", "-q", "main")
    return dataclasses.replace(rules, grace_seconds=0, tag_branches={"broken": "broken-6.1"})


def mail_for(rules, case: Case) -> bytes:
    tree = rules.tree_path
    base = "broken-6.1" if case.tag else "main"
    git.git(tree, "checkout", "-q", "-b", case.name, base)
    target = tree / case.path
    target.write_text(target.read_text() + case.text)
    git.git(tree, "commit", "-qam", f"compat: {case.name}")
    prefix = f"--subject-prefix=PATCH {case.tag}" if case.tag else "--subject-prefix=PATCH"
    res = git.git(tree, "format-patch", "--stdout", "-1", prefix,
                  f"--add-header=Message-ID: <{case.name}@bench.example.org>")
    git.git(tree, "checkout", "-q", "main")
    return res.output.encode()


def run(rules, state: State, raw: bytes):
    spool.spool(state, "bench", [raw], bot_address=rules.bot_address, loop_id=rules.loop_id)
    tracker.assemble(state, rules)
    version = pipeline.next_ready(state)
    start = time.monotonic()
    outcome = pipeline.run_version(state, rules, sandbox.for_rules(rules), version)
    return outcome, time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="bpbot-bench-subset-"))
    rules = make_tree(work / "tree-work")
    configure_b4(rules.bot_name, rules.bot_address)
    sub_rules = dataclasses.replace(rules, state_dir=work / "state-subset")
    full_rules = dataclasses.replace(rules, state_dir=work / "state-full", subset_full=True)
    sub_state = State(sub_rules.state_dir / "s.sqlite")
    full_state = State(full_rules.state_dir / "s.sqlite")
    cases = corpus(args.series, args.seed)
    builds_sub = builds_full = breaking = caught = false_blames = 0
    overhead: list[float] = []
    shares: list[float] = []
    for case in cases:
        raw = mail_for(rules, case)
        sub, sub_wall = run(sub_rules, sub_state, raw)
        full, _ = run(full_rules, full_state, raw)
        builds_sub += sum(1 for s in sub.steps if s.name == "build" and s.status != "skipped")
        builds_full += sum(1 for s in full.steps if s.name == "build" and s.status != "skipped")
        full_fail = {k.kernel.name for k in full.kernels if k.verdict == "fail"}
        sub_fail = {k.kernel.name for k in sub.kernels if k.verdict == "fail"}
        if full_fail:
            breaking += 1
            caught += bool(sub_fail)
        false_blames += len(sub_fail - case.breaks)
        work_s = sum(sub.timings.values())
        overhead.append(sub_wall - work_s)
        shares.append((sub_wall - work_s) / sub_wall if sub_wall else 0.0)
        built = ",".join(k.kernel.name for k in sub.kernels if k.verdict != "not-built") or "-"
        print(f"{case.name:<36} subset={built:<16} fail={','.join(sorted(sub_fail)) or '-':<6}"
              f" full_fail={','.join(sorted(full_fail)) or '-':<6} wall={sub_wall:.2f}s",
              file=sys.stderr)
    ratio = builds_sub / builds_full if builds_full else 0.0
    recall = caught / breaking if breaking else 1.0
    overhead.sort()
    print(f"builds: subset {builds_sub}, full {builds_full}; breaking series {breaking}, "
          f"caught {caught}")
    print(f"bot overhead per series (wall outside generator and compiler): median "
          f"{overhead[len(overhead) // 2] * 1000:.0f} ms, max {overhead[-1] * 1000:.0f} ms; "
          f"median share of the sample tree's tiny builds {sorted(shares)[len(shares) // 2]:.1%}")
    print(f"subset_build_ratio={ratio:.2f} recall={recall:.2f} false_blames={false_blames} "
          f"series={len(cases)}")


if __name__ == "__main__":
    main()
