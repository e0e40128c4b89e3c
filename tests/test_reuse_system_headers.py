"""A series adds backport-include/stdarg.h. The kernel's linux/kernel.h
includes <stdarg.h>, which the base found in gcc's own dir (-isystem): gcc -MMD
leaves such headers out of the dependency files, so no dependency list names
it. The series is built clean, and answers as a clean build does (FAIL)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_coverage import _series  # noqa: E402
from test_reuse import Bot, tree  # noqa: E402,F401 (tree: the fixture)

FILES = {"backport-include/stdarg.h": "#error bpbot: this stdarg.h shadows gcc's\n"}


def test_incremental_build_gives_the_clean_build_answer(tree):  # noqa: F811
    warm, cold = Bot(tree, "warm"), Bot(tree, "cold", build_reuse=False, ccache=False)
    assert warm.test(_series(tree, "warmup", {"compat/main.c": "\nint bpbot_w;\n"})).verdict \
        == "pass"
    raw = _series(tree, "stdarg", FILES)
    clean = cold.test(raw)
    incremental = warm.test(raw)
    assert clean.verdict == "fail"
    assert incremental.verdict == clean.verdict, (
        incremental.verdict, [(k.kernel.name, k.verdict, k.detail) for k in incremental.kernels],
        [(f.label, f.kernels) for f in incremental.file_coverage or []])
