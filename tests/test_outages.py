"""Outages: the relay down for a while, dovecot restarted under IDLE, a full
disk while writing a log, a build that hangs. Real servers, the real loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from servers import DovecotServer, dovecot_binary
from serving import Serving

from bot import daemon
from bot.config.rules import Source
from bot.daemon import Daemon
from bot.demo import layout
from bot.ingest import spool
from bot.reply import outbox
from bot.sandbox import bwrap as sandbox
from bot.state import State
from bot.testrun import build
from bot.testrun.steps import TIMEOUT

SAMPLE = {p.name.split("-", 1)[0]: p for p in layout.sample_list()}


def _rules(tmp_path, smtp, **source):
    rules = layout.prepare(tmp_path / "work", with_list=False)
    rules = dataclasses.replace(rules, grace_seconds=1, kernels=[rules.kernels[0], rules.kernels[-1]],
                                smtp=dataclasses.replace(rules.smtp, host=smtp.host, port=smtp.port,
                                                         timeout=5))
    if source:
        rules = dataclasses.replace(rules, source=Source(**source))
    return rules


def test_smtp_down_replies_queue_and_go_out_once_it_is_back(tmp_path, smtp_server, monkeypatch):
    monkeypatch.setattr(outbox, "BACKOFF", [1, 2, 2])
    rules = _rules(tmp_path, smtp_server)
    rules = dataclasses.replace(rules, source=dataclasses.replace(rules.source, poll_seconds=1))
    smtp_server.stop()
    for i, n in enumerate(("13", "14")):
        layout.deliver(tmp_path / "work" / "list", SAMPLE[n], i)
    with Serving(rules) as bot:
        # Tested, answered, but the relay is down: queued, with backoff.
        bot.wait(lambda: bot.state.one("SELECT * FROM outbox WHERE attempts >= 2"), 60,
                 "two failed attempts")
        [row] = bot.state.query("SELECT * FROM outbox")
        assert row["state"] == "queued" and row["last_error"]
        assert smtp_server.messages == []
        smtp_server.start()
        [reply] = smtp_server.take(1, timeout=30)
        bot.wait(lambda: bot.state.one("SELECT * FROM outbox WHERE state = 'sent'"), 10, "sent")
        time.sleep(2.5)  # more rounds: nothing goes out twice
    assert reply.message["X-bpbot-Verdict"] == "PASS"
    assert smtp_server.unchecked() == []
    [row] = bot.state.query("SELECT * FROM outbox")
    assert row["state"] == "sent" and row["attempts"] >= 3


def _restart_keeping_mail(dovecot: DovecotServer) -> None:
    """Kill dovecot and start it again on the same config, port and mail."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(dovecot.proc.pid, signal.SIGKILL)
    dovecot.proc.wait(timeout=10)
    cmd = [dovecot_binary(), "-F", "-c", str(dovecot.server.config)]
    if shutil.which("setpriv"):
        cmd = [shutil.which("setpriv"), "--pdeathsig", "KILL", "--", *cmd]
    with open(dovecot.workdir / "dovecot.stderr", "ab") as err:
        dovecot.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                        start_new_session=True)
    dovecot._wait_ready(time.monotonic())


