"""A wheel install (not editable) carries everything: the rules, the
migrations and the sample data; `bpbot demo` runs from it."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.integration
def test_wheel_install_runs_the_demo(tmp_path):
    wheels = tmp_path / "wheels"
    run = dict(capture_output=True, text=True, timeout=900)
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
                          str(ROOT)], **run)
    assert res.returncode == 0, res.stderr[-2000:]
    wheel, = wheels.glob("bpbot-*.whl")
    with zipfile.ZipFile(wheel) as zf:  # the templates are package data
        names = set(zf.namelist())
    assert {"bot/reply/templates/mail/report.txt", "bot/web/templates/index.html"} <= names
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, **run)
    res = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], **run)
    if res.returncode != 0 and "Could not find a version" in res.stderr:
        pytest.skip(f"dependencies cannot be installed here: {res.stderr[-300:]}")
    assert res.returncode == 0, res.stderr[-2000:]
    # Run from elsewhere, so nothing of the checkout can be picked up.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["HOME"] = str(tmp_path / "home")
    res = subprocess.run([str(venv / "bin" / "bpbot"), "demo", "--workdir", str(tmp_path / "demo")],
                         cwd=tmp_path, env=env, **run)
    assert res.returncode == 0, (res.stdout[-2000:], res.stderr[-3000:])
    assert "PASS" in res.stdout and "FAIL" in res.stdout
    assert f"BPBOT_DEMO_DIR={tmp_path / 'demo'} bpbot web" in res.stdout
    # The demo leaves only its layout behind (no stray mail at the top).
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == [
        "kernels", "list", "state", "tree", "upstream"]
    import_check = subprocess.run([str(venv / "bin" / "python"), "-c",
                                   "import bot; print(bot.__file__)"], cwd=tmp_path, env=env, **run)
    assert str(venv) in import_check.stdout, import_check.stdout
