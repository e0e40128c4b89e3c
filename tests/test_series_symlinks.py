"""A series that adds or changes a symlink: the generator copies regular files
and the bot never follows a link with its own privileges, so the link is not
part of what is generated and built. Such a series is answered NOT TESTED,
naming the link, never PASS."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import pytest

from bot.demo import layout
from bot.sandbox import git
from bot.series.assembly import configure_b4
from bot.state import State
from bot.testrun import apply

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_coverage import _run as run_series  # noqa: E402

LINK = "backport-include/linux/bpbot_link.h"


@pytest.fixture
def rules(tmp_path):
    rules = layout.prepare(tmp_path / "work", with_list=False)
    configure_b4(rules.bot_name, rules.bot_address)
    return dataclasses.replace(rules, grace_seconds=0,
                               kernels=[k for k in rules.kernels if k.name in ("4.14", "6.1")])


def _series(rules, name: str, link_target: str, also: dict[str, str]) -> bytes:
    """One patch (real git format-patch) adding the symlink ``LINK`` and appending
    to the files of ``also``."""
    tree = rules.tree_path
    assert git.git(tree, "checkout", "-q", "-b", name, "main").ok
    os.symlink(link_target, tree / LINK)
    for path, text in also.items():
        (tree / path).write_text((tree / path).read_text() + text)
    assert git.git(tree, "add", "-A").ok
    assert git.git(tree, "commit", "-qm", f"backport-include: {name}").ok
    res = git.git(tree, "format-patch", "--stdout", "-1",
                  f"--add-header=Message-ID: <{name}@example.org>")
    assert git.git(tree, "checkout", "-q", "main").ok
    assert b"new file mode 120000" in res.output.encode()
    return res.output.encode()


def _run(rules, raw: bytes):
    outcome, reply, _code = run_series(rules, State(rules.state_dir / "bpbot.sqlite"), raw)
    return outcome, reply


@pytest.mark.parametrize("target, also", [
    ("bitmap.h", {}),
    ("/etc/passwd", {"compat/main.c": "\nint bpbot_with_link;\n"}),
], ids=["a link alone", "a link outside the tree, with a C change"])
def test_a_series_adding_a_symlink_is_not_tested_and_names_it(rules, target, also):
    outcome, reply = _run(rules, _series(rules, "adds-link", target, also))
    assert outcome.verdict == "not-tested"
    assert f"symlinks in a series are not tested: {LINK}" in reply
    assert "root:" not in reply


def test_links_lists_only_what_the_series_makes_a_symlink(rules, tmp_path):
    """Read from git's record of the applied series (modes), never from the
    worktree: a link is not followed to find out what it is."""
    tree = rules.tree_path
    base = git.rev_parse(tree, "main")
    os.symlink("main.c", tree / "compat" / "link.c")
    (tree / "compat" / "main.c").write_text("/* changed */\n")
    assert git.git(tree, "add", "-A").ok and git.git(tree, "commit", "-qm", "two").ok
    assert apply.symlinks(tree, base) == ["compat/link.c"]
    os.unlink(tree / "compat" / "link.c")
    (tree / "compat" / "link.c").write_text("now a file\n")
    assert git.git(tree, "add", "-A").ok and git.git(tree, "commit", "-qm", "three").ok
    assert apply.symlinks(tree, base) == []
