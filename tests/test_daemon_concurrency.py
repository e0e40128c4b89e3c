"""A test run no longer blocks the daemon: on real servers (dovecot IMAP ->
bpbot -> aiosmtpd), a `help` mailed while a series is being built (a build
command that sleeps 60 s) is answered within 2 s of its arrival. A stop (or
SIGTERM to `bpbot serve`) during that build gives the run up cleanly
(recorded 'interrupted', no process or cgroup left) and the next start tests
the version again.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from proctools import running
from serving import Serving
from test_crash import _toml, write_rules
from test_subscriptions import SAMPLE, command_mail, imap_rules

from bot import isolate
from bot.config import rules as config
from bot.demo import layout
from bot.ingest import spool
from bot.reply import results
from bot.sandbox import bwrap as sandbox
from bot.sandbox import git
from bot.series import tracker
from bot.series.assembly import configure_b4
from bot.state import State
from bot.testrun import pipeline

ANSWER_WITHIN = 2.0  # seconds from a command's arrival to its reply
STRANGER = "Eve Stranger <eve@example.net>"


def _sleepers(marker: str) -> list[int]:
    """The build commands (``sleep <marker>``) running now."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[:2] == [b"sleep", marker.encode()] and running(int(entry.name)):
            found.append(int(entry.name))
    return found


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _cgroups_of_this_process(box) -> list[Path]:
    if box.pids_cgroup is None:
        return []
    mine = f"{os.getpid()}-"
    return [c for c in box.pids_cgroup.parent.iterdir() if c.is_dir() and c.name.startswith(mine)]


def test_help_during_a_long_build_is_answered_at_once_and_a_stop_gives_the_run_up(
        tmp_path, imap_server, smtp_server):
    rules = imap_rules(tmp_path, imap_server, smtp_server)
    marker = f"60.{os.getpid()}"  # a build that sleeps 60 s, findable in /proc
    long_build = dataclasses.replace(rules, build_commands=[["sh", "-c", f"sleep {marker}"]],
                                     build_timeout=600, kernels=[rules.kernels[0]],
                                     source=dataclasses.replace(rules.source, poll_seconds=3600))
    for n in ("13", "14"):
        imap_server.append(SAMPLE[n].read_bytes())

    with Serving(long_build) as bot:
        _wait(lambda: _sleepers(marker), 180, "the series' build to start")
        version = bot.state.one("SELECT * FROM versions")
        imap_server.append(command_mail(1, "help\n", subject="help", frm=STRANGER))
        arrived = time.monotonic()
        [helped] = smtp_server.take(1, timeout=60)
        took = time.monotonic() - arrived
        print(f"\n`help` mailed during a 60 s build answered {took:.2f} s after its arrival")
        assert helped.subject == "Re: help" and helped.rcpt_tos == ["eve@example.net"]
        assert took < ANSWER_WITHIN, f"help answered after {took:.2f}s"
        assert _sleepers(marker), "the build is still going"

        stopped_in = bot.stop()
        print(f"stop during the build took {stopped_in:.2f} s")
    assert stopped_in < 30, "the stop waited for the build instead of giving it up"
    assert _sleepers(marker) == []
    assert _cgroups_of_this_process(bot.daemon.sandbox) == []
    assert [p.name for p in (rules.state_dir / "work").glob("*src")] == []
    assert bot.state.query("SELECT state FROM runs") == [{"state": "interrupted"}]
    assert bot.state.one("SELECT state FROM versions")["state"] == "ready"
    # Not taken for a crash: the next start tests it again, in this process.
    assert pipeline.next_ready(bot.state)["id"] == version["id"]
    assert isolate.suspect(bot.state, version["id"]) == []

    with Serving(rules) as again:  # the ordinary build: the version passes
        [report] = smtp_server.take(1, timeout=300)
    assert report.message["X-bpbot-Verdict"] == "PASS"
    assert [r["state"] for r in again.state.query("SELECT state FROM runs ORDER BY id")] == \
        ["interrupted", "done"]


