"""Stale dependency files of the warm build tree; CRLF mail; v1 breaks, v2 fixes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tree_side import Bot, append, commit_on_main, compare, make_rules, per_kernel, replace, series, sh  # noqa: E402


@pytest.fixture
def rules(tmp_path):
    return make_rules(tmp_path)


def test_deleted_compat_file_leaves_stale_coverage(rules):
    """Base: compat/bp_bitmap.h is included only by compat/backport-4.19.c.
    Series: drop backport-4.19.c (4.19 is the new minimum) and change
    bp_bitmap.h. A clean build compiles bp_bitmap.h nowhere (NOT TESTED); the
    warm 4.14 tree still holds backport-4.19.d naming it."""
    commit_on_main(rules, "compat: bitmap helper header", lambda tree: (
        (tree / "compat/bp_bitmap.h").write_text("#define BP_BITMAP 1\n"),
        replace("compat/backport-4.19.c", "#include <linux/slab.h>\n",
                "#include <linux/slab.h>\n#include \"bp_bitmap.h\"\n")(tree)))
    raw = series(rules, "drop-4.19",
                 ("compat: drop the 4.19 backports",
                  lambda tree: (sh(tree, "git", "rm", "-q", "compat/backport-4.19.c"),
                                append("compat/bp_bitmap.h", "int bp_h = undefined_x;\n")(tree))))
    problems = compare(rules, [("drop-4.19", raw)])
    assert not problems, "\n".join(problems)


def test_crlf_mail_answers_as_lf_mail(rules):
    raw = series(rules, "crlf", ("compat: break main.c",
                                 append("compat/main.c", "\nint bp_c = nothing_here;\n")))
    crlf = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    out = Bot(rules, "warm").test(crlf)
    print(out.verdict, per_kernel(out), out.untested)
    assert out.verdict == "fail"


def test_v2_fixes_v1(rules):
    v1 = series(rules, "fix-v1", ("compat: add bp_v",
                                  append("compat/main.c", "\nint bp_v = nothing_here;\n")))
    v2 = series(rules, "fix-v2", ("compat: add bp_v",
                                  append("compat/main.c", "\nint bp_v = 1;\n")),
                extra=("--subject-prefix=PATCH v2", "--in-reply-to=<fix-v1@example.org>"))
    problems = compare(rules, [("v1", v1), ("v2", v2)])
    assert not problems, "\n".join(problems)
