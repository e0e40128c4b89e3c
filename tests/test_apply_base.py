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


def test_a_conflict_names_the_file_the_patch_names_not_gits_rename_guess(tmp_path):
    """The patch changes compat/backport-6.4.c; the base renamed that file and
    changed it. git am -3's rename detection reports a conflict in the renamed
    file; the reply must name the file the patch names."""
    rules = layout.prepare(tmp_path / "work", with_list=False)
    tree = rules.tree_path
    body = "".join(f"int compat_fn_{i}(void) {{ return {i}; }}\n" for i in range(40))
    old = tree / "compat" / "backport-6.4.c"
    old.write_text(body)
    assert git.git(tree, "add", "-A").ok and git.git(tree, "commit", "-qm", "add 6.4").ok
    old.write_text(body.replace("return 7;", "return 70;"))
    assert git.git(tree, "commit", "-qam", "compat: change fn 7").ok
    mbox = git.git(tree, "format-patch", "--stdout", "-1").output.encode()
    assert git.git(tree, "reset", "-q", "--hard", "HEAD~1").ok
    assert git.git(tree, "mv", "compat/backport-6.4.c", "compat/backport-5.15.c").ok
    renamed = tree / "compat" / "backport-5.15.c"
    renamed.write_text(renamed.read_text().replace("return 7;", "return 77;"))
    assert git.git(tree, "commit", "-qam", "compat: rename to 5.15").ok
    base = apply.choose_base(rules, "", [])
    work = tmp_path / "wt"
    apply.add_worktree(rules, base, work)
    try:
        result = apply.am(rules, work, mbox, tmp_path / "apply.log")
    finally:
        apply.remove_worktree(rules, work)
    assert not result.ok
    assert "backport-5.15.c" in result.log, "git did not take the rename path; the case proves nothing"
    assert result.conflicts == ["compat/backport-6.4.c"]
