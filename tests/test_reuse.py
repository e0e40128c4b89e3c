"""Nothing built twice: series builds start from the base's warm trees (sample
tree, real gentree.py, make and gcc), and give the answers a clean build gives."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from bot.config import rules as config
from bot.demo import layout
from bot.errors import ConfigError
from bot.ingest import spool
from bot.reply import results
from bot.sandbox import bwrap as sandbox
from bot.sandbox import git
from bot.series import tracker
from bot.series.assembly import configure_b4
from bot.state import State
from bot.testrun import pipeline, verbatim, warm

# Three kernels keep the builds short: 4.14 compiles backport-4.19.c and
# backport-5.10.c, 5.4 only backport-5.10.c, 6.1 neither.
KERNELS = ("4.14", "5.4", "6.1")


@pytest.fixture
def tree(tmp_path):
    rules = layout.prepare(tmp_path / "work", with_list=False)
    configure_b4(rules.bot_name, rules.bot_address)
    return dataclasses.replace(rules, grace_seconds=0,
                               kernels=[k for k in rules.kernels if k.name in KERNELS])


def _series(rules, name: str, path: str, text: str) -> bytes:
    tree = rules.tree_path
    assert git.git(tree, "checkout", "-q", "-b", name, "main").ok
    target = tree / path
    target.write_text(target.read_text() + text)
    assert git.git(tree, "commit", "-qam", f"compat: {name}").ok
    res = git.git(tree, "format-patch", "--stdout", "-1",
                  f"--add-header=Message-ID: <{name}@example.org>")
    assert git.git(tree, "checkout", "-q", "main").ok
    return res.output.encode()


class Bot:
    """One state dir: runs series the way the daemon does."""

    def __init__(self, rules, name: str, **changes):
        self.rules = dataclasses.replace(rules, state_dir=rules.base_dir / name, **changes)
        self.state = State(self.rules.state_dir / "bpbot.sqlite")

    def test(self, raw: bytes):
        spool.spool(self.state, "test", [raw], bot_address=self.rules.bot_address,
                    loop_id=self.rules.loop_id)
        tracker.assemble(self.state, self.rules)
        return results.run_version(self.state, self.rules, sandbox.for_rules(self.rules),
                                   pipeline.next_ready(self.state))


def _answer(outcome) -> tuple:
    kernels = tuple((k.kernel.name, k.verdict, k.new_errors, k.new_warnings)
                    for k in outcome.kernels)
    new = sorted((s.kernel, d.file, d.line, d.text) for s in outcome.steps
                 if s.name == "build" for d in s.diagnostics if d.new)
    files = [(f.path, sorted(f.kernels)) for f in outcome.file_coverage or []]
    return outcome.verdict, kernels, new, files


def _builds(outcome) -> dict[str, str]:
    return {s.kernel: s.detail for s in outcome.steps if s.name == "build"}


SERIES = [
    ("breaks-5-4", "compat/main.c",
     "\n#if LINUX_VERSION_IS_LESS(5,10,0) && LINUX_VERSION_IS_GEQ(5,0,0)\n"
     "int bp_broken = no_such_symbol;\n#endif\n"),
    ("header-warns", "backport-include/linux/bitmap.h",
     "\nstatic inline int bp_unused_warning(void) { int unused; return 0; }\n"),
    ("old-only", "compat/backport-5.10.c", "\nint bp_old_only;\n"),
    ("breaks-old-only", "compat/backport-4.19.c", "\nint bp_old = undefined_thing;\n"),
]


def test_incremental_builds_answer_as_clean_builds(tree, caplog):
    """Verdicts, new diagnostics and coverage are the same both ways."""
    caplog.set_level(logging.INFO, logger="bot.testrun")
    bot = Bot(tree, "warm")
    cold = Bot(tree, "cold", build_reuse=False, ccache=False)
    for name, path, text in SERIES:
        raw = _series(tree, name, path, text)
        caplog.clear()
        incremental = bot.test(raw)
        assert "the generator copies verbatim" in caplog.text, name
        clean = cold.test(raw)
        assert _answer(incremental) == _answer(clean), name
    # Each series after the first was built from the base's trees.
    assert "incremental, from the base's build tree" in caplog.text


def test_a_kernel_that_compiles_nothing_changed_keeps_the_base_result(tree, caplog):
    """backport-5.10.c is compiled only below 5.10: 6.1 is not built again, yet
    gets its verdict (PASS, from the unchanged base)."""
    caplog.set_level(logging.INFO, logger="bot.testrun")
    bot = Bot(tree, "warm")
    bot.test(_series(tree, "first", "compat/main.c", "\nint bp_first;\n"))  # builds the base
    caplog.clear()
    outcome = bot.test(_series(tree, "old-only", "compat/backport-5.10.c", "\nint bp_x;\n"))
    builds = _builds(outcome)
    assert builds["6.1"] == pipeline.UNTOUCHED
    assert builds["4.14"] != pipeline.UNTOUCHED and builds["5.4"] != pipeline.UNTOUCHED
    assert {k.kernel.name: k.verdict for k in outcome.kernels} == dict.fromkeys(KERNELS, "pass")
    assert outcome.verdict == "pass"
    assert outcome.timings["series_cpu"] < outcome.timings.get("baseline_cpu", 0) + 5


def test_a_build_system_change_builds_every_kernel_clean(tree, caplog):
    caplog.set_level(logging.INFO, logger="bot.testrun")
    bot = Bot(tree, "warm")
    bot.test(_series(tree, "first", "compat/main.c", "\nint bp_first;\n"))
    caplog.clear()
    outcome = bot.test(_series(tree, "makefile", "Makefile.package", "\n# a comment\n"))
    assert "changes the build system (Makefile)" in caplog.text
    assert "incremental, from the base's build tree" not in caplog.text
    assert "copies verbatim" not in caplog.text  # the generator ran
    assert outcome.verdict == "pass" and UNTOUCHED_NOWHERE(outcome)


def UNTOUCHED_NOWHERE(outcome) -> bool:  # noqa: N802 - reads as a phrase in the assert
    return pipeline.UNTOUCHED not in _builds(outcome).values()


def test_verbatim_shortcut_refused_when_the_mapping_does_not_hold(tree, caplog):
    """A mapping that does not match the generator's output: checked on the base,
    refused (said in the log), and the generator runs."""
    caplog.set_level(logging.INFO, logger="bot.testrun")
    wrong = (("compat/*.c", "drivers/"),)  # compat/ files are not copied to drivers/
    bot = Bot(tree, "warm", generate_verbatim=wrong)
    bot.test(_series(tree, "first", "compat/main.c", "\nint bp_first;\n"))
    assert "[generate] verbatim does not hold (compat/backport-4.19.c is not in the" in caplog.text
    caplog.clear()
    outcome = bot.test(_series(tree, "second", "compat/main.c", "\nint bp_second;\n"))
    assert "not using [generate] verbatim on base" in caplog.text
    assert outcome.step("generate").detail != "from the base's package"
    assert outcome.verdict == "pass"


def test_warm_trees_are_never_written_by_a_series(tree):
    bot = Bot(tree, "warm")
    bot.test(_series(tree, "first", "compat/main.c", "\nint bp_first;\n"))

    def snapshot():
        return {str(p): (p.stat().st_mtime_ns, p.read_bytes()) for p in
                warm.root(bot.rules).rglob("*") if p.is_file()}
    before = snapshot()
    bot.test(_series(tree, "breaks", "compat/main.c", "\nint bp_b = nothing_here;\n"))
    assert snapshot() == before


@pytest.mark.parametrize("mapping, path, expected", [
    ((("backport/backport-include/**", "backport-include/"),),
     "backport/backport-include/linux/x.h", "backport-include/linux/x.h"),
    ((("backport/compat/*.[ch]", "compat/"),), "backport/compat/backport-6.4.c",
     "compat/backport-6.4.c"),
    ((("backport/compat/*.[ch]", "compat/"),), "backport/compat/sub/x.c", None),
    ((("backport/compat/*.[ch]", "compat/"),), "backport/compat/Makefile", None),
    ((("compat/**", "compat/"),), "compat/main.c", "compat/main.c"),
    ((("compat/**", "compat/"),), "copy-list", None),
])
def test_verbatim_paths(mapping, path, expected):
    assert verbatim.package_path(mapping, path) == expected


def test_verbatim_key_is_checked_at_load(tmp_path):
    path = tmp_path / "rules.toml"
    text = config.DEMO_RULES.read_text()
    path.write_text(text.replace('verbatim = [', 'verbatim = ["compat/** -> /abs/", '))
    with pytest.raises(ConfigError, match="generate.verbatim: entry 0 must read"):
        config.load(path)
    path.write_text(text)
    assert config.load(path).generate_verbatim == (("backport-include/**", "backport-include/"),
                                                    ("compat/**", "compat/"))


def _new_header(tree, name: str, header: str, text: str) -> bytes:
    """A series adding backport-include/linux/<header> (Message-ID <name@...>)."""
    assert git.git(tree.tree_path, "checkout", "-q", "-b", name, "main").ok
    path = tree.tree_path / "backport-include" / "linux" / header
    path.write_text(text)
    assert git.git(tree.tree_path, "add", str(path)).ok
    assert git.git(tree.tree_path, "commit", "-qm", f"headers: add {header}").ok
    raw = git.git(tree.tree_path, "format-patch", "--stdout", "-1",
                  f"--add-header=Message-ID: <{name}@example.org>").output.encode()
    assert git.git(tree.tree_path, "checkout", "-q", "main").ok
    return raw


def test_a_new_header_recompiles_what_used_one_of_its_name(tree, caplog):
    """backport-include/linux/jiffies.h shadows the kernel's, which the objects'
    dependency lists name: make alone would not see it; the bot drops those
    objects and the answer is the clean build's."""
    caplog.set_level(logging.INFO, logger="bot.testrun")
    bot, cold = Bot(tree, "warm"), Bot(tree, "cold", build_reuse=False, ccache=False)
    bot.test(_series(tree, "first", "compat/main.c", "\nint bp_first;\n"))
    raw = _new_header(tree, "shadow", "jiffies.h", "#error shadowed\n")
    caplog.clear()
    outcome = bot.test(raw)
    assert "used a header named like one the series adds (jiffies.h)" in caplog.text
    clean = cold.test(raw)
    assert _answer(outcome) == _answer(clean)


