"""The one subprocess wrapper: its timeout cannot be skipped, not even by a
child that never reads the input it is given."""

from __future__ import annotations

import time

from bot import proc


def test_timeout_holds_when_the_child_does_not_read_its_input():
    start = time.monotonic()
    res = proc.run(["sleep", "30"], timeout=1, input_bytes=b"x" * 10_000_000)
    assert res.timed_out and res.returncode is None
    assert time.monotonic() - start < 5


def test_input_reaches_the_child_and_output_is_capped():
    assert proc.run(["cat"], timeout=10, input_bytes=b"hello").output == "hello"
    res = proc.run(["yes"], timeout=2, output_cap=1000)
    assert res.truncated and len(res.output) < 2000
