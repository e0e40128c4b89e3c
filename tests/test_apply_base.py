"""The base: base-commit when it is on a branch of the tree, else the subject
tag's branch, else the branch head; never a commit only the bot's own
worktrees made (git am of an untested series)."""

from __future__ import annotations

from bot.demo import layout
from bot.sandbox import git
from bot.testrun import apply


def test_base_choice(tmp_path):
    rules = layout.prepare(tmp_path / "work", with_list=False)
    tree = rules.tree_path
    head = git.rev_parse(tree, "main")
    old = tree / "compat" / "main.c"
    old.write_text(old.read_text() + "\n/* newer */\n")
    assert git.git(tree, "commit", "-qam", "newer").ok
    new_head = git.rev_parse(tree, "main")
    base = apply.choose_base(rules, head[:12], [])
    assert (base.ref, base.commit, base.reason) == ("main", head, "base-commit named in the series")
    # A commit on no branch (as `git am` leaves in a detached worktree).
    assert git.git(tree, "checkout", "-q", "--detach").ok
    old.write_text(old.read_text() + "\n/* stray */\n")
    assert git.git(tree, "commit", "-qam", "stray").ok
    stray = git.rev_parse(tree, "HEAD")
    assert git.git(tree, "checkout", "-q", "main").ok
    base = apply.choose_base(rules, stray, [])
    assert base.commit == new_head and "not on a branch" in base.reason
    base = apply.choose_base(rules, "", ["main"])
    assert base.commit == new_head and "subject tag [main]" in base.reason
    assert apply.choose_base(rules, "", []).reason == "head of main"
