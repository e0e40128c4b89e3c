"""A series the base already has."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tree_side import Bot, append, make_rules, series  # noqa: E402

from bot.sandbox import git  # noqa: E402


def test_already_applied_is_not_tested(tmp_path):
    rules = make_rules(tmp_path)
    raw = series(rules, "applied", ("compat: add bp_a", append("compat/main.c", "\nint bp_a;\n")))
    assert git.git(rules.tree_path, "merge", "-q", "--ff-only", "applied").ok
    out = Bot(rules, "warm").test(raw)
    print(out.verdict, out.untested)
    assert out.verdict == "not-tested" and "already applied" in (out.untested or "")