def test_sigterm_during_a_build_ends_serve_cleanly_and_leaves_nothing(tmp_path, imap_server,
                                                                      smtp_server):
    """`bpbot serve` as the operator runs it: SIGTERM while a series is built."""
    work = tmp_path / "work"
    layout.prepare(work, with_list=False)
    path = write_rules(work, imap_server, smtp_server)
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    marker = f"61.{os.getpid()}"
    data["build"].update(command=["sh", "-c", f"sleep {marker}"], timeout="10m")
    data["series"]["grace_period"] = "1s"
    data["kernels"] = data["kernels"][:1]
    path.write_text(_toml(data), encoding="utf-8")
    rules = config.load(path)
    box = sandbox.for_rules(rules)  # where the bot's cgroups go
    for n in ("13", "14"):
        imap_server.append(SAMPLE[n].read_bytes())

    bpbot = Path(sys.executable).with_name("bpbot")
    with open(tmp_path / "serve.log", "wb") as log:
        serve = subprocess.Popen([str(bpbot), "serve", "--config", str(path)],
                                 stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait(lambda: _sleepers(marker) or serve.poll() is not None, 180,
              "the series' build to start")
        assert serve.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
        started = time.monotonic()
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=120) == 0, (tmp_path / "serve.log").read_text()[-3000:]
        print(f"\n`bpbot serve` ended {time.monotonic() - started:.2f} s after SIGTERM")
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
    assert _sleepers(marker) == []
    if box.pids_cgroup is not None:
        assert list(box.pids_cgroup.parent.glob(f"{serve.pid}-*")) == []
    state = State(rules.state_dir / "bpbot.sqlite")
    assert state.query("SELECT state FROM runs") == [{"state": "interrupted"}]
    assert state.one("SELECT state FROM versions")["state"] == "ready"
    worktrees = git.git(rules.tree_path, "worktree", "list", "--porcelain").output
    assert worktrees.count("worktree ") == 1, worktrees
    assert [p.name for p in (rules.state_dir / "work").glob("*src")] == []
    assert "SIGTERM: stopping" in (tmp_path / "serve.log").read_text()


def test_a_stop_during_a_run_in_a_child_process_gives_it_up(tmp_path):
    """A version the daemon died in before is run in a child (bot/isolate.py): a
    stop reaches the child's build too, and concludes nothing about the series."""
    rules = layout.prepare(tmp_path / "work", with_list=False)
    marker = f"62.{os.getpid()}"
    rules = dataclasses.replace(rules, grace_seconds=0, kernels=[rules.kernels[0]],
                                build_commands=[["sh", "-c", f"sleep {marker}"]],
                                build_timeout=600)
    configure_b4(rules.bot_name, rules.bot_address)
    state = State(rules.state_dir / "bpbot.sqlite")
    raws = [SAMPLE[n].read_bytes() for n in ("13", "14")]
    spool.spool(state, "test", raws, bot_address=rules.bot_address, loop_id=rules.loop_id)
    tracker.assemble(state, rules)
    version = pipeline.next_ready(state)
    pipeline.start_run(state, version)  # the daemon was killed during this run

    with Serving(rules) as bot:  # recover: the run is 'abandoned', the next in a child
        _wait(lambda: _sleepers(marker), 180, "the build in the child process")
        assert bot.daemon.runs.busy()
        stopped_in = bot.stop()
    print(f"\nstop during a build in a child process took {stopped_in:.2f} s")
    assert stopped_in < 60
    assert _sleepers(marker) == []
    assert [r["state"] for r in state.query("SELECT state FROM runs ORDER BY id")] == \
        ["abandoned", "interrupted"]
    assert state.one("SELECT state, verdict FROM versions") == {"state": "ready", "verdict": ""}
    assert [p.name for p in (rules.state_dir / "work").glob("*src")] == []
    assert state.query("SELECT id FROM outbox") == []


def test_a_version_superseded_after_it_was_handed_to_the_worker_is_not_tested(tmp_path):
    """The loop goes on while the worker starts: a v2 may supersede the version
    between its pick and its run's start; the run's claim then takes nothing."""
    rules = layout.prepare(tmp_path / "work", with_list=False)
    configure_b4(rules.bot_name, rules.bot_address)
    state = State(rules.state_dir / "bpbot.sqlite")
    raws = [SAMPLE[n].read_bytes() for n in ("13", "14")]
    spool.spool(state, "test", raws, bot_address=rules.bot_address, loop_id=rules.loop_id)
    tracker.assemble(state, rules)
    version = pipeline.next_ready(state)
    with state.tx() as db:  # what tracker's supersede does when a v2 arrives
        db.conn.execute("UPDATE versions SET state = 'superseded' WHERE id = ?", (version["id"],))
    results.run_version(state, rules, sandbox.for_rules(rules), version)
    assert state.query("SELECT id FROM runs") == []
    assert state.one("SELECT state FROM versions")["state"] == "superseded"
