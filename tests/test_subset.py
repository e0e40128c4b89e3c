"""Kernel subset selection: which kernels, and why (table-driven)."""

from __future__ import annotations

import dataclasses

import pytest

from bot.config import rules as config
from bot.series import diffinfo
from bot.series.diffinfo import FileChange
from bot.testrun import subset

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
    ("changes", "first"),
    [
        # A new guard puts the kernels on both sides of its boundary first.
        ([fc("backport-include/linux/a.h", ["#if LINUX_VERSION_IS_LESS(4,18,0)"])],
         ["3.10", "4.19"]),
        ([fc("backport-include/linux/a.h", [], ["#if LINUX_VERSION_IS_GEQ(5,10,0)"])],
         ["4.19", "5.10"]),
        ([fc("compat/main.c", ["#if LINUX_VERSION_CODE < KERNEL_VERSION(5,0,0)"])],
         ["4.19", "5.10"]),
        ([fc("backport-include/linux/a.h",
             ["#if LINUX_VERSION_IN_RANGE(4,0,0, 4,20,0)"])], ["3.10", "4.19", "5.10"]),
        ([fc("Kconfig", ["depends on !KERNEL_4_19"])], ["3.10", "4.19"]),
        # The hex and LINUX_VERSION_MAJOR / _PATCHLEVEL forms.
        ([fc("compat/main.c", ["#if LINUX_VERSION_CODE < 0x040c00"])], ["3.10", "4.19"]),
        ([fc("compat/main.c", ["#if LINUX_VERSION_CODE >= 0x050a00"])], ["4.19", "5.10"]),
        ([fc("compat/main.c", ["#if LINUX_VERSION_MAJOR >= 6"])], ["5.10", "6.1"]),
        ([fc("compat/main.c", ["#if LINUX_VERSION_MAJOR == 5 && LINUX_VERSION_PATCHLEVEL < 8"])],
         ["4.19", "5.10", "6.1"]),
        # backport-X.Y.c is compiled for kernels older than X.Y.
        ([fc("compat/backport-5.10.c", ["int x;"])], ["4.19", "5.10"]),
        # dependencies: the version on the changed line.
        ([fc("dependencies", ["MINIDRV 5.0"], ["MINIDRV 3.10"])], ["3.10", "4.19", "5.10"]),
        # patches/ and generator inputs, a plain change: no guard, the edges first.
        ([fc("patches/0001-x/minidrv.patch", ["+#if LINUX_VERSION_IS_LESS(4,18,0)"])], []),
        ([fc("copy-list", ["drivers/x/y.c"])], []),
        ([fc("compat/main.c", ["int y;"])], []),
    ],
    ids=["is-less", "removed-geq", "kernel-version", "in-range", "kconfig", "hex-less",
         "hex-geq", "major", "major-patchlevel", "compat-file", "dependencies", "patches",
         "copy-list", "no-guard"],
)
def test_every_kernel_is_built_guards_first(changes, first):
    choice = subset.choose(RULES, changes)
    names = [k.name for k in choice.kernels]
    assert sorted(names) == sorted(k.name for k in RULES.kernels) and not choice.cut
    edges = [n for n in ("3.10", "6.1") if n not in first]
    assert names[:len(first) + len(edges)] == first + edges
    for name in names[:len(first)]:
        assert choice.why(name), f"no reason given for {name}"


def test_only_files_that_need_no_build():
    choice = subset.choose(RULES, [fc("devel/build-all.sh", ["echo"])])
    assert choice.kernels == [] and not choice.generate
    assert "devel/build-all.sh" in choice.note


def test_change_inside_an_existing_guard_goes_first():
    change = fc("backport-include/linux/foo.h", ["\treturn 1;"], added_lines=[7])
    choice = subset.choose(RULES, [change], read_new=lambda p: HEADER_WITH_GUARDS)
    # LINUX_VERSION_IS_LESS(5,4,0) -> 4.19 | 5.10; IN_RANGE(4.19.200, 4.20) -> 3.10 | 4.19
    # and 4.19 | 5.10; then the newest.
    assert [k.name for k in choice.kernels] == ["3.10", "4.19", "5.10", "6.1"]
    assert "LINUX_VERSION_IS_LESS(5,4,0)" in choice.why("5.10")
    outside = fc("backport-include/linux/foo.h", ["int bar(void);"], added_lines=[10])
    choice = subset.choose(RULES, [outside], read_new=lambda p: HEADER_WITH_GUARDS)
    assert [k.name for k in choice.kernels] == ["3.10", "6.1", "4.19", "5.10"]
    assert not choice.why("4.19")


def test_reasons_name_the_guard_and_the_side():
    choice = subset.choose(RULES, [fc("backport-include/linux/a.h",
                                      ["#if LINUX_VERSION_IS_LESS(4,18,0)"])])
    assert choice.why("3.10") == ("below 4.18.0 (LINUX_VERSION_IS_LESS(4,18,0) "
                                  "in backport-include/linux/a.h); oldest kernel")
    assert choice.why("4.19").startswith("at or above 4.18.0")


