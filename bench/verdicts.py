"""Benchmark: the bot's verdicts against a corpus whose breakage is known.

Generates series on the sample tree, each designed to break a known set of
kernels (or none): a guard true on exactly one kernel, written in the forms
the old kernel subset read (LINUX_VERSION_IS_LESS/_IN_RANGE/_GEQ) and in
those it did not (hex LINUX_VERSION_CODE, LINUX_VERSION_MAJOR/_PATCHLEVEL);
clean changes; devel/-only changes; series on a base that already fails on
6.1; build-system changes (the package Makefile), which are built clean;
series that change only an inner patch (patches/.../minidrv.patch): the
broken code reaches the package through the generator, not as a tree file.
Tests each twice: as the bot does (warm base trees, the verbatim shortcut,
ccache) and cold (the generator always run, every build from an empty dir,
no ccache, the base's results shared), compares the two (verdict per
kernel, the new diagnostics, the coverage of the changed files), and
prints as its last line:

    recall=<x> false_blames=<n> cost_ratio=<x> series=<n>

- recall: of the designed (series, kernel) breakages, the share answered
  FAIL on that kernel;
- false_blames: kernels answered FAIL that the corpus did not design the
  series to break (e.g. where the base already fails);
- cost_ratio: CPU seconds (the bot's process and its children) spent
  generating and building in the bot's runs, base builds included / the
  same for the cold runs of the same series (their base builds excluded).

Also prints the series answered PASS although they break a kernel (must be
0), the series whose incremental and clean answers differ (must be 0;
``--compare-clean`` exits 1 on any) and the wall time per series. Run:
.venv/bin/python bench/verdicts.py [--series N] [--max-kernels N] [--compare-clean]
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

from bot.demo import layout
from bot.ingest import spool
from bot.reply import results
from bot.sandbox import bwrap as sandbox
from bot.sandbox import git
from bot.series import tracker  # noqa: E402
from bot.series.assembly import configure_b4  # noqa: E402
from bot.state import State  # noqa: E402
from bot.testrun import pipeline

log = logging.getLogger("bench.verdicts")
KERNELS = ["3.10", "3.16", "4.4", "4.9", "4.14", "4.19", "5.4", "5.10", "5.15", "6.1"]


def _next(kernel: str) -> tuple[int, int]:
    major, minor = (int(p) for p in kernel.split("."))
    return major, minor + 1


def only(kernel: str, form: str) -> str:
    """A guard true for exactly one of the sample kernels, in one of several forms."""
    major, minor = (int(p) for p in kernel.split("."))
    nmajor, nminor = _next(kernel)
    if form == "macro":
        if kernel == KERNELS[0]:
            return "LINUX_VERSION_IS_LESS(3,11,0)"
        if kernel == KERNELS[-1]:
            return "LINUX_VERSION_IS_GEQ(6,0,0)"
        return f"LINUX_VERSION_IN_RANGE({major},{minor},0, {nmajor},{nminor},0)"
    if form == "hex":
        return (f"LINUX_VERSION_CODE >= 0x{major:02x}{minor:02x}00 && "
                f"LINUX_VERSION_CODE < 0x{nmajor:02x}{nminor:02x}00")
    # LINUX_VERSION_MAJOR/_PATCHLEVEL exist from 5.14: older kernels read them as 0.
    return f"LINUX_VERSION_MAJOR == {major} && LINUX_VERSION_PATCHLEVEL == {minor}"


INNER_PATCH = "patches/0001-ndo-tx-timeout/minidrv.patch"
SAFE_GUARDS = ["LINUX_VERSION_IS_LESS(4,14,0)", "LINUX_VERSION_IS_GEQ(5,4,0)",
               "LINUX_VERSION_IN_RANGE(4,4,0, 5,15,0)", "LINUX_VERSION_CODE < 0x060200"]


@dataclass
class Case:
    name: str
    path: str
    text: str
    breaks: set[str]       # kernels the series is designed to break
    tag: str = ""          # subject tag: "[PATCH broken]" -> the broken base branch
    needs_build: bool = True
    replace: list[tuple[str, str]] | None = None  # instead of appending: (old, new), once each

    @property
    def kind(self) -> str:
        """The class, from the name: s003-hex-breaks-4.4 -> hex."""
        rest = self.name.split("-", 1)[1]
        return "base-fails" if rest.startswith("on-broken-base") else \
            rest.split("-breaks-")[0]


def corpus(n: int, seed: int) -> list[Case]:
    rnd = random.Random(seed)
    cases: list[Case] = []
    kinds = ["macro", "hex", "clean", "major", "devel", "base-fails", "build-system",
             "inner-patch"]
    for i in range(n):
        kind = kinds[i % len(kinds)]
        sym = f"bpbench_{i}"
        if kind in ("macro", "hex", "major"):
            pool = KERNELS if kind != "major" else ["5.15", "6.1"]
            k = rnd.choice(pool)
            cases.append(Case(f"s{i:03d}-{kind}-breaks-{k}", "compat/main.c",
                              f"\n#if {only(k, kind)}\nint {sym} = undefined_{i};\n#endif\n",
                              {k}))
        elif kind == "clean":
            guard = rnd.choice(SAFE_GUARDS)
            path = rnd.choice(["compat/main.c", "backport-include/linux/bitmap.h"])
            cases.append(Case(f"s{i:03d}-clean", path,
                              f"\n#if {guard}\nstatic inline int {sym}(void) {{ return {i}; }}\n"
                              "#endif\n", set()))
        elif kind == "inner-patch":
            k = rnd.choice(KERNELS + ["none"])
            body = (f"+#if {only(k, 'macro')}\n+int {sym} = undefined_{i};\n+#endif\n"
                    if k != "none" else f"+static int {sym} __attribute__((unused));\n+\n+\n")
            name = f"s{i:03d}-inner-patch-" + (f"breaks-{k}" if k != "none" else "clean")
            # three lines more in the patch's hunk, at file scope after its first #endif
            cases.append(Case(name, INNER_PATCH, "", {k} if k != "none" else set(), replace=[
                ("@@ -58,10 +58,21 @@", "@@ -58,10 +58,24 @@"), ("+#endif\n", "+#endif\n" + body)]))
        elif kind == "build-system":
            cases.append(Case(f"s{i:03d}-build-system", "Makefile.package",
                              f"\n# build note {i}\n", set()))
        elif kind == "devel":
            cases.append(Case(f"s{i:03d}-devel", "devel/README", f"\nNote {i}.\n", set(),
                              needs_build=False))
        else:
            k = rnd.choice(KERNELS[:-1])  # breaks one kernel that is not the broken 6.1
            if rnd.random() < 0.5:
                cases.append(Case(f"s{i:03d}-on-broken-base-clean", "compat/main.c",
                                  f"\nint {sym};\n", set(), tag="broken"))
            else:
                cases.append(Case(f"s{i:03d}-on-broken-base-breaks-{k}", "compat/main.c",
                                  f"\n#if {only(k, 'hex')}\nint {sym} = undefined_{i};\n"
                                  "#endif\n", {k}, tag="broken"))
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
    text = target.read_text() + case.text
    for old, new in case.replace or []:
        assert old in text, (case.name, old)
        text = text.replace(old, new, 1)
    target.write_text(text)
    git.git(tree, "commit", "-qam", f"compat: {case.name}")
    prefix = f"--subject-prefix=PATCH {case.tag}" if case.tag else "--subject-prefix=PATCH"
    res = git.git(tree, "format-patch", "--stdout", "-1", prefix,
                  f"--add-header=Message-ID: <{case.name}@bench.example.org>")
    git.git(tree, "checkout", "-q", "main")
    return res.output.encode()


def run(rules, state: State, raw: bytes):
    """One series through the pipeline: its outcome, wall and CPU seconds."""
    spool.spool(state, "bench", [raw], bot_address=rules.bot_address, loop_id=rules.loop_id)
    tracker.assemble(state, rules)
    version = pipeline.next_ready(state)
    start = time.monotonic()
    outcome = results.run_version(state, rules, sandbox.for_rules(rules), version)
    return (outcome, time.monotonic() - start, outcome.timings.get("series_cpu", 0.0),
            outcome.timings.get("baseline_cpu", 0.0))


def share_bases(source: State, target: State) -> None:
    """The cold runs judge against the same base results (not rebuilt, not counted)."""
    with target.tx() as db:
        for row in source.query("SELECT * FROM baselines"):
            names = list(row)
            db.conn.execute(f"INSERT OR REPLACE INTO baselines ({', '.join(names)}) VALUES"
                            f" ({', '.join('?' * len(names))})", [row[n] for n in names])


def answer(outcome) -> tuple:
    """What must not depend on how the series was built."""
    kernels = tuple((k.kernel.name, k.verdict, k.detail, k.new_errors, k.new_warnings)
                    for k in outcome.kernels)
    new = tuple(sorted((s.kernel, d.file, d.line, d.severity, d.text) for s in outcome.steps
                       if s.name == "build" for d in s.diagnostics if d.new))
    # The cold runs share the base's results, not its package: they have no
    # package to compare with, so only the tree files' coverage is compared.
    files = tuple((f.path, tuple(sorted(f.kernels))) for f in outcome.file_coverage or []
                  if not f.generated)
    return outcome.verdict, kernels, new, files


def _per_class(classes: dict[str, list[float]], base_cpu: float) -> None:
    log.info("%-14s %6s %6s %8s %8s %10s", "class", "series", "recall", "cpu_s", "cold_s",
             "cost_ratio")
    for kind, (n, want, got, spent, cold_spent) in classes.items():
        log.info("%-14s %6d %6s %8.2f %8.2f %10s", kind, n, f"{got / want:.2f}" if want else "-",
                 spent, cold_spent, f"{spent / cold_spent:.2f}" if cold_spent else "-")
    log.info("%-14s %6s %6s %8.2f", "(base builds)", "", "", base_cpu)


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=42)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-kernels", type=int, default=0)
    parser.add_argument("--compare-clean", action="store_true",
                        help="exit 1 when an incremental answer differs from the clean one")
    return parser.parse_args()


def main() -> None:
    args = _args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("bot").setLevel(logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="bpbot-bench-verdicts-"))
    rules = make_tree(work / "tree-work")
    # No sandbox: bubblewrap's monitor does not pass its children's CPU times
    # up (they would not be counted); the corpus is the bench's own.
    rules = dataclasses.replace(rules, state_dir=work / "state", sandbox="none",
                                subset_max_kernels=args.max_kernels)
    cold_rules = dataclasses.replace(rules, state_dir=work / "cold-state", build_reuse=False,
                                     ccache=False)
    configure_b4(rules.bot_name, rules.bot_address)
    state, cold_state = State(rules.state_dir / "s.sqlite"), State(cold_rules.state_dir / "s.sqlite")
    cases = corpus(args.series, args.seed)
    pairs = caught = false_blames = false_passes = 0
    cpu = cold_cpu = base_cpu = 0.0
    walls: list[float] = []
    differ: list[str] = []
    classes: dict[str, list[float]] = {}  # kind -> [series, pairs, caught, cpu, cold]
    for case in cases:
        raw = mail_for(rules, case)
        outcome, wall, spent, base_spent = run(rules, state, raw)
        share_bases(state, cold_state)
        cold, _, cold_spent, _ = run(cold_rules, cold_state, raw)
        walls.append(wall)
        cpu, cold_cpu, base_cpu = cpu + spent + base_spent, cold_cpu + cold_spent, \
            base_cpu + base_spent
        if answer(outcome) != answer(cold):
            differ.append(case.name)
            log.warning("%s: incremental %s != clean %s", case.name, answer(outcome), answer(cold))
        failed = {k.kernel.name for k in outcome.kernels if k.verdict == "fail"}
        pairs += len(case.breaks)
        caught += len(case.breaks & failed)
        false_blames += len(failed - case.breaks)
        false_passes += bool(case.breaks) and outcome.verdict == "pass"
        row = classes.setdefault(case.kind, [0, 0, 0, 0.0, 0.0])
        for i, value in enumerate((1, len(case.breaks), len(case.breaks & failed), spent,
                                   cold_spent)):
            row[i] += value
        log.info("%-40s verdict=%-10s fail=%-10s designed=%-6s cpu=%.2fs (base %.2fs) cold=%.2fs"
                 " wall=%.2fs", case.name, outcome.verdict, ",".join(sorted(failed)) or "-",
                 ",".join(sorted(case.breaks)) or "-", spent, base_spent, cold_spent, wall)
    walls.sort()
    _per_class(classes, base_cpu)
    broken = sum(1 for c in cases if c.breaks)
    log.info("breaking series %d, answered PASS although broken %d; incremental != clean: %d%s;"
             " cpu %.1fs, cold %.1fs; wall per series: median %.2fs, max %.2fs", broken,
             false_passes, len(differ), f" ({', '.join(differ)})" if differ else "", cpu,
             cold_cpu, walls[len(walls) // 2], walls[-1])
    recall = caught / pairs if pairs else 1.0
    cost = cpu / cold_cpu if cold_cpu else 0.0
    # The figures line is the bench's output (stdout), as in the other benches.
    sys.stdout.write(f"recall={recall:.2f} false_blames={false_blames} cost_ratio={cost:.2f} "
                     f"series={len(cases)}\n")
    if args.compare_clean and differ:
        sys.exit(1)


if __name__ == "__main__":
    main()
