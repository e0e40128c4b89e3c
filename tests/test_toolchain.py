"""What a run was built with, as the reply shows it: the compiler's version
line and the upstream source's tag; empty when not known."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from bot.testrun import toolchain


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc here")
def test_compiler_version_is_gccs_first_line():
    assert toolchain.compiler_version().startswith("gcc")


def test_no_compiler_is_no_version():
    assert toolchain.compiler_version("/nonexistent/cc") == ""


def test_upstream_version_is_its_tag(tmp_path):
    run = dict(cwd=tmp_path, check=True, capture_output=True, timeout=60)
    subprocess.run(["git", "init", "-q"], **run)
    (tmp_path / "Makefile").write_text("VERSION = 6\n")
    subprocess.run(["git", "add", "."], **run)
    subprocess.run(["git", "-c", "user.name=x", "-c", "user.email=x@example.org", "commit", "-qm",
                    "x"], **run)
    subprocess.run(["git", "-c", "user.name=x", "-c", "user.email=x@example.org", "tag", "-a",
                    "v6.1.192", "-m", "v6.1.192"], **run)
    assert toolchain.upstream_version(tmp_path) == "v6.1.192"
    assert toolchain.upstream_version(tmp_path / "missing") == ""
    assert toolchain.upstream_version("") == ""
