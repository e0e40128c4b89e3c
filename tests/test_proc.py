"""The one subprocess wrapper: its timeout cannot be skipped, not even by a
child that never reads the input it is given."""

from __future__ import annotations

import re
import time

from bot.sandbox import proc


def test_timeout_holds_when_the_child_does_not_read_its_input():
    start = time.monotonic()
    res = proc.run(["sleep", "30"], timeout=1, input_bytes=b"x" * 10_000_000)
    assert res.timed_out and res.returncode is None
    assert time.monotonic() - start < 5


def test_input_reaches_the_child_and_output_is_capped():
    assert proc.run(["cat"], timeout=10, input_bytes=b"hello").output == "hello"
    res = proc.run(["yes"], timeout=2, output_cap=1000)
    assert res.truncated and len(res.output) < 2000


def test_run_all_caps_each_commands_output_on_its_own():
    """The output cap is per command (run_all's docstring said "the total")."""
    res = proc.run_all([["sh", "-c", "printf 'a%.0s' $(seq 1500)"],
                        ["sh", "-c", "printf 'b%.0s' $(seq 1500)"]], timeout=30, output_cap=1000)
    assert res.ok, res.output
    runs = {c: max(len(r) for r in re.findall(f"{c}+", res.output)) for c in "ab"}
    assert runs == {"a": 1000, "b": 1000}, res.output
    assert res.output.count("[output truncated at 1000 bytes]") == 2


def test_the_timeout_note_names_the_budget_not_its_microseconds():
    """run_all hands each command what is left of the budget (1.99995 s of 2 s);
    the log says the budget."""
    res = proc.run(["sleep", "5"], timeout=0.49996)
    assert res.timed_out and "[killed after 0.5s timeout]" in res.output
