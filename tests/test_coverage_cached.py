"""A series changing only code that no kernel compiles, on a base already built
(every series after the first): every kernel is untouched, nothing is built,
and coverage comes from what each kernel's base build compiled: NOT TESTED,
as on a fresh bot, never PASS."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_reuse import Bot, _series  # noqa: E402

from bot.demo import layout  # noqa: E402
from bot.series.assembly import configure_b4  # noqa: E402


def _rules(tmp_path, names):
    rules = layout.prepare(tmp_path / "work", with_list=False)
    configure_b4(rules.bot_name, rules.bot_address)
    return dataclasses.replace(rules, grace_seconds=0,
                               kernels=[k for k in rules.kernels if k.name in names])


def test_first_run_says_not_tested(tmp_path):
    """Control: on a cold bot (base built in this run) it is NOT TESTED."""
    rules = _rules(tmp_path, ("5.4", "6.1"))
    bot = Bot(rules, "cold")
    out = bot.test(_series(rules, "dead", "compat/backport-4.19.c",
                           "\nint broken = no_such_symbol;\n"))
    assert out.verdict == "not-tested", (out.verdict, out.file_coverage)


def test_second_series_on_a_cached_base_is_not_tested_either(tmp_path):
    rules = _rules(tmp_path, ("5.4", "6.1"))
    bot = Bot(rules, "warm")
    first = bot.test(_series(rules, "warmup", "compat/main.c", "\nint bpbot_warm;\n"))
    assert first.verdict == "pass"
    out = bot.test(_series(rules, "dead", "compat/backport-4.19.c",
                           "\nint broken = no_such_symbol;\n"))
    # compat/backport-4.19.c is compiled only below 4.19: on neither kernel.
    assert out.verdict == "not-tested", (out.verdict, out.file_coverage,
                                   [(k.kernel.name, k.verdict, k.detail) for k in out.kernels])


BPDEMO_PATCH = "\n".join([
    "--- a/samples/bpdemo/bpdemo.c",
    "+++ b/samples/bpdemo/bpdemo.c",
    "@@ -10,2 +10,3 @@",
    " ",
    " static struct timer_list bpdemo_timer;",
    "+static int bpdemo_broken = no_such_symbol;",
    " static char bpdemo_name[16];",
    ""])


def test_bpbot_check_twice_is_not_tested_both_times(tmp_path):
    """End to end with the embedded rules: a series adding a patches/ file that
    breaks samples/bpdemo/bpdemo.c (which the sample package never compiles).
    `bpbot check` with a fresh cache, then again with the warm cache: NOT
    TESTED (exit 2) both times."""
    import subprocess

    from bot.sandbox import git
    rules = layout.prepare(tmp_path / "w", with_list=False)
    tree = rules.tree_path
    assert git.git(tree, "checkout", "-q", "-b", "bpdemo", "main").ok
    p = tree / "patches/0002-bpdemo/bpdemo.patch"
    p.parent.mkdir(parents=True)
    p.write_text(BPDEMO_PATCH)
    assert git.git(tree, "add", "-A").ok
    assert git.git(tree, "commit", "-qm", "patches: break bpdemo").ok
    res = git.git(tree, "format-patch", "--stdout", "-1",
                  "--add-header=Message-ID: <bpdemo@example.org>")
    mbox = tmp_path / "bpdemo.mbox"
    mbox.write_bytes(res.output.encode())
    bpbot = str(Path(sys.executable).parent / "bpbot")
    cache = tmp_path / "cache"
    first = subprocess.run([bpbot, "check", "--cache", str(cache), str(mbox)],
                           capture_output=True, text=True)
    second = subprocess.run([bpbot, "check", "--cache", str(cache), str(mbox)],
                            capture_output=True, text=True)
    assert first.returncode == 2 and "NOT TESTED" in first.stdout
    assert second.returncode == 2 and "NOT TESTED" in second.stdout, second.stdout[:600]
