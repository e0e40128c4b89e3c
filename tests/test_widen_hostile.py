"""Hostile package Makefiles and Kconfig files read by bot/testrun/why_not.py and
widen.py (no builds): loops end, symlinks are not followed, size stays linear."""

from __future__ import annotations

import os
import time

from bot.config.rules import Kernel
from bot.testrun import why_not, widen


def _pkg(tmp_path, files):
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    return tmp_path


def test_composite_self_loop_and_dot_dir(tmp_path):
    pkg = _pkg(tmp_path, {"d/Makefile": "x-y := x.o\nobj-y += ./\nobj-$(CONFIG_A) += d/\n",
                          "Makefile": "obj-y += d/\nobj-y += ./\n"})
    assert why_not.symbols(pkg, "d/x.c") is None
    why_not.reason(pkg, "d/x.c", {}, [])


def test_kconfig_dependency_cycle_and_many_symbols(tmp_path):
    kconf = "".join(f"config S{i}\n\tdepends on S{(i + 1) % 2000} && S{(i + 7) % 2000}\n"
                    for i in range(2000))
    mk = "".join(f"obj-$(CONFIG_S{i}) += f{i}.o\n" for i in range(2000))
    pkg = _pkg(tmp_path, {"d/Makefile": mk, "d/Kconfig": kconf})
    t = time.monotonic()
    out = widen.needed(pkg, [f"d/f{i}.c" for i in range(2000)])
    assert len(out) <= widen.MAX_SYMBOLS
    assert time.monotonic() - t < 10


def test_makefile_symlink_refused(tmp_path):
    pkg = _pkg(tmp_path, {"secret/Makefile": "obj-$(CONFIG_SECRET) += x.o\n"})
    (pkg / "d").mkdir()
    os.symlink(pkg / "secret" / "Makefile", pkg / "d" / "Makefile")
    assert why_not.symbols(pkg, "d/x.c") is None


def test_dir_symlink_in_the_middle(tmp_path):
    """A package dir that is a symlink: why_not reads through it (only the last
    component is checked)."""
    outside = tmp_path / "outside"
    _pkg(outside, {"Makefile": "obj-$(CONFIG_LEAK_FROM_OUTSIDE) += x.o\n"})
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    os.symlink(outside, pkg / "d")
    assert why_not.symbols(pkg, "d/x.c") is None


def test_symbol_named_like_kernel_version_in_reason(tmp_path):
    pkg = _pkg(tmp_path, {"d/Makefile": "obj-$(CPTCFG_KERNEL_5_2) += x.o\n"})
    build = tmp_path / "b"
    build.mkdir()
    (build / ".config").write_text("CPTCFG_FOO=y\n")
    k = Kernel(name="6.1", version="6.1.1", path=tmp_path)
    r = why_not.reason(pkg, "d/x.c", {"6.1": build}, [k])
    assert "older than 5.2" in r, r
