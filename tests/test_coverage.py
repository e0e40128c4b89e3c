"""Coverage: which kernels compiled each changed file; changed code that no
kernel compiled is NOT TESTED (or PARTIAL), never PASS."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import sys
from pathlib import Path

from bot import check
from bot.testrun import coverage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_verdicts import KERNELS, _setup  # noqa: E402

from bot.ingest import spool
from bot.reply import results
from bot.sandbox import bwrap as sandbox
from bot.sandbox import git
from bot.series import tracker  # noqa: E402
from bot.testrun import pipeline

MAKE_D = """\
/b/4.9/compat/main.o: compat/main.c \\
 backport-include/backport/backport.h /k/4.9/include/linux/version.h \\
 /pkg/backport-include/linux/sysfs.h
backport-include/backport/backport.h:
/k/4.9/include/linux/version.h:
"""
KBUILD_CMD = """\
savedcmd_/b/6.1/bpdemo.o := gcc -Wp,-MMD,/b/6.1/.bpdemo.o.d ...
source_/b/6.1/bpdemo.o := /pkg/samples/bpdemo/bpdemo.c
deps_/b/6.1/bpdemo.o := \\
  /usr/src/linux-headers-6.1/include/linux/compiler-version.h \\
  include/generated/autoconf.h \\
    $(wildcard include/config/CC_VERSION_TEXT) \\
  /pkg/backport-include/linux/timer.h \\

