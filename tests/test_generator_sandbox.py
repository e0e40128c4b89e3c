"""What the real generator (gentree.py) needs from the sandbox, tested with
small stand-ins: multiprocessing (coccinelle's pycocci), its own output-dir
handling, `git describe` in the series' worktree."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from pathlib import Path

import pytest

from bot.config import rules as config
from bot.demo import layout
from bot.sandbox import bwrap as sandbox
from bot.sandbox import git, proc
from bot.sandbox.bwrap import Sandbox
from bot.testrun import baseline, generate
from bot.testrun.steps import INFRA, SUCCESS

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")


def test_multiprocessing_works_in_the_sandbox(tmp_path):
    """pycocci runs spatch workers through multiprocessing, whose locks need a
    writable /dev/shm."""
    box = Sandbox.detect("bwrap", hide=[])
    code = "import multiprocessing as m; q = m.Queue(); q.put(7); print('got', q.get())"
    argv, env = box.wrap([sys.executable, "-c", code], readonly=[], writable=[tmp_path])
    res = proc.run(argv, env=env, timeout=120)
    assert res.ok and "got 7" in res.output, res.output


STAND_IN = """\
import os, shutil, subprocess, sys
tree, out = sys.argv[1], sys.argv[2]
# As gentree.py's check_output_dir: remove the output dir, then make it anew.
shutil.rmtree(out, ignore_errors=True)
try:
    os.rmdir(out)
except FileNotFoundError:
    pass
os.mkdir(out)
d = subprocess.run(["git", "describe", "--always", "--long", "--dirty"], cwd=tree,
                   capture_output=True, text=True)
if d.returncode:
    sys.exit("git describe: " + d.stderr)
open(os.path.join(out, "versions"), "w").write(d.stdout)
"""


def _worktree(tmp_path):
    rules = layout.prepare(tmp_path / "work", with_list=False)
    wt = tmp_path / "work" / "wt"
    assert git.git(rules.tree_path, "worktree", "add", "-q", "--detach", str(wt), "HEAD").ok
    (wt / "stand_in.py").write_text(STAND_IN)
    rules = dataclasses.replace(rules, generate_commands=[
        ["{python}", "{tree}/stand_in.py", "{tree}", "{output}"]])
    return rules, wt


def test_generator_remakes_its_output_dir_and_describes_the_worktree(tmp_path):
    """gentree.py removes its output dir (EBUSY on a bind mount) and runs `git
    describe` in the series' worktree (whose git metadata is in the main repo)."""
    rules, wt = _worktree(tmp_path)
    paths = baseline.WorkPaths(tmp_path / "run")
    for _ in range(2):  # and again over the first run's output
        step = generate.generate(rules, sandbox.for_rules(rules), wt, paths.out, tmp_path / "gen.log")
        assert step.status == SUCCESS, (tmp_path / "gen.log").read_text()[-2000:]
    head = git.git(wt, "rev-parse", "--short", "HEAD").output.strip()
    assert head in (paths.out / "versions").read_text()


def test_generate_never_empties_a_dir_it_does_not_own(tmp_path):
    rules, wt = _worktree(tmp_path)
    precious = tmp_path / "mine" / "keep.txt"
    precious.parent.mkdir()
    precious.write_text("x")
    step = generate.generate(rules, sandbox.for_rules(rules), wt, tmp_path / "mine" / "out",
                             tmp_path / "gen.log")
    assert step.status == INFRA and "holds other files" in step.detail
    assert precious.read_text() == "x"


REAL_TREE = os.environ.get("BPBOT_REAL_TREE")
REAL_UPSTREAM = os.environ.get("BPBOT_REAL_UPSTREAM")


@pytest.mark.realtree
@pytest.mark.skipif(not (REAL_TREE and REAL_UPSTREAM),
                    reason="set BPBOT_REAL_TREE and BPBOT_REAL_UPSTREAM (make realtree-test)")
def test_real_gentree_generates_in_the_shipped_sandbox(tmp_path):
    """The real backports tree's gentree.py, with rules/backports.toml's generate
    command, in the shipped (bubblewrap) sandbox, from a worktree."""
    rules = dataclasses.replace(config.load(config.RULES_DIR / "backports.toml"),
                                state_dir=tmp_path / "state", tree_path=Path(REAL_TREE),
                                upstream=Path(REAL_UPSTREAM))
    assert rules.sandbox == "bwrap"
    wt = tmp_path / "state" / "work" / "src"
    assert git.git(Path(REAL_TREE), "worktree", "add", "-q", "--detach", str(wt), "HEAD").ok
    try:
        paths = baseline.WorkPaths(tmp_path / "state" / "work")
        step = generate.generate(rules, sandbox.for_rules(rules), wt, paths.out, tmp_path / "gen.log")
        log = (tmp_path / "gen.log").read_text()
        assert step.status == SUCCESS, log[-3000:]
        assert (paths.out / "versions").is_file() and (paths.out / "Makefile").is_file()
    finally:
        git.git(Path(REAL_TREE), "worktree", "remove", "--force", str(wt))


def test_the_generator_never_sees_a_repository_config(tmp_path):
    """A remote URL with a token in .git/config must not reach the generator (and
    from there the public reply)."""
    rules, wt = _worktree(tmp_path)
    assert git.git(rules.tree_path, "config", "remote.origin.url",
                   "https://bot:ghp_SECRET123@example.org/tree.git").ok
    (wt / "stand_in.py").write_text(STAND_IN + """
url = subprocess.run(["git", "config", "remote.origin.url"], cwd=tree, capture_output=True,
                     text=True).stdout
open(os.path.join(out, "url"), "w").write(url + open(os.path.join(os.path.dirname(
    subprocess.run(["git", "rev-parse", "--git-common-dir"], cwd=tree, capture_output=True,
                   text=True).stdout.strip() + "/x"), "config")).read())
""")
    paths = baseline.WorkPaths(tmp_path / "run")
    step = generate.generate(rules, sandbox.for_rules(rules), wt, paths.out, tmp_path / "gen.log")
    assert step.status == SUCCESS, (tmp_path / "gen.log").read_text()[-2000:]
    assert "SECRET" not in (paths.out / "url").read_text()
    assert (paths.out / "versions").read_text().strip()  # git describe still works


def test_a_package_dir_replaced_by_a_symlink_fails_the_generate_step(tmp_path):
    rules, wt = _worktree(tmp_path)
    (wt / "stand_in.py").write_text(
        "import os, shutil, sys\nout = sys.argv[2]\nshutil.rmtree(out)\n"
        "os.symlink('../../work', out)\n")
    paths = baseline.WorkPaths(tmp_path / "run")
    step = generate.generate(rules, sandbox.for_rules(rules), wt, paths.out, tmp_path / "gen.log")
    assert step.status == "failed" and "symlink" in step.detail