def test_imap_restart_during_idle_reconnects_and_fetches_nothing_twice(tmp_path, smtp_server,
                                                                      monkeypatch):
    if dovecot_binary() is None:
        pytest.fail("dovecot is not installed: run deploy/setup.sh", pytrace=False)
    monkeypatch.setattr(daemon, "IDLE_RECONNECT_SECONDS", 1.0)
    fetched: list[bytes] = []
    real_spool = spool.spool

    def counting_spool(state, source, raws, **kw):
        fetched.extend(raws)
        return real_spool(state, source, raws, **kw)

    monkeypatch.setattr(spool, "spool", counting_spool)
    dovecot = DovecotServer()
    imap = dovecot.start()
    try:
        # Polling once an hour: only IDLE (and its reconnect) can bring mail in.
        rules = _rules(tmp_path, smtp_server, kind="imap", host=imap.host, port=imap.port,
                       ssl=False, user=imap.user, password_file=imap.password_file,
                       folder=imap.folder, poll_seconds=3600, idle_seconds=5)
        with Serving(rules) as bot:
            bot.wait(lambda: bot.daemon.idle_thread is not None, 10, "the IDLE thread")
            time.sleep(0.5)
            for n in ("13", "14"):
                imap.append(SAMPLE[n].read_bytes())
            [first] = smtp_server.take(1, timeout=60)
            time.sleep(0.5)  # back in IDLE
            _restart_keeping_mail(dovecot)
            # Mail that comes while the bot is still reconnecting; the next
            # scheduled kick is 30 s away, the poll an hour.
            imap.append(SAMPLE["09"].read_bytes())
            [second] = smtp_server.take(1, timeout=20)
    finally:
        dovecot.stop()
    assert first.message["X-bpbot-Verdict"] == "PASS"
    assert second.message["X-bpbot-Verdict"] == "NOT-APPLIED"
    assert len(fetched) == 3  # each message fetched once, across the restart
    assert bot.state.one("SELECT COUNT(*) AS n FROM messages")["n"] == 3


def test_disk_full_while_writing_a_log_is_an_infra_error_and_retried(tmp_path, smtp_server,
                                                                   monkeypatch):
    from bot.testrun import pipeline

    monkeypatch.setattr(pipeline, "INFRA_RETRY_SECONDS", 1)  # the retry waits; not 5 minutes here
    rules = _rules(tmp_path, smtp_server)
    # The first run's generator log is /dev/full: writing it fails with ENOSPC.
    logs = rules.state_dir / "work" / "run-1" / "logs"
    logs.mkdir(parents=True)
    (logs / "generate.log").symlink_to("/dev/full")
    for i, n in enumerate(("13", "14")):
        layout.deliver(tmp_path / "work" / "list", SAMPLE[n], i)
    state = State(rules.state_dir / "bpbot.sqlite")
    asyncio.run(Daemon(rules, state, sandbox.for_rules(rules)).run(until_idle=True, tick=0.2))
    [reply] = smtp_server.take(1, timeout=30)
    assert reply.message["X-bpbot-Verdict"] == "PASS"  # the retry, not the patch's fault
    runs = state.query("SELECT id, state, verdict FROM runs ORDER BY id")
    assert runs[0]["state"] == "infra-error" and runs[-1]["verdict"] == "pass"
    steps = state.query("SELECT status, detail FROM steps WHERE run_id = 1")
    assert any(s["status"] == "infra-error" and "No space left on device" in s["detail"]
               for s in steps), steps


def test_a_hanging_build_is_killed_at_its_timeout(tmp_path):
    rules = layout.prepare(tmp_path / "work", with_list=False)
    marker = str(700000 + os.getpid() % 100000)
    rules = dataclasses.replace(rules, build_timeout=2,
                                build_commands=[["sh", "-c", f"sleep {marker}"]])
    box = sandbox.for_rules(rules)
    started = time.monotonic()
    out = tmp_path / "pkg"
    out.mkdir()
    step = build.build_one(rules, box, rules.kernels[0], out, tmp_path / "build",
                           tmp_path / "build.log")
    assert step.status == TIMEOUT and step.detail == "timed out after 2s"
    assert time.monotonic() - started < 10
    assert "[killed after 2s timeout]" in (tmp_path / "build.log").read_text()
    time.sleep(0.3)
    left = [p for p in Path("/proc").iterdir() if p.name.isdigit()
            and marker.encode() in _cmdline(p)] if sys.platform == "linux" else []
    assert left == []


def _cmdline(proc_dir: Path) -> bytes:
    """A process's command line, or b"" when it exits while /proc is read."""
    try:
        return (proc_dir / "cmdline").read_bytes()
    except OSError:
        return b""
