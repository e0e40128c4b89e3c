"""Hostile series through the real daemon: each is contained and answered.

The series in tests/data/hostile/ (made by make_series.py there) change the
sample tree's generator or package Makefile to reach the network, read the
bot's database, rules and passwords, write outside their own dir, print
gigabytes, write a huge file, fork-bomb or loop forever. They are mailed to
the bot together with one clean series after them; the daemon's real loop
(Maildir source -> aiosmtpd) answers every one: a failure or a timeout with
a clear reason, nothing leaked into the replies or logs, nothing written
outside the run's own dirs, and the clean series still passes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

from bot.daemon import Daemon
from bot.demo import layout
from bot.sandbox import bwrap as sandbox
from bot.state import State

HOSTILE = sorted((Path(__file__).resolve().parent / "data" / "hostile").glob("*.eml"))
CLEAN = [p for p in layout.sample_list() if p.name.startswith(("01-", "02-", "03-", "04-"))]
TIMEOUT = 5
SECRETS = ("SECRET-RULES-MARKER", "SECRET-IMAP-PASSWORD", "SECRET-SMTP-PASSWORD", "SQLite format 3")
# What each reply must say: the failing step's own words, not a guess.
EXPECT = {
    "network": ("cannot fetch firmware", "127.0.0.1:47611"),
    "read-secrets": ("local configuration not found",),
    "write-outside-generate": ("cannot write the cache", "Read-only file system"),
    "gigabytes": (f"timed out after {TIMEOUT}s",),
    "big-file": ("File too large",),
    "write-outside-build": ("install-headers] Error 1",),
    "fork-bomb": (),  # a fork error or the timeout, whichever comes first
    "loop-forever": (f"timed out after {TIMEOUT}s",),
}
LISTEN_PORT = 47611  # where the "network" series tries to connect on the host


@pytest.fixture
def workdir():
    # Not under /tmp: the sandbox has a private /tmp, where writes would land
    # harmlessly but would not show that the rest of the host is read-only.
    path = Path(tempfile.mkdtemp(prefix="bpbot-hostile-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _rules(work: Path, smtp):
    rules = layout.prepare(work, with_list=False)
    rules_file = work / "rules.toml"
    rules_file.write_text(config_text() + "\n# SECRET-RULES-MARKER\n")
    imap_pw, smtp_pw = work / "imap-password", work / "smtp-password"
    imap_pw.write_text("SECRET-IMAP-PASSWORD")
    smtp_pw.write_text("SECRET-SMTP-PASSWORD")
    return dataclasses.replace(
        rules, file=str(rules_file), grace_seconds=1, generate_timeout=TIMEOUT,
        build_timeout=TIMEOUT, build_file_size=64 * 1024 ** 2, build_pids=64,
        output_cap=256 * 1024,
        source=dataclasses.replace(rules.source, password_file=imap_pw, poll_seconds=1),
        smtp=dataclasses.replace(rules.smtp, host=smtp.host, port=smtp.port, timeout=10,
                                 password_file=smtp_pw))


def config_text() -> str:
    from bot.config import rules as config
    return config.DEMO_RULES.read_text(encoding="utf-8")


class Listener:
    """Counts connections that reach the host's loopback port."""

    def __init__(self, port: int):
        self.accepted = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind(("127.0.0.1", port))
        except OSError:  # another run of this test holds it: the reply is still checked
            self.accepted = None
            return
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
                self.accepted += 1
                conn.close()
            except OSError:
                continue

    def close(self) -> None:
        if self.accepted is not None:
            self.stop.set()
            self.thread.join()
        self.sock.close()


def _name(path: Path) -> str:
    return path.stem.split("-", 1)[1]


def test_hostile_series_are_contained_and_answered(tmp_path, workdir, smtp_server):
    rules = _rules(workdir, smtp_server)
    box = sandbox.for_rules(rules)
    assert box.mode == "bwrap"
    maildir = workdir / "list"
    for i, path in enumerate(HOSTILE + CLEAN):
        layout.deliver(maildir, path, i)
    listener = Listener(LISTEN_PORT)
    started = time.monotonic()
    try:
        state = State(rules.state_dir / "bpbot.sqlite")
        asyncio.run(Daemon(rules, state, box).run(until_idle=True, tick=0.2))
    finally:
        listener.close()
    elapsed = time.monotonic() - started

    replies = {m.message["In-Reply-To"]: m for m in smtp_server.take(len(HOSTILE) + 1, timeout=30)}
    assert len(replies) == len(HOSTILE) + 1
    for path in HOSTILE:
        name = _name(path)
        reply = replies[f"<hostile-{name}@example.net>"]
        body = reply.message.get_content()
        (tmp_path / f"reply-{name}.txt").write_text(body)  # to read when a check fails
        assert reply.message["X-bpbot-Verdict"] == "FAIL", (name, body)
        for words in EXPECT[name]:
            assert words in body, (name, words, body)
        if name == "fork-bomb":  # stopped by the pids limit (fork fails) or at the timeout
            assert "parallel] Error" in body or f"timed out after {TIMEOUT}s" in body, body
        assert len(reply.raw) < 64 * 1024, (name, len(reply.raw))  # gigabytes stay out
    clean = replies["<20260112081402.4127-1-asa.lindqvist@example.org>"]
    assert clean.message["X-bpbot-Verdict"] == "PASS"

    # Contained: no connection reached the host, nothing written outside,
    # no secret in a reply or a log.
    assert listener.accepted in (0, None)
    assert list(workdir.rglob("pwned*")) == []
    for outside in ("/root/pwned", "/usr/pwned", "/etc/pwned", "/pwned"):
        assert not Path(outside).exists()
    texts = [m.raw.decode("utf-8", "replace") for m in replies.values()]
    texts += [p.read_text(errors="replace") for p in rules.state_dir.rglob("*.log")]
    for secret in SECRETS:
        assert not any(secret in t for t in texts), secret
    logs = "\n".join(p.read_text(errors="replace") for p in rules.state_dir.rglob("build-*.log"))
    assert "install-headers: cannot write" in logs and "wrote " not in logs
    assert "fork" in logs.lower() or "timed out" in logs
    big_logs = [p for p in rules.state_dir.rglob("*.log") if p.stat().st_size > 2 * rules.output_cap]
    assert big_logs == []
    assert elapsed < 300
