"""One `bpbot serve` per state dir."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bot import cli
from bot.config.rules import DEMO_RULES
from bot.demo import layout


def test_a_second_serve_on_the_same_state_dir_is_refused(tmp_path):
    """Two daemons on one state would run each version twice and race on replies."""
    work = tmp_path / "work"
    layout.prepare(work, with_list=False)
    rules = work / "rules.toml"
    rules.write_text(DEMO_RULES.read_text())
    bpbot = Path(sys.executable).with_name("bpbot")
    first = subprocess.Popen([str(bpbot), "serve", "--config", str(rules)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        lock = work / "state" / "serve.lock"
        deadline = time.monotonic() + 120
        while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
            assert first.poll() is None, first.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the first serve never took its lock"
            time.sleep(0.1)
        second = subprocess.run([str(bpbot), "serve", "--config", str(rules)],
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == cli.EXIT_USAGE
        assert f"another `bpbot serve` (pid {first.pid}) is running" in second.stderr
    finally:
        first.kill()
        first.wait(timeout=60)
