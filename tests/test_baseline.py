"""Baselines: the base is built too, once per base commit and kernel, and only
what the base does not have is blamed on the series."""

from __future__ import annotations

import dataclasses

from bot.demo import layout
from bot.ingest import spool
from bot.reply import results
from bot.sandbox import bwrap as sandbox
from bot.sandbox import git
from bot.series import tracker
from bot.series.assembly import configure_b4
from bot.state import State
from bot.testrun import pipeline

BROKEN_ON_6 = "\n#if LINUX_VERSION_IS_GEQ(6,0,0)\n#error the base is broken on 6.x\n#endif\n"


def _setup(tmp_path):
    rules = layout.prepare(tmp_path / "work", with_list=False)
    rules = dataclasses.replace(rules, grace_seconds=0)
    configure_b4(rules.bot_name, rules.bot_address)
    tree = rules.tree_path
    header = tree / "backport-include" / "linux" / "bitmap.h"
    header.write_text(header.read_text() + BROKEN_ON_6)
    assert git.git(tree, "commit", "-qam", "headers: break 6.x (the base)").ok
    return rules, State(rules.state_dir / "bpbot.sqlite")


def _series(rules, name: str, path: str, text: str) -> bytes:
    """A one-patch series appending ``text`` to ``path``, made with format-patch."""
    tree = rules.tree_path
    assert git.git(tree, "checkout", "-q", "-b", name).ok
    target = tree / path
    target.write_text(target.read_text() + text)
    assert git.git(tree, "commit", "-qam", f"compat: {name}").ok
    res = git.git(tree, "format-patch", "--stdout", "-1", "--thread",
                  f"--add-header=Message-ID: <{name}@example.org>")
    assert git.git(tree, "checkout", "-q", "main").ok
    return res.output.encode()


def _test(rules, state, raw: bytes):
    spool.spool(state, "test", [raw], bot_address=rules.bot_address, loop_id=rules.loop_id)
    tracker.assemble(state, rules)
    version = pipeline.next_ready(state)
    return results.run_version(state, rules, sandbox.for_rules(rules), version)


KERNELS = ["3.10", "3.16", "4.4", "4.9", "4.14", "4.19", "5.4", "5.10", "5.15", "6.1"]


def test_base_failure_is_never_blamed_and_base_is_built_once(tmp_path):
    rules, state = _setup(tmp_path)
    outcome = _test(rules, state, _series(rules, "harmless", "compat/main.c", "\nint bpbot_x;\n"))
    assert outcome.verdict == "pass"
    matrix = {k.kernel.name: k.verdict for k in outcome.kernels}
    assert matrix == {**{k: "pass" for k in KERNELS[:-1]}, "6.1": "base-fails"}
    baselines = {r["kernel"]: r["status"] for r in state.query("SELECT kernel, status FROM baselines")}
    assert baselines == {**{k: "success" for k in KERNELS[:-1]}, "6.1": "failed"}

    # A second series on the same base: the base is not built again, and a new
    # error on 6.1, where the base already fails, is still not blamed.
    raw = _series(rules, "breaks-6", "compat/main.c",
                  "\n#if LINUX_VERSION_IS_GEQ(6,0,0)\nint broken = undefined_symbol;\n#endif\n")
    outcome = _test(rules, state, raw)
    matrix = {k.kernel.name: k.verdict for k in outcome.kernels}
    assert matrix["6.1"] == "base-fails"
    assert outcome.verdict == "pass"
    assert len(state.query("SELECT kernel FROM baselines")) == len(KERNELS)  # all from the cache

    reply = state.query("SELECT raw FROM outbox ORDER BY id")[-1]["raw"].decode()
    assert "base already fails" in reply


def test_new_error_is_marked_and_old_ones_are_not(tmp_path):
    rules, state = _setup(tmp_path)
    raw = _series(rules, "breaks-old", "compat/main.c",
                  "\n#if LINUX_VERSION_IS_LESS(4,0,0)\nint broken = undefined_symbol;\n#endif\n")
    outcome = _test(rules, state, raw)
    matrix = {k.kernel.name: (k.verdict, k.new_errors) for k in outcome.kernels}
    assert matrix["3.10"] == matrix["3.16"] == ("fail", 1)
    assert matrix["4.4"] == ("pass", 0)
    assert matrix["6.1"][0] == "base-fails"
    assert outcome.verdict == "fail"
    reply = state.query("SELECT raw FROM outbox")[-1]["raw"].decode()
    assert ">> compat/main.c:" in reply and "'undefined_symbol' undeclared" in reply
    # The guard analysis orders the builds: 3.16 | 4.4 around the boundary first.
    assert "3.16  built first because below 4.0.0" in reply
