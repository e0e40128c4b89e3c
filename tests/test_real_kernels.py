"""The sample tree's generated package built with real kbuild against Debian's
linux-headers for 6.1 and 6.12 (rules/realkernels.toml).

A series that uses strlcpy(), which Linux 6.8 removed, must PASS on 6.1 and
FAIL on 6.12 with the compiler's error; a clean series passes on both.
deploy/install-kernel-headers.sh installs the headers (make test runs it).
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from bot.config import rules as config
from bot.demo import layout
from bot.ingest import spool
from bot.reply import results
from bot.sandbox import bwrap as sandbox
from bot.sandbox import git
from bot.series import tracker
from bot.series.assembly import configure_b4
from bot.state import State
from bot.testrun import pipeline

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def headers():
    res = subprocess.run([str(ROOT / "deploy" / "install-kernel-headers.sh"), "--print"],
                         capture_output=True, text=True, check=False)
    found = res.stdout.split()
    if len(found) < 2:
        pytest.fail("Debian linux-headers for 6.1 and 6.12 are not installed: run "
                    "deploy/install-kernel-headers.sh (make test does)", pytrace=False)
    return found


def _series(rules, name: str, old: str, new: str) -> bytes:
    tree = rules.tree_path
    assert git.git(tree, "checkout", "-q", "-b", name).ok
    module = tree / "patches" / f"0002-{name}" / "bpdemo.patch"
    module.parent.mkdir(parents=True)
    # A patches/ entry, as backports does it: a diff of the upstream module.
    module.write_text(
        "--- a/samples/bpdemo/bpdemo.c\n+++ b/samples/bpdemo/bpdemo.c\n"
        "@@ -19,3 +19,3 @@ static int __init bpdemo_init(void)\n {\n"
        f"-{old}\n+{new}\n \ttimer_setup(&bpdemo_timer, bpdemo_tick, 0);\n")
    assert git.git(tree, "add", "-A").ok
    assert git.git(tree, "commit", "-qm", f"patches: bpdemo: {name}").ok
    res = git.git(tree, "format-patch", "--stdout", "-1",
                  f"--add-header=Message-ID: <{name}@example.org>")
    assert git.git(tree, "checkout", "-q", "main").ok
    return res.output.encode()


def test_real_kbuild_on_debian_6_1_and_6_12(tmp_path, headers):
    work = tmp_path / "work"
    layout.prepare(work, with_list=False)
    rules = config.load(config.RULES_DIR / "realkernels.toml", base_dir=work)
    rules = dataclasses.replace(rules, grace_seconds=0)
    assert [k.name for k in rules.kernels] == ["6.1", "6.12"]
    assert rules.kernels[1].version_tuple >= (6, 12, 0)
    configure_b4(rules.bot_name, rules.bot_address)
    state = State(rules.state_dir / "bpbot.sqlite")
    strscpy = '\tstrscpy(bpdemo_name, "bpdemo", sizeof(bpdemo_name));'
    raws = [
        _series(rules, "strlcpy", strscpy,
                '\tstrlcpy(bpdemo_name, "bpdemo", sizeof(bpdemo_name));'),
        _series(rules, "clean", strscpy,
                '\tstrscpy(bpdemo_name, "bpdemo-2", sizeof(bpdemo_name));'),
    ]
    outcomes = []
    for raw in raws:
        spool.spool(state, "test", [raw], bot_address=rules.bot_address, loop_id=rules.loop_id)
        tracker.assemble(state, rules)
        version = pipeline.next_ready(state)
        outcomes.append(results.run_version(state, rules, sandbox.for_rules(rules), version))
    broken, clean = outcomes
    assert {k.kernel.name: k.verdict for k in broken.kernels} == {"6.1": "pass", "6.12": "fail"}
    step = next(s for s in broken.steps if s.name == "build" and s.kernel == "6.12")
    assert any("strlcpy" in d.text and d.file.endswith("bpdemo.c") for d in step.errors), \
        step.diagnostics
    assert {k.kernel.name: k.verdict for k in clean.kernels} == {"6.1": "pass", "6.12": "pass"}
