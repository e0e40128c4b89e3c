"""What the real generator (gentree.py) needs from the sandbox, tested with
small stand-ins: multiprocessing (coccinelle's pycocci), its own output-dir
handling, `git describe` in the series' worktree."""

from __future__ import annotations

import shutil
import sys

import pytest

from bot import proc
from bot.sandbox import Sandbox

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")


def test_multiprocessing_works_in_the_sandbox(tmp_path):
    """pycocci runs spatch workers through multiprocessing, whose locks need a
    writable /dev/shm."""
    box = Sandbox.detect("bwrap", hide=[])
    code = "import multiprocessing as m; q = m.Queue(); q.put(7); print('got', q.get())"
    argv, env = box.wrap([sys.executable, "-c", code], readonly=[], writable=[tmp_path])
    res = proc.run(argv, env=env, timeout=120)
    assert res.ok and "got 7" in res.output, res.output
