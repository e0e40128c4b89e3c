"""Never a PASS for what was not tested: on the sample tree (real gentree.py
and gcc), what was not built says why, and `bpbot check` exits 2 for it."""

from __future__ import annotations

import dataclasses
import email
import email.policy

from bot import check, cli
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

KERNELS = ["3.10", "3.16", "4.4", "4.9", "4.14", "4.19", "5.4", "5.10", "5.15", "6.1"]


def _setup(tmp_path, **changes):
    rules = layout.prepare(tmp_path / "work", with_list=False)
    rules = dataclasses.replace(rules, grace_seconds=0, **changes)
    configure_b4(rules.bot_name, rules.bot_address)
    return rules, State(rules.state_dir / "bpbot.sqlite")


def _commit(rules, path: str, text: str, message: str) -> None:
    target = rules.tree_path / path
    target.write_text(target.read_text() + text)
    assert git.git(rules.tree_path, "commit", "-qam", message).ok


def _series(rules, name: str, path: str, text: str, on_main: bool = False) -> bytes:
    """A one-patch series appending ``text`` to ``path``; ``on_main``: the commit
    stays on main, so the base already has it."""
    tree = rules.tree_path
    if not on_main:
        assert git.git(tree, "checkout", "-q", "-b", name).ok
    _commit(rules, path, text, f"compat: {name}")
    res = git.git(tree, "format-patch", "--stdout", "-1",
                  f"--add-header=Message-ID: <{name}@example.org>")
    assert git.git(tree, "checkout", "-q", "main").ok
    return res.output.encode()


def _test(rules, state, raw: bytes):
    spool.spool(state, "test", [raw], bot_address=rules.bot_address, loop_id=rules.loop_id)
    tracker.assemble(state, rules)
    outcome = results.run_version(state, rules, sandbox.for_rules(rules),
                                   pipeline.next_ready(state))
    raw = bytes(state.query("SELECT raw FROM outbox ORDER BY id")[-1]["raw"])
    reply = email.message_from_bytes(raw, policy=email.policy.default).get_content()
    verdicts = [r["verdict"] for r in state.query("SELECT verdict FROM versions")]
    return outcome, reply, check._exit_code(verdicts)


HARMLESS = ("compat/main.c", "\nint bpbot_harmless;\n")


def test_base_that_does_not_generate_is_not_tested_never_pass(tmp_path):
    rules, state = _setup(tmp_path)
    _commit(rules, "copy-list", "drivers/no/such/file.c\n", "copy-list: break the base")
    outcome, reply, code = _test(rules, state, _series(rules, "harmless", *HARMLESS))
    assert outcome.verdict == "not-tested" and code == 2
    assert "Verdict: NOT TESTED: the base does not generate (not the series' fault)" in reply
    assert "PASS" not in reply


def test_series_that_breaks_generation_fails_with_the_generators_error(tmp_path):
    rules, state = _setup(tmp_path)
    raw = _series(rules, "breaks-gen", "copy-list", "drivers/no/such/file.c\n")
    outcome, reply, code = _test(rules, state, raw)
    assert outcome.verdict == "fail" and code == 1
    headline = " ".join(reply.split("Verdict:")[1].split("Base:")[0].split())
    assert headline.startswith("FAIL: generation of the package fails (the base generates fine)")
    assert "does not exist" in headline  # gentree's own words


def test_every_kernel_dir_missing_is_not_tested_and_check_exits_2(tmp_path, capsys):
    rules, _ = _setup(tmp_path)
    text = config.DEMO_RULES.read_text().replace('path = "kernels/', 'path = "gone/')
    rules_file = tmp_path / "work" / "missing-kernels.toml"
    rules_file.write_text(text)
    mbox = tmp_path / "series.mbox"
    mbox.write_bytes(_series(rules, "harmless", *HARMLESS))
    assert cli.main(["check", "--rules", str(rules_file), str(mbox)]) == 2
    out = capsys.readouterr().out
    assert ("Verdict: NOT TESTED: no kernel was built: kernel dir missing on 3.10, 3.16, 4.4"
            in " ".join(out.split()))
    assert out.count("not built: kernel dir missing") == len(KERNELS)
    assert "base already fails" not in out and "PASS" not in out


def test_some_kernel_dirs_missing_is_partial_naming_them(tmp_path):
    rules, state = _setup(tmp_path)
    kernels = [k if k.name not in ("4.4", "5.10") else
               dataclasses.replace(k, path=tmp_path / "gone" / k.name) for k in rules.kernels]
    rules = dataclasses.replace(rules, kernels=kernels)
    outcome, reply, code = _test(rules, state, _series(rules, "harmless", *HARMLESS))
    assert outcome.verdict == "partial" and code == 2
    assert ("Verdict: PARTIAL: no new errors on the 8 of 10 kernels built; not built: kernel "
            "dir missing on 4.4, 5.10") in " ".join(reply.split())


def test_series_already_in_the_base_is_not_built(tmp_path):
    rules, state = _setup(tmp_path)
    raw = _series(rules, "already", *HARMLESS, on_main=True)
    outcome, reply, code = _test(rules, state, raw)
    assert outcome.verdict == "not-tested" and code == 2
    assert "Verdict: NOT TESTED: already applied in the base" in reply
    assert not [s for s in outcome.steps if s.name == "build"]
    assert state.query("SELECT * FROM baselines") == []  # nothing was built at all


# A guard form the old subset did not parse: only 4.9 compiles the broken line.
ONLY_4_9 = ("\n#if LINUX_VERSION_CODE >= 0x040900 && LINUX_VERSION_CODE < 0x040a00\n"
            "int bpbot_broken = undefined_symbol;\n#endif\n")


def test_every_kernel_gets_a_verdict_and_a_middle_kernel_break_is_caught(tmp_path):
    rules, state = _setup(tmp_path)
    outcome, reply, code = _test(rules, state, _series(rules, "breaks-4.9", "compat/main.c",
                                                       ONLY_4_9))
    verdicts = {k.kernel.name: k.verdict for k in outcome.kernels}
    assert verdicts == {**{k: "pass" for k in KERNELS}, "4.9": "fail"}
    assert outcome.verdict == "fail" and code == 1
    assert "not in the subset" not in reply
    # The guards order the builds: 4.4 | 4.9 | 4.14 around 4.9.0 and 4.10.0 first.
    assert ("4.9 built first because at or above 4.9.0 (LINUX_VERSION_CODE >= 0x040900"
            in " ".join(reply.split()))


def test_max_kernels_cuts_to_a_partial_verdict_naming_the_rest(tmp_path):
    rules, state = _setup(tmp_path, subset_max_kernels=3)
    outcome, reply, code = _test(rules, state, _series(rules, "harmless", *HARMLESS))
    built = [k.kernel.name for k in outcome.kernels if k.verdict == "pass"]
    assert built == ["3.10", "3.16", "6.1"]  # the oldest and newest first, then in order
    assert outcome.verdict == "partial" and code == 2
    assert ("not built: past [subset] max_kernels = 3 on 4.4, 4.9, 4.14, 4.19, 5.4, 5.10, "
            "5.15") in " ".join(reply.split())
