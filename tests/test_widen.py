"""Widening the build config: a series whose changed code only a config symbol
the base's config does not set builds is built, base and series alike, with
that symbol set ([build] widen), and judged against the base built the same way.

The sample package compiles a driver dir whose Makefile has obj-$(CONFIG_X)
only when $(O)/.config sets CONFIG_X (when that file exists), as kbuild does."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from bot.config import fields
from bot.sandbox import git
from bot.testrun import why_not, widen

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_coverage import PATCH, _edit_series, _run, _three_kernels  # noqa: E402

EMPTY_CONFIG = ["sh", "-c", ': > "$0/.config"', "{build_dir}"]
WIDEN = ["sh", "-c", 'for s; do echo "$s=y"; done >> "$0/.config"',
         "{build_dir}", "{symbols}"]
FIX, BREAK = ("minidrv_tx_timeout(ndev, 0);", "minidrv_tx_timeout(ndev, 1);"), \
    ("minidrv_tx_timeout(ndev, 0);", "minidrv_tx_timeout(ndev, 0) + no_such_symbol;")


def _configured(tmp_path, widen_command):
    """The sample rules, the config of every build written empty first: no driver."""
    rules, state = _three_kernels(tmp_path)
    make = rules.build_commands[-1]
    return dataclasses.replace(rules, build_commands=[EMPTY_CONFIG, make],
                               build_widen=tuple(widen_command)), state


def test_without_a_widen_command_the_driver_is_not_tested_and_the_config_named(tmp_path):
    rules, state = _configured(tmp_path, ())
    outcome, reply, code = _run(rules, state, _edit_series(rules, "inner", PATCH, *FIX))
    assert outcome.verdict == "not-tested" and code == 2
    assert ("drivers/net/wireless/minidrv/main.c (generated): not compiled on any configured "
            "kernel (CONFIG_MINIDRV not set in the build's config)") in reply


def test_a_widened_config_compiles_the_changed_driver_and_passes(tmp_path):
    rules, state = _configured(tmp_path, WIDEN)
    # The upstream source as a git tree at a version tag, as on a real host.
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "Linux 6.1.145"],
                 ["tag", "v6.1.145"]):
        assert git.git(rules.upstream, *args).ok
    outcome, reply, code = _run(rules, state, _edit_series(rules, "inner", PATCH, *FIX))
    assert outcome.widened == ["CONFIG_MINIDRV"]
    assert outcome.verdict == "pass" and code == 0, reply
    assert "drivers/net/wireless/minidrv/main.c (generated): all 3 kernels" in reply
    assert "Build config widened with CONFIG_MINIDRV" in reply
    # the reproduce lines run the widen command too
    assert ("""sh -c 'for s; do echo "$s=y"; done >> "$0/.config"' ../build-3.10 """
            "CONFIG_MINIDRV") in reply
    # ... and name the upstream source by its version, not by the bot host's path
    assert outcome.upstream_version == "v6.1.145"
    assert "# upstream: Linux v6.1.145 sources in ../linux-6.1.145 (a git tree at" in reply
    assert "gentree.py ../linux-6.1.145 ../out" in reply
    assert str(rules.upstream) not in reply


def test_a_widened_config_finds_a_break_the_default_config_never_compiles(tmp_path):
    rules, state = _configured(tmp_path, WIDEN)
    outcome, reply, code = _run(rules, state, _edit_series(rules, "inner", PATCH, *BREAK))
    assert outcome.verdict == "fail" and code == 1
    # the broken line is in the patch's LINUX_VERSION_IS_LESS(5,6,0) branch
    assert {k.kernel.name: bool(k.new_errors) for k in outcome.kernels} == {
        "3.10": True, "4.14": True, "6.1": False}
    assert ">> " in reply and "no_such_symbol" in reply


def test_the_symbols_are_read_from_the_makefiles_with_the_package_symbols_they_depend_on(
        tmp_path):
    pkg = tmp_path / "pkg"
    files = {
        "drivers/w/Makefile": "obj-$(CPTCFG_P54_COMMON) += p54common.o\n"
                              "p54common-y := eeprom.o\nobj-$(CPTCFG_P54_SPI) += p54spi.o\n",
        "drivers/w/Kconfig": "config P54_COMMON\n\ttristate \"p54\"\n\tdepends on MAC80211\n"
                             "config P54_SPI\n\ttristate \"spi\"\n"
                             "\tdepends on P54_COMMON && SPI_MASTER && !BROKEN\n",
        "net/Kconfig": "menuconfig MAC80211\n\ttristate \"mac\"\n\tdepends on CFG80211\n",
    }
    for path, text in files.items():
        (pkg / path).parent.mkdir(parents=True, exist_ok=True)
        (pkg / path).write_text(text)
    assert widen.needed(pkg, ["drivers/w/p54spi.c"]) == [
        "CPTCFG_P54_SPI", "CPTCFG_P54_COMMON", "CPTCFG_MAC80211"]
    assert widen.needed(pkg, ["drivers/w/eeprom.c", "drivers/w/x.h"]) == [
        "CPTCFG_P54_COMMON", "CPTCFG_MAC80211"]
    assert why_not.symbols(pkg, "drivers/w/other.c") is None


def test_the_widen_command_is_inserted_before_the_last_build_command(tmp_path):
    rules, _state = _configured(tmp_path, WIDEN)
    wide = widen.widened(rules, ["CONFIG_A", "CONFIG_B"])
    assert wide.build_commands == [EMPTY_CONFIG, WIDEN[:-1] + ["CONFIG_A", "CONFIG_B"],
                                   rules.build_commands[-1]]


@pytest.mark.parametrize("bad, problem", [
    (["sh", "-c", "x"], 'must have "{symbols}"'),
    (["sh", "{symbols}", "--enable={symbols}"], "an argument of its own"),
    (["sh", "{symbols}", "{symbols}"], "exactly one whole argument"),
    (["{symbols}", "sh"], "must start with the program to run"),
    (["", "{symbols}"], "must start with the program to run"),
    ([["sh", "{symbols}"]], "one argument list of strings"),
    (["sh", "{nope}", "{symbols}"], "unknown placeholder {nope}"),
])
def test_a_widen_command_without_symbols_is_refused(bad, problem):
    with pytest.raises(ValueError, match=problem):
        fields._widen(bad)


def test_the_shipped_real_tree_widen_command_appends_each_missing_symbol(tmp_path):
    """rules/backports.toml's [build] widen, run as a build runs it ({symbols}
    expanded), with a make that only records its arguments."""
    import os
    import subprocess
    import tomllib

    from bot.config.rules import RULES_DIR, expand
    command = tomllib.loads((RULES_DIR / "backports.toml").read_text())["build"]["widen"]
    build, kernel, bin_dir = tmp_path / "build", tmp_path / "kernel", tmp_path / "bin"
    for d in (build, kernel, bin_dir):
        d.mkdir()
    (build / ".config").write_text("CPTCFG_CFG80211=m\n# CPTCFG_P54_COMMON is not set\n")
    (bin_dir / "make").write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/make.args\n')
    (bin_dir / "make").chmod(0o755)
    rules, _state = _configured(tmp_path, command)
    args = expand(widen.widened(rules, ["CPTCFG_P54_SPI", "CPTCFG_CFG80211",
                                        "CPTCFG_P54_COMMON"]).build_commands[-2],
                  dict(build_dir=build, kernel_path=kernel))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    subprocess.run(args, env=env, check=True, timeout=60)
    assert (build / ".config").read_text().splitlines()[2:] == [
        "CPTCFG_P54_SPI=m", "CPTCFG_P54_COMMON=m"]
    assert (tmp_path / "make.args").read_text().split() == [
        "-C", str(build), f"KLIB={kernel}", f"KLIB_BUILD={kernel}", "olddefconfig"]
    # all set already: nothing appended, no make
    (tmp_path / "make.args").unlink()
    subprocess.run(args, env=env, check=True, timeout=60)
    assert not (tmp_path / "make.args").exists()
