"""Widening the config must not hide the series' own errors: the base has an
old error in a driver the default config never compiles (3.10, 4.14); a
series that breaks compat/backport-5.10.c (compiled by the default config on
3.10 and 4.14) and also touches the driver's patch, which widens the config,
is still a FAIL: the kernels where the widened base breaks are built as
configured."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_coverage import PATCH, _run, commit_and_format  # noqa: E402
from test_widen import WIDEN, _configured  # noqa: E402

from bot.sandbox import git  # noqa: E402

BASE_BUG = ("minidrv_tx_timeout(ndev, 0);", "minidrv_tx_timeout(ndev, 0) + no_base_symbol;")
COMPAT_BUG = "\nint series_bug = no_series_symbol;\n"


def _break_base(rules):
    target = rules.tree_path / PATCH
    target.write_text(target.read_text().replace(*BASE_BUG))
    assert git.git(rules.tree_path, "commit", "-qam", "patches: hidden driver bug").ok


def _series(rules, name, touch_patch):
    tree = rules.tree_path
    assert git.git(tree, "checkout", "-q", "-b", name, "main").ok
    compat = tree / "compat/backport-5.10.c"
    compat.write_text(compat.read_text() + COMPAT_BUG)
    if touch_patch:  # a comment in the driver: harmless, but it widens the config
        p = tree / PATCH
        text = p.read_text().replace("@@ -58,10 +58,21 @@", "@@ -58,10 +58,22 @@")
        text = text.replace("+#endif\n", "+#endif\n+/* harmless */\n", 1)
        p.write_text(text)
    return commit_and_format(tree, name, f"compat: {name}")


def test_control_without_widening_it_fails(tmp_path):
    rules, state = _configured(tmp_path, WIDEN)
    _break_base(rules)
    outcome, reply, code = _run(rules, state, _series(rules, "plain", False))
    assert outcome.verdict == "fail", reply


def test_kernels_the_widened_base_breaks_are_built_as_configured(tmp_path):
    rules, state = _configured(tmp_path, WIDEN)
    _break_base(rules)
    outcome, reply, code = _run(rules, state, _series(rules, "widened", True))
    assert outcome.widened == ["CONFIG_MINIDRV"], outcome.widened
    assert outcome.verdict == "fail", (outcome.verdict, reply[:3000])
    assert outcome.widened_on == ["6.1"]
    assert {k.kernel.name: bool(k.new_errors) for k in outcome.kernels} == {
        "3.10": True, "4.14": True, "6.1": False}
    assert ("Not on 3.10, 4.14: the base does not build widened there, so they were built "
            "as configured.") in reply
