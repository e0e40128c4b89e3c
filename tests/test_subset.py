"""Kernel subset selection: which kernels, and why (table-driven)."""

from __future__ import annotations

import dataclasses

import pytest

from bot import config, subset
from bot.diffinfo import FileChange

ALL = config.load(config.DEMO_RULES, base_dir="/nonexistent")
# The tables below use four of the sample kernels: 3.10, 4.19, 5.10, 6.1.
RULES = dataclasses.replace(ALL, kernels=[k for k in ALL.kernels
                                          if k.name in ("3.10", "4.19", "5.10", "6.1")])


def fc(path, added=(), removed=(), added_lines=()):
    return FileChange(path, list(added), list(removed), list(added_lines))


HEADER_WITH_GUARDS = """\
#ifndef X
#define X
#if LINUX_VERSION_IS_LESS(5,4,0) && \\
    !LINUX_VERSION_IN_RANGE(4,19,200, 4,20,0)
static inline int foo(void)
{
	return 1;
}
#endif
int bar(void);
#endif
"""


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # A new guard picks the kernels on both sides of its boundary.
        ([fc("backport-include/linux/a.h", ["#if LINUX_VERSION_IS_LESS(4,18,0)"])],
         ["3.10", "4.19", "6.1"]),
        ([fc("backport-include/linux/a.h", [], ["#if LINUX_VERSION_IS_GEQ(5,10,0)"])],
         ["3.10", "4.19", "5.10", "6.1"]),
        ([fc("compat/main.c", ["#if LINUX_VERSION_CODE < KERNEL_VERSION(5,0,0)"])],
         ["3.10", "4.19", "5.10", "6.1"]),
        ([fc("backport-include/linux/a.h",
             ["#if LINUX_VERSION_IN_RANGE(4,0,0, 4,20,0)"])], ["3.10", "4.19", "5.10", "6.1"]),
        ([fc("Kconfig", ["depends on !KERNEL_4_19"])], ["3.10", "4.19", "6.1"]),
        # backport-X.Y.c is compiled for kernels older than X.Y.
        ([fc("compat/backport-5.10.c", ["int x;"])], ["3.10", "4.19", "5.10", "6.1"]),
        # dependencies: the version on the changed line.
        ([fc("dependencies", ["MINIDRV 5.0"], ["MINIDRV 3.10"])], ["3.10", "4.19", "5.10", "6.1"]),
        # Only devel/: nothing to build.
        ([fc("devel/build-all.sh", ["echo"])], []),
        # patches/ and generator inputs: oldest and newest only.
        ([fc("patches/0001-x/minidrv.patch", ["+#if LINUX_VERSION_IS_LESS(4,18,0)"])],
         ["3.10", "6.1"]),
        ([fc("copy-list", ["drivers/x/y.c"])], ["3.10", "6.1"]),
        # A plain change without guards: the edges.
        ([fc("compat/main.c", ["int y;"])], ["3.10", "6.1"]),
    ],
    ids=["is-less", "removed-geq", "kernel-version", "in-range", "kconfig", "compat-file",
         "dependencies", "devel-only", "patches", "copy-list", "no-guard"],
)
def test_choose(changes, expected):
    choice = subset.choose(RULES, changes)
    assert [k.name for k in choice.kernels] == expected
    assert choice.generate == bool(expected)
    for k in choice.kernels:
        assert choice.why(k.name), f"no reason given for {k.name}"


def test_change_inside_an_existing_guard_picks_its_sides():
    change = fc("backport-include/linux/foo.h", ["\treturn 1;"], added_lines=[7])
    choice = subset.choose(RULES, [change], read_new=lambda p: HEADER_WITH_GUARDS)
    names = [k.name for k in choice.kernels]
    # LINUX_VERSION_IS_LESS(5,4,0) -> 4.19 | 5.10; IN_RANGE(4.19.200, 4.20) -> 4.19 | 5.10 too.
    assert names == ["3.10", "4.19", "5.10", "6.1"]
    assert "LINUX_VERSION_IS_LESS(5,4,0)" in choice.why("5.10")
    outside = fc("backport-include/linux/foo.h", ["int bar(void);"], added_lines=[10])
    assert [k.name for k in subset.choose(RULES, [outside],
                                          read_new=lambda p: HEADER_WITH_GUARDS).kernels] == \
        ["3.10", "6.1"]


def test_reasons_name_the_guard_and_the_side():
    choice = subset.choose(RULES, [fc("backport-include/linux/a.h",
                                      ["#if LINUX_VERSION_IS_LESS(4,18,0)"])])
    assert choice.why("3.10") == ("oldest kernel; below 4.18.0 (LINUX_VERSION_IS_LESS(4,18,0) "
                                  "in backport-include/linux/a.h)")
    assert choice.why("4.19").startswith("at or above 4.18.0")


def test_all_ten_sample_kernels_nearest_on_each_side():
    choice = subset.choose(ALL, [fc("backport-include/linux/a.h",
                                    ["#if LINUX_VERSION_IS_LESS(4,18,0)"])])
    assert [k.name for k in choice.kernels] == ["3.10", "4.14", "4.19", "6.1"]


def test_full_matrix_switches():
    change = [fc("devel/x", ["y"])]
    assert len(subset.choose(RULES, change, full=True).kernels) == 4
    rules = dataclasses.replace(RULES, subset_full=True)
    assert len(subset.choose(rules, change).kernels) == 4


def test_path_rules_come_from_the_rules():
    rules = dataclasses.replace(RULES, subset_paths=[("compat/**", "none")])
    assert subset.choose(rules, [fc("compat/main.c", ["int y;"])]).kernels == []
