"""Benchmark (opt-in, by hand; never in `make test`): replay the real backports
tree's own history through `bpbot check`.

Each of the last N commits (touching nothing but the tree's own files) is
formatted with `git format-patch --base=<parent>` and checked on its parent
with rules/backports.toml pointed at the given paths; the base cache is
shared, as a contributor's repeated checks share it. Prints one line per
commit (verdict, wall time, generate and build times) and, last:

    series=<n> pass=<n> fail=<n> base_fails=<n> not_tested=<n> median_s=<x> cold_s=<x>

(with ``--again``, also ``again_median_s``: each commit checked a second
time on the same cache, its base known: what a contributor's second check,
or a second series on the same base, costs; ``--keep DIR`` writes each
reply's text there)

(not_tested counts NOT TESTED and PARTIAL answers: e.g. changed code that the
build config does not compile.)

cold_s: one cold `gentree.py` plus one cold build of the first kernel
(ccache off), measured in the same run outside the bot.

    .venv/bin/python bench/realtree.py --tree /var/lib/bpbot/backports \\
        --upstream /var/lib/bpbot/linux-6.1.y --kernel /usr/src/linux-headers-6.1.0-57-amd64 \\
        [--commits 5] [--rev master] [--sandbox bwrap|none]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BPBOT = Path(sys.executable).with_name("bpbot")


def _rules(args, work: Path) -> Path:
    text = (ROOT / "rules" / "backports.toml").read_text()
    text = re.sub(r'(?m)^state_dir = .*$', f'state_dir = "{work / "state"}"', text)
    text = re.sub(r'(?m)^path = "/var/lib/bpbot/backports"$', f'path = "{args.tree}"', text)
    text = re.sub(r'(?m)^upstream = .*$', f'upstream = "{args.upstream}"', text)
    text = re.sub(r'(?m)^sandbox = .*$', f'sandbox = "{args.sandbox}"', text)
    text = re.sub(r'(?m)^branch = .*$', f'branch = "{args.branch}"', text)
    head, _, rest = text.partition("[[kernels]]")
    tail = rest[rest.index("\n[rq]"):]
    kernels = "".join(f'[[kernels]]\nname = "k{i}"\nversion = "auto"\npath = "{k}"\n\n'
                      for i, k in enumerate(args.kernel))
    # Password files do not exist here: read mail from a (never used) Maildir.
    head = re.sub(r"(?ms)^\[source\].*?(?=^\[smtp\])", '[source]\nkind = "maildir"\npath = "list"\n\n', head)
    head = re.sub(r"(?ms)^\[smtp\].*?(?=^\[reply\])", '[smtp]\nhost = "127.0.0.1"\nport = 25\n\n', head)
    rules = work / "rules.toml"
    rules.write_text(head + kernels + tail)
    return rules


def _commits(args) -> list[str]:
    out = subprocess.run(["git", "-C", str(args.tree), "rev-list", "--no-merges",
                          f"--max-count={args.commits}", args.rev, "--", "backport", "patches",
                          "dependencies", "copy-list"],
                         capture_output=True, text=True, check=True).stdout.split()
    return list(reversed(out))


def _cold(args, work: Path) -> float:
    out = work / "cold-out"
    started = time.monotonic()
    subprocess.run([sys.executable, str(Path(args.tree) / "gentree.py"), "--clean",
                    str(args.upstream), str(out)], check=True, capture_output=True,
                   cwd=args.tree, timeout=3600)
    kernel = args.kernel[0]
    env = dict(os.environ, CCACHE_DISABLE="1")
    for target in (["defconfig-hwsim"], [f"-j{os.cpu_count() or 1}"]):
        subprocess.run(["make", "-C", str(out), f"KLIB={kernel}", f"KLIB_BUILD={kernel}", *target],
                       check=True, capture_output=True, env=env, timeout=3600)
    return time.monotonic() - started


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tree", type=Path, required=True)
    p.add_argument("--upstream", type=Path, required=True)
    p.add_argument("--kernel", type=Path, action="append", required=True)
    p.add_argument("--commits", type=int, default=5)
    p.add_argument("--rev", default="HEAD")
    p.add_argument("--branch", default="master")
    p.add_argument("--sandbox", default="bwrap", choices=("bwrap", "none"))
    p.add_argument("--skip-cold", action="store_true")
    p.add_argument("--again", action="store_true",
                   help="check each commit a second time on the same cache (its base known)")
    p.add_argument("--keep", type=Path, help="write each reply's text to this dir")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bpbot-realtree-"))
    try:
        rules = _rules(args, work)
        counts = dict(pass_=0, fail=0, base_fails=0, not_tested=0)
        times: list[float] = []
        again: list[float] = []
        for commit in _commits(args):
            patch_dir = work / f"p-{commit[:12]}"
            subprocess.run(["git", "-C", str(args.tree), "format-patch", "-q", "-1", commit,
                            f"--base={commit}~1", "-o", str(patch_dir)], check=True)
            verdict, took = _check(args, rules, work / "cache", commit, patch_dir, "")
            times.append(took)
            word = verdict.lower()
            key = "fail" if "fail" in word and "base" not in word else \
                "base_fails" if "base" in word else "pass_" if "pass" in word else \
                "not_tested" if word in ("not-tested", "partial") else None
            if key:
                counts[key] += 1
            if args.again:
                again.append(_check(args, rules, work / "cache", commit, patch_dir, "again")[1])
        cold = 0.0 if args.skip_cold else _cold(args, work)
        median = statistics.median(times) if times else 0.0
        print(f"series={len(times)} pass={counts['pass_']} fail={counts['fail']} "
              f"base_fails={counts['base_fails']} not_tested={counts['not_tested']} "
              f"median_s={median:.1f} cold_s={cold:.1f}"
              + (f" again_median_s={statistics.median(again):.1f}" if again else ""))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _check(args, rules: Path, cache: Path, commit: str, patch_dir: Path,
           label: str) -> tuple[str, float]:
    """One `bpbot check` of a commit's patch: prints its line; (verdict, seconds)."""
    started = time.monotonic()
    res = subprocess.run([str(BPBOT), "check", "--rules", str(rules), "--cache", str(cache),
                          "--json", *map(str, sorted(patch_dir.glob("*.patch")))],
                         capture_output=True, text=True, timeout=7200)
    took = time.monotonic() - started
    headline = ""
    try:
        data = json.loads(res.stdout)
        verdict = data["series"][0].get("verdict", "?") if data.get("series") else "none"
        text = data["replies"][0]["text"] if data.get("replies") else ""
        headline = next((ln for ln in text.splitlines() if ln.startswith("Verdict:")), "")
    except (ValueError, KeyError, IndexError):
        verdict, text = f"exit {res.returncode}", res.stdout + res.stderr
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        (args.keep / f"{commit[:12]}{'-' + label if label else ''}.txt").write_text(text)
    subject = subprocess.run(["git", "-C", str(args.tree), "log", "-1", "--format=%s", commit],
                             capture_output=True, text=True).stdout.strip()
    print(f"{commit[:12]} {verdict:<12} {took:7.1f}s exit={res.returncode} {label:<5} "
          f"{subject[:60]}\n    {headline}", flush=True)
    return verdict, took


if __name__ == "__main__":
    sys.exit(main())