/b/6.1/bpdemo.o: $(deps_/b/6.1/bpdemo.o)
"""


def test_dependency_files_of_gcc_and_kbuild_map_to_package_paths(tmp_path):
    build = tmp_path / "b"
    (build / "compat").mkdir(parents=True)
    (build / "compat" / "main.d").write_text(MAKE_D.replace("/pkg", str(tmp_path / "pkg")))
    (build / ".bpdemo.o.cmd").write_text(KBUILD_CMD.replace("/pkg", str(tmp_path / "pkg")))
    assert coverage.compiled(build, tmp_path / "pkg") == {
        "compat/main.c", "backport-include/backport/backport.h",
        "backport-include/linux/sysfs.h", "samples/bpdemo/bpdemo.c",
        "backport-include/linux/timer.h"}
    assert coverage.compiled(tmp_path / "empty", tmp_path / "pkg") is None


def test_a_tree_file_maps_to_its_copy_in_the_package(tmp_path):
    tree, pkg = tmp_path / "tree", tmp_path / "pkg"
    (tree / "compat").mkdir(parents=True)
    (pkg / "compat").mkdir(parents=True)
    (pkg / "moved").mkdir()
    (tree / "compat" / "a.c").write_text("int a;\n")
    (pkg / "compat" / "a.c").write_text("int a;\n")
    (tree / "compat" / "b.c").write_text("int b;\n")
    (pkg / "moved" / "b.c").write_text("int b;\n")
    (tree / "compat" / "c.c").write_text("int c;\n")
    assert coverage.package_path(tree, pkg, "compat/a.c") == "compat/a.c"
    assert coverage.package_path(tree, pkg, "compat/b.c") == "moved/b.c"
    assert coverage.package_path(tree, pkg, "compat/c.c") is None


def _series(rules, name: str, files: dict[str, str]) -> bytes:
    """A one-patch series appending to (or creating) each of ``files``."""
    tree = rules.tree_path
    assert git.git(tree, "checkout", "-q", "-b", name).ok
    for path, text in files.items():
        target = tree / path
        target.write_text((target.read_text() if target.exists() else "") + text)
    assert git.git(tree, "add", "-A").ok
    assert git.git(tree, "commit", "-qm", f"compat: {name}").ok
    res = git.git(tree, "format-patch", "--stdout", "-1",
                  f"--add-header=Message-ID: <{name}@example.org>")
    assert git.git(tree, "checkout", "-q", "main").ok
    return res.output.encode()


def _run(rules, state, raw):
    spool.spool(state, "test", [raw], bot_address=rules.bot_address, loop_id=rules.loop_id)
    tracker.assemble(state, rules)
    outcome = results.run_version(state, rules, sandbox.for_rules(rules),
                                   pipeline.next_ready(state))
    raw_reply = bytes(state.query("SELECT raw FROM outbox ORDER BY id")[-1]["raw"])
    reply = email.message_from_bytes(raw_reply, policy=email.policy.default).get_content()
    return outcome, " ".join(reply.split()), check._exit_code([outcome.verdict])


def test_changed_code_compiled_on_no_kernel_is_not_tested(tmp_path):
    rules, state = _setup(tmp_path)
    # compat/backport-3.0.c is compiled only for kernels older than 3.0: none here.
    raw = _series(rules, "backport-3.0", {"compat/backport-3.0.c": "int bpbot_unused;\n"})
    outcome, reply, code = _run(rules, state, raw)
    assert outcome.verdict == "not-tested" and code == 2
    assert ("Verdict: NOT TESTED: the changed code was compiled on no configured kernel "
            "(compat/backport-3.0.c)") in reply
    assert "compat/backport-3.0.c: not compiled on any configured kernel" in reply


def test_some_changed_code_compiled_nowhere_is_partial_and_coverage_is_listed(tmp_path):
    rules, state = _setup(tmp_path)
    raw = _series(rules, "two-files", {"backport-include/linux/unused.h": "/* new */\n",
                                       "compat/backport-4.19.c": "\nint bpbot_x;\n"})
    outcome, reply, code = _run(rules, state, raw)
    assert outcome.verdict == "partial" and code == 2
    assert "backport-include/linux/unused.h not compiled on any configured kernel" in reply
    older = ", ".join(KERNELS[:KERNELS.index("4.19")])
    assert f"compat/backport-4.19.c: {older}" in reply


PATCH = "patches/0001-ndo-tx-timeout/minidrv.patch"


def _edit_series(rules, name: str, path: str, old: str, new: str) -> bytes:
    """A one-patch series replacing ``old`` by ``new`` in ``path``."""
    tree = rules.tree_path
    assert git.git(tree, "checkout", "-q", "-b", name).ok
    target = tree / path
    assert old in target.read_text()
    target.write_text(target.read_text().replace(old, new))
    return commit_and_format(tree, name, f"patches: {name}")


def commit_and_format(tree, name: str, subject: str) -> bytes:
    """Commit the tree's changes on the current branch, back to main, and the
    commit as a one-patch series (Message-ID <name@example.org>)."""
    assert git.git(tree, "commit", "-qam", subject).ok
    res = git.git(tree, "format-patch", "--stdout", "-1",
                  f"--add-header=Message-ID: <{name}@example.org>")
    assert git.git(tree, "checkout", "-q", "main").ok
    return res.output.encode()


def _three_kernels(tmp_path):
    rules, state = _setup(tmp_path)
    return dataclasses.replace(rules, kernels=[k for k in rules.kernels
                                               if k.name in ("3.10", "4.14", "6.1")]), state


def test_a_series_changing_only_an_inner_patch_is_covered_by_the_code_it_generates(tmp_path):
    rules, state = _three_kernels(tmp_path)
    raw = _edit_series(rules, "inner-patch", PATCH, "minidrv_tx_timeout(ndev, 0);",
                       "minidrv_tx_timeout(ndev, 1);")
    outcome, reply, code = _run(rules, state, raw)
    assert outcome.verdict == "pass" and code == 0
    main_c = "drivers/net/wireless/minidrv/main.c (generated)"
    assert f"{main_c}: all 3 kernels" in reply
    assert "(generated): a file of the generated package" in reply


def test_an_inner_patch_to_a_driver_no_kernel_compiles_is_not_tested(tmp_path):
    """The real tree's defconfig-hwsim compiles none of mwifiex: a series
    changing only its patches/ file was answered PASS."""
    rules, state = _three_kernels(tmp_path)
    # minidrv needs a kernel newer than any configured one: it is never compiled.
    deps = rules.tree_path / "dependencies"
    deps.write_text(deps.read_text().replace("MINIDRV 3.10", "MINIDRV 9.0"))
    assert git.git(rules.tree_path, "commit", "-qam", "minidrv: needs 9.0").ok
    raw = _edit_series(rules, "inner-patch", PATCH, "minidrv_tx_timeout(ndev, 0);",
                       "minidrv_tx_timeout(ndev, 1);")
    outcome, reply, code = _run(rules, state, raw)
    assert outcome.verdict == "not-tested" and code == 2
    assert ("Verdict: NOT TESTED: the changed code was compiled on no configured kernel "
            "(drivers/net/wireless/minidrv/main.c (generated))") in reply
    assert ("drivers/net/wireless/minidrv/main.c (generated): not compiled on any "
            "configured kernel (MINIDRV needs Linux 9.0 or newer (dependencies); no "
            "configured kernel is)") in reply


KBUILD_DRIVER = {
    "drivers/net/wireless/marvell/Makefile": "obj-$(CPTCFG_MWIFIEX) += mwifiex/\n",
    "drivers/net/wireless/marvell/mwifiex/Makefile":
        "mwifiex-y += main.o\nmwifiex-y += \\\n\tinit.o\nobj-$(CPTCFG_MWIFIEX) += mwifiex.o\n"
        "mwifiex_sdio-y += sdio.o\nobj-$(CPTCFG_MWIFIEX_SDIO) += mwifiex_sdio.o\n",
    "drivers/net/wireless/p54/Makefile": "obj-y += p54spi.o\n",
    "drivers/net/wireless/Makefile": "obj-$(CPTCFG_P54_COMMON) += p54/\n",
    "compat/Makefile": "compat-y += main.o\ncompat-$(CPTCFG_KERNEL_5_2) += backport-genetlink.o\n"
                       "obj-m += compat.o\n",
    "dependencies": "QTNFMAC 5.1\nMWIFIEX_SDIO 9.1\n",
}


def test_why_a_file_was_compiled_nowhere_is_read_from_kbuild_makefiles(tmp_path):
    from bot.config.kernels import Kernel
    from bot.testrun import why_not
    pkg, build = tmp_path / "pkg", tmp_path / "build"
    for path, text in KBUILD_DRIVER.items():
        (pkg / path).parent.mkdir(parents=True, exist_ok=True)
        (pkg / path).write_text(text)
    build.mkdir()
    (build / ".config").write_text("CPTCFG_CFG80211=m\n# CPTCFG_MWIFIEX is not set\n")
    kernels = [Kernel("6.1", "6.1.0", tmp_path), Kernel("6.12", "6.12.1", tmp_path)]

    def why(path):
        return why_not.reason(pkg, path, {"6.1": build}, kernels)
    assert why("drivers/net/wireless/marvell/mwifiex/main.c") == \
        "CPTCFG_MWIFIEX not set in the build's config"
    assert why("drivers/net/wireless/marvell/mwifiex/init.c") == \
        "CPTCFG_MWIFIEX not set in the build's config"
    assert why("drivers/net/wireless/marvell/mwifiex/sdio.c") == \
        "MWIFIEX_SDIO needs Linux 9.1 or newer (dependencies); no configured kernel is"
    assert why("drivers/net/wireless/p54/p54spi.c") == \
        "CPTCFG_P54_COMMON not set in the build's config"
    assert why("compat/backport-genetlink.c") == \
        "compiled only on kernels older than 5.2; no configured kernel is"
    assert why("drivers/net/wireless/marvell/mwifiex/other.c") == \
        "no rule of drivers/net/wireless/marvell/mwifiex/Makefile builds other.o"
    assert why("drivers/net/wireless/marvell/mwifiex/fw.h") == "no compiled object includes it"
    (build / ".config").unlink()
    assert why("drivers/net/wireless/marvell/mwifiex/main.c") == ""  # config unknown