def test_all_ten_sample_kernels_nearest_on_each_side_first():
    choice = subset.choose(ALL, [fc("backport-include/linux/a.h",
                                    ["#if LINUX_VERSION_IS_LESS(4,18,0)"])])
    assert [k.name for k in choice.kernels] == ["4.14", "4.19", "3.10", "6.1", "3.16", "4.4",
                                                "4.9", "5.4", "5.10", "5.15"]


def test_max_kernels_cuts_in_build_order_and_full_ignores_it():
    change = [fc("backport-include/linux/a.h", ["#if LINUX_VERSION_IS_LESS(4,18,0)"])]
    rules = dataclasses.replace(ALL, subset_max_kernels=3)
    choice = subset.choose(rules, change)
    assert [k.name for k in choice.kernels] == ["4.14", "4.19", "3.10"]
    assert [k.name for k in choice.cut] == ["6.1", "3.16", "4.4", "4.9", "5.4", "5.10", "5.15"]
    full = subset.choose(rules, change, full=True)
    assert len(full.kernels) == 10 and full.cut == []


def test_subset_full_is_deprecated_and_max_kernels_is_checked(tmp_path, caplog):
    text = config.DEMO_RULES.read_text()
    assert "max_kernels = 0" in text
    old = tmp_path / "old.toml"
    old.write_text(text.replace("max_kernels = 0", "full = true"))
    with caplog.at_level("WARNING"):
        rules = config.load(old, base_dir=tmp_path)
    assert "subset.full is deprecated and ignored" in caplog.text
    assert len(subset.choose(rules, [fc("compat/main.c", ["int y;"])]).kernels) == 10
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("max_kernels = 0", "max_kernels = -1"))
    with pytest.raises(config.ConfigError, match="subset.max_kernels"):
        config.load(bad, base_dir=tmp_path)


def test_path_rules_come_from_the_rules():
    rules = dataclasses.replace(RULES, subset_paths=[("compat/**", "none")])
    assert subset.choose(rules, [fc("compat/main.c", ["int y;"])]).kernels == []


# A two-patch series: patch 1 edits the line inside the guard (line 4 of its
# file), patch 2 then inserts three lines above the guard. The guard must be
# looked up at line 7 of the final file, not at line 4 (now outside it).
TWO_PATCHES = """From 1111111111111111111111111111111111111111 Mon Sep 17 00:00:00 2001
From: A <a@example.org>
Subject: [PATCH 1/2] edit inside the guard

---
diff --git a/backport-include/linux/g.h b/backport-include/linux/g.h
--- a/backport-include/linux/g.h
+++ b/backport-include/linux/g.h
@@ -3,3 +3,3 @@
 #if LINUX_VERSION_IS_LESS(4,10,0)
-int a;
+int a2;
 #endif
--\x20
2.39.5

From 2222222222222222222222222222222222222222 Mon Sep 17 00:00:00 2001
From: A <a@example.org>
Subject: [PATCH 2/2] add lines above

---
diff --git a/backport-include/linux/g.h b/backport-include/linux/g.h
--- a/backport-include/linux/g.h
+++ b/backport-include/linux/g.h
@@ -1,3 +1,6 @@
 #ifndef X
 #define X
+int p;
+int q;
+int r;
 #if LINUX_VERSION_IS_LESS(4,10,0)
--\x20
2.39.5
"""
FINAL = """#ifndef X
#define X
int p;
int q;
int r;
#if LINUX_VERSION_IS_LESS(4,10,0)
int a2;
#endif
#endif
"""


def test_multi_patch_line_numbers_are_those_of_the_final_file():
    [change] = diffinfo.changes(TWO_PATCHES.encode())
    assert sorted(change.added_lines) == [3, 4, 5, 7]
    assert FINAL.splitlines()[7 - 1] == "int a2;"
    choice = subset.choose(ALL, [change], read_new=lambda path: FINAL)
    assert [k.name for k in choice.kernels][:2] == ["4.9", "4.14"]
    assert "LINUX_VERSION_IS_LESS(4,10,0)" in choice.why("4.9")


@pytest.mark.parametrize(
    ("numbers", "expected"),
    [([1, 2], [1, 2]), ([3], [6]), ([4, 9], [7, 12])],
    ids=["above", "context", "below"],
)
def test_remap_through_a_later_insertion(numbers, expected):
    [_first, second] = [c for c in TWO_PATCHES.split("From 2222")]
    from unidiff import PatchSet
    patch = PatchSet(second[second.index("diff --git"):].split("\n-- \n")[0])
    assert diffinfo.remap(numbers, list(patch[0])) == expected
