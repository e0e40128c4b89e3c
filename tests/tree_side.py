"""Series made from the tree's side (tests/test_tree_side_*.py), answered by a warm bot
and by a clean one (no reuse, no ccache), and the two answers compared."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_reuse import KERNELS, _answer  # noqa: E402,F401
from test_reuse import Bot as _Bot  # noqa: E402

from bot.demo import layout
from bot.ingest import sources, spool
from bot.reply import results
from bot.sandbox import bwrap as sandbox
from bot.sandbox import git
from bot.series import tracker
from bot.series.assembly import configure_b4
from bot.testrun import pipeline


class Bot(_Bot):
    """test_reuse's Bot, fed every mail of an mbox."""

    def test(self, raw: bytes):
        mails = sources.read_mbox(raw) if raw.startswith(b"From ") else [raw]
        spool.spool(self.state, "test", mails, bot_address=self.rules.bot_address,
                    loop_id=self.rules.loop_id)
        tracker.assemble(self.state, self.rules)
        version = pipeline.next_ready(self.state)
        assert version is not None, "no version ready"
        return results.run_version(self.state, self.rules, sandbox.for_rules(self.rules),
                                   version)


def make_rules(tmp_path):
    rules = layout.prepare(tmp_path / "work", with_list=False)
    configure_b4(rules.bot_name, rules.bot_address)
    return dataclasses.replace(rules, grace_seconds=0,
                               kernels=[k for k in rules.kernels if k.name in KERNELS])


def sh(tree: Path, *cmd: str) -> str:
    res = subprocess.run(cmd, cwd=tree, capture_output=True, text=True)
    assert res.returncode == 0, (cmd, res.stderr)
    return res.stdout


def commit_on_main(rules, message: str, edit) -> None:
    tree = rules.tree_path
    edit(tree)
    assert git.git(tree, "add", "-A").ok
    assert git.git(tree, "commit", "-qm", message).ok


def series(rules, name: str, *patches, extra=()) -> bytes:
    """Each of ``patches`` is (subject, edit(tree)); one commit each; the mbox."""
    tree = rules.tree_path
    assert git.git(tree, "checkout", "-q", "-b", name, "main").ok
    for subject, edit in patches:
        edit(tree)
        assert git.git(tree, "add", "-A").ok
        res = git.git(tree, "commit", "-qm", subject)
        assert res.ok, res.output
    n = len(patches)
    res = git.git(tree, "format-patch", "--stdout", f"-{n}", "--thread=shallow",
                  *(["--cover-letter"] if n > 1 else []),
                  f"--add-header=Message-ID: <{name}@example.org>" if n == 1 else "--no-signature",
                  *extra, f"HEAD~{n}..HEAD" if n > 1 else "-1")
    assert git.git(tree, "checkout", "-q", "main").ok
    return res.output.encode()


def append(path: str, text: str):
    def edit(tree):
        p = tree / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text((p.read_text() if p.exists() else "") + text)
    return edit


def replace(path: str, old: str, new: str):
    def edit(tree):
        p = tree / path
        t = p.read_text()
        assert old in t, (path, old)
        p.write_text(t.replace(old, new))
    return edit


def per_kernel(outcome) -> dict:
    return {k.kernel.name: (k.verdict, k.new_errors) for k in outcome.kernels}


def compare(rules, cases) -> list[str]:
    """Run every (name, raw) through a warm bot and a clean bot; the differences."""
    warm_bot = Bot(rules, "warm")
    clean_bot = Bot(rules, "cold", build_reuse=False, ccache=False)
    problems = []
    for name, raw in cases:
        inc = warm_bot.test(raw)
        cln = clean_bot.test(raw)
        a, b = _answer(inc), _answer(cln)
        line = f"{name}: warm={inc.verdict} {per_kernel(inc)} clean={cln.verdict} {per_kernel(cln)}"
        print(line)
        if a != b:
            problems.append(line + f"\n   warm answer {a}\n   clean answer {b}")
    return problems
