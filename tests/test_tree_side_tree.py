"""Series from the tree's side; the warm bot's answer must be the
clean build's answer (verdict, per-kernel verdicts, new errors, coverage)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tree_side import append, compare, make_rules, replace, series, sh  # noqa: E402


@pytest.fixture
def rules(tmp_path):
    return make_rules(tmp_path)


def mv(a, b):
    return lambda tree: sh(tree, "git", "mv", a, b)


def rm(a):
    return lambda tree: sh(tree, "git", "rm", "-q", a)


def chain(*edits):
    def edit(tree):
        for e in edits:
            e(tree)
    return edit


BAD_PATCH = """--- a/drivers/net/wireless/minidrv/main.c
+++ b/drivers/net/wireless/minidrv/main.c
@@ -1,7 +1,8 @@
 this line is not in main.c
 neither is this one
 nor this
+int bp_never;
 one
 two
 three
 four
"""


def test_tree_side_series_answer_as_clean(rules):
    cases = []

    def add(name, *patches, **kw):
        cases.append((name, series(rules, name, *patches, **kw)))

    add("rename-compat", ("compat: rename backport-5.10.c",
                          mv("compat/backport-5.10.c", "compat/backport-5.11.c")))
    add("rename-header", ("headers: rename bitmap.h",
                          mv("backport-include/linux/bitmap.h",
                             "backport-include/linux/bitmap_bp.h")))
    add("delete-timer-h", ("headers: drop timer.h", rm("backport-include/linux/timer.h")))
    add("copy-list-stats", ("copy-list: copy stats.c",
                            append("copy-list", "drivers/net/wireless/minidrv/stats.c\n")))
    add("deps-5.0", ("dependencies: minidrv needs 5.0",
                     replace("dependencies", "MINIDRV 3.10", "MINIDRV 5.0")))
    add("bad-gen-patch", ("patches: add a patch that does not apply",
                          append("patches/0002-broken/minidrv.patch", BAD_PATCH)))
    add("break-then-revert",
        ("compat: break main.c", append("compat/main.c", "\nint bp_x = nothing;\n")),
        ("Revert compat: break main.c",
         replace("compat/main.c", "\nint bp_x = nothing;\n", "")))
    add("version-h-inverted", ("version.h: swap the GEQ test",
                               replace("backport-include/linux/version.h",
                                       "(LINUX_VERSION_CODE >= KERNEL_VERSION(x1,x2,x3))",
                                       "(LINUX_VERSION_CODE < KERNEL_VERSION(x1,x2,x3))")))
    add("version-h-broken", ("version.h: break IS_LESS",
                             replace("backport-include/linux/version.h",
                                     "(LINUX_VERSION_CODE < KERNEL_VERSION(x1,x2,x3))",
                                     "(LINUX_VERSION_CODE < KERNEL_VERSION(x1,x2))")))
    add("mode-only", ("compat: make main.c executable",
                      lambda tree: os.chmod(tree / "compat/main.c", 0o755)))
    add("binary", ("compat: add a blob",
                   lambda tree: (tree / "compat/blob.bin").write_bytes(bytes(range(256)))),
        extra=("--binary",))
    add("new-header-oldest", ("compat: new header for 4.14 only",
                              chain(append("backport-include/linux/bp_old.h",
                                           "#if LINUX_VERSION_IS_LESS(4,15,0)\n"
                                           "int bp_old_h = undefined_old;\n#endif\n"),
                                    replace("compat/backport-4.19.c",
                                            "#include <linux/slab.h>\n",
                                            "#include <linux/slab.h>\n#include <linux/bp_old.h>\n"))))
    add("via-other-header", ("headers: break timer.h via version.h users",
                             replace("backport-include/linux/timer.h",
                                     "#define from_timer(var,",
                                     "#define from_timer(var, x,")))
    problems = compare(rules, cases)
    assert not problems, "\n".join(problems)