def test_a_new_header_a_has_include_probe_missed_in_the_base_is_compiled(tree, caplog):
    """compat/main.c probes for linux/bp_probe.h with __has_include: in the base
    it is absent, so no dependency list names it; a series adding it must get
    main.c compiled again, as a clean build would."""
    caplog.set_level(logging.INFO, logger="bot.testrun")
    main_c = tree.tree_path / "compat" / "main.c"
    main_c.write_text(main_c.read_text() + "\n#if __has_include(<linux/bp_probe.h>)\n"
                      "#include <linux/bp_probe.h>\n#endif\n")
    assert git.git(tree.tree_path, "commit", "-qam", "compat: probe bp_probe.h").ok
    bot, cold = Bot(tree, "warm"), Bot(tree, "cold", build_reuse=False, ccache=False)
    bot.test(_series(tree, "first", "compat/backport-5.10.c", "\nint bp_first;\n"))
    raw = _new_header(tree, "probe", "bp_probe.h", "#error probed\n")
    caplog.clear()
    outcome = bot.test(raw)
    assert "incremental, from the base's build tree" in caplog.text
    assert outcome.verdict == "fail"
    assert _answer(outcome) == _answer(cold.test(raw))


def test_a_restored_tree_points_kbuilds_module_lists_at_its_new_place(tmp_path):
    """kbuild's compat.mod, modules.order and Module.symvers name the build dir:
    a warm tree restored elsewhere (each `bpbot check` has its own scratch dir)
    failed with "No rule to make target '<old dir>/compat/compat.o'"."""
    old, out = "/tmp/bpbot-check-old/state/work/build/k0", tmp_path / "out"
    snapshot = tmp_path / "snap"
    (snapshot / "compat").mkdir(parents=True)
    (snapshot / "compat" / "compat.mod").write_text(f"{old}/compat/main.o\n")
    (snapshot / "modules.order").write_text(f"{old}/compat/compat.o\n")
    (snapshot / "Module.symvers").write_text(f"0x1\tsym\t{old}/compat/compat\tEXPORT_SYMBOL\t\n")
    (snapshot / "compat" / ".main.o.cmd").write_text(f"source_{old}/compat/main.o := x\n")
    build = tmp_path / "new" / "k0"
    warm.restore(snapshot, dict(built_at=old, package=str(out)), build, out)
    for name in ("compat/compat.mod", "modules.order", "Module.symvers", "compat/.main.o.cmd"):
        text = (build / name).read_text()
        assert old not in text and str(build) in text, name


def test_an_incremental_build_failing_without_a_new_error_is_built_again_clean(tree, caplog):
    """A warm copy that make cannot use (here: a dependency file naming a file
    that is gone) must not be blamed on the series: the kernel is built clean."""
    caplog.set_level(logging.INFO, logger="bot.testrun")
    bot = Bot(tree, "warm")
    bot.test(_series(tree, "first", "compat/main.c", "\nint bp_first;\n"))
    for dep in warm.root(bot.rules).glob("build-*/build/compat/main.d"):
        target = dep.read_text().split(":", 1)[0]
        dep.write_text(dep.read_text() + f"{target}: /nonexistent/bpbot-gone.h\n")
    caplog.clear()
    outcome = bot.test(_series(tree, "second", "compat/main.c", "\nint bp_second;\n"))
    assert "failed from the base's tree without a new error: built clean" in caplog.text
    assert outcome.verdict == "pass", [(k.kernel.name, k.verdict, k.detail)
                                       for k in outcome.kernels]
