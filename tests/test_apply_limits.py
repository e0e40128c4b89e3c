"""git am runs under prlimit: when prlimit itself fails (a limit it cannot set,
git it cannot start, a broken binary), git am never ran. That is the bot's
failure (an InfraError: retried), never the series' "does not apply"."""

from __future__ import annotations

import pytest

from bot.demo import layout
from bot.errors import InfraError
from bot.sandbox import git
from bot.sandbox import limits as lim
from bot.testrun import apply

FAKE_PRLIMITS = {
    "cannot set a limit": 'echo "prlimit: failed to set the AS resource limit: '
                          'Operation not permitted" >&2; exit 1',
    "cannot execute git": 'echo "prlimit: failed to execute git: No such file or directory" >&2; '
                          "exit 127",
    "silent failure": "exit 1",
    "killed": "kill -SEGV $$",
}


def _series(rules) -> bytes:
    """One patch that applies cleanly to the sample tree's head."""
    tree = rules.tree_path
    target = tree / "compat" / "main.c"
    target.write_text(target.read_text() + "\n/* applies */\n")
    assert git.git(tree, "commit", "-qam", "compat: a comment").ok
    mbox = git.git(tree, "format-patch", "--stdout", "-1").output.encode()
    assert git.git(tree, "reset", "-q", "--hard", "HEAD~1").ok
    return mbox


def _am(rules, tmp_path, mbox: bytes) -> apply.ApplyResult:
    work = tmp_path / "wt"
    apply.add_worktree(rules, apply.choose_base(rules, "", []), work)
    try:
        return apply.am(rules, work, mbox, tmp_path / "apply.log")
    finally:
        apply.remove_worktree(rules, work)


@pytest.mark.parametrize("script", FAKE_PRLIMITS.values(), ids=FAKE_PRLIMITS.keys())
def test_a_failing_prlimit_is_the_bots_failure_not_the_series(tmp_path, monkeypatch, script):
    rules = layout.prepare(tmp_path / "work", with_list=False)
    mbox = _series(rules)
    fake = tmp_path / "prlimit"
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    monkeypatch.setattr(lim, "prlimit_binary", lambda: str(fake))
    with pytest.raises(InfraError, match="prlimit"):
        _am(rules, tmp_path, mbox)


def test_a_series_that_does_not_apply_is_still_the_series_failure(tmp_path):
    """With the real prlimit, a patch against text the base lacks fails as before."""
    rules = layout.prepare(tmp_path / "work", with_list=False)
    mbox = _series(rules).replace(b"\n/* applies */", b"\n/* applies */").replace(
        b" }\n", b" } /* not in the base */\n", 1)
    result = _am(rules, tmp_path, mbox)
    assert not result.ok and not result.refused


def test_a_path_named_like_prlimit_output_does_not_make_a_failure_the_bots(tmp_path):
    """git am's own lines may start with a path the series chose ("prlimit: x"):
    once git am ran (an "Applying:" line), its failure is the series'."""
    rules = layout.prepare(tmp_path / "work", with_list=False)
    tree = rules.tree_path
    (tree / "prlimit: failed").write_text("a\n")
    assert git.git(tree, "add", "-A").ok and git.git(tree, "commit", "-qm", "add").ok
    (tree / "prlimit: failed").write_text("a \nb\n")
    assert git.git(tree, "commit", "-qam", "change").ok
    mbox = git.git(tree, "format-patch", "--stdout", "-1").output.encode()
    assert git.git(tree, "reset", "-q", "--hard", "HEAD~2").ok
    result = _am(rules, tmp_path, mbox)
    assert not result.ok and "Applying:" in result.log
