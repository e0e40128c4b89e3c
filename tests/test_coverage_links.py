"""Coverage reads files the series' generator and build wrote, outside the
sandbox: never through a symlink (a hang or crash on /proc files, an oracle on
host files the sandbox hides)."""

from __future__ import annotations

import os
from pathlib import Path

from bot.testrun import coverage


def _case(tmp_path: Path, target: str, guess: bytes, dep_link: str | None = None):
    tree = tmp_path / "src"
    (tree / "drivers").mkdir(parents=True)
    os.symlink(target, tree / "drivers" / "evil.c")
    pkg = tmp_path / "gen" / "out"
    (pkg / "guess").mkdir(parents=True)
    (pkg / "guess" / "evil.c").write_bytes(guess)
    build = tmp_path / "build" / "k"
    build.mkdir(parents=True)
    if dep_link:
        os.symlink(dep_link, build / "x.d")
    else:
        (build / "x.d").write_text("x.o: guess/evil.c\n")
    return coverage.measure(tree, pkg, ["drivers/evil.c"], {"k": build})


def test_a_changed_file_that_is_a_symlink_is_never_read(tmp_path):
    assert _case(tmp_path, "/proc/self/pagemap", b"") == []


def test_no_oracle_on_host_files(tmp_path):
    real = Path("/etc/hostname").read_bytes() if Path("/etc/hostname").exists() else b"x"
    assert _case(tmp_path, "/etc/hostname", real) == []


def test_a_dependency_file_that_is_a_symlink_is_never_read(tmp_path):
    assert _case(tmp_path / "a", "/dev/null", b"", dep_link="/proc/self/pagemap") == []
