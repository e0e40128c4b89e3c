"""The IMAP source against a real dovecot: cursor, PEEK, UIDVALIDITY, IDLE."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time

from bot.config.rules import Source
from bot.daemon import Daemon
from bot.demo import layout
from bot.ingest import spool
from bot.ingest.sources import ImapSource
from bot.sandbox import bwrap as sandbox
from bot.state import State

SAMPLE = {p.name.split("-", 1)[0]: p for p in layout.sample_list()}


def _setup(tmp_path, imap, smtp=None, poll_seconds=1):
    rules = layout.prepare(tmp_path / "work", with_list=False)
    source = Source(kind="imap", host=imap.host, port=imap.port, ssl=False, user=imap.user,
                    password_file=imap.password_file, folder=imap.folder,
                    poll_seconds=poll_seconds, idle_seconds=5)
    rules = dataclasses.replace(rules, source=source)
    if smtp is not None:
        rules = dataclasses.replace(rules, smtp=dataclasses.replace(rules.smtp, host=smtp.host,
                                                                    port=smtp.port))
    return rules, State(rules.state_dir / "bpbot.sqlite")


def test_poll_fetches_only_new_uids_and_never_sets_seen(tmp_path, imap_server):
    rules, state = _setup(tmp_path, imap_server)
    source = ImapSource(rules, state)
    imap_server.append(SAMPLE["08"].read_bytes())
    imap_server.append(SAMPLE["09"].read_bytes())
    assert source.poll() == 2
    # "N:*" returns the highest UID even when it is below N: nothing is refetched.
    assert source.poll() == 0
    cursor = spool.get_cursor(state, source.name)
    assert cursor.last_uid == 2 and cursor.uidvalidity == source.uidvalidity
    imap_server.append(SAMPLE["12"].read_bytes())
    assert source.poll() == 1
    assert spool.get_cursor(state, source.name).last_uid == 3
    with imap_server.connect() as client:
        client.select_folder("INBOX", readonly=True)
        flags = client.get_flags(client.search(["ALL"]))
    assert all(b"\\Seen" not in f for f in flags.values())
    source.close()


def test_uidvalidity_change_rescans_deduplicated_by_message_id(tmp_path, imap_server):
    rules, state = _setup(tmp_path, imap_server)
    source = ImapSource(rules, state)
    imap_server.append(SAMPLE["08"].read_bytes())
    assert source.poll() == 1
    source.close()
    imap_server.set_uidvalidity(424242)
    imap_server.append(SAMPLE["09"].read_bytes())
    source = ImapSource(rules, state)
    assert source.poll() == 1  # both fetched again; only the unseen one is new
    assert state.one("SELECT COUNT(*) AS n FROM messages")["n"] == 2
    cursor = spool.get_cursor(state, source.name)
    assert cursor.uidvalidity == 424242
    source.close()


def test_idle_wakes_the_daemon_without_waiting_for_the_poll(tmp_path, imap_server, smtp_server):
    # The poll interval is an hour: only IDLE can bring this mail in quickly.
    rules, state = _setup(tmp_path, imap_server, smtp_server, poll_seconds=3600)
    daemon = Daemon(rules, state, sandbox.for_rules(rules))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(daemon.run(),), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while daemon.idle_thread is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # let the watcher enter IDLE
        for n in ("13", "14"):
            imap_server.append(SAMPLE[n].read_bytes())
        [reply] = smtp_server.take(1, timeout=240)  # a whole test run, on a busy machine
        assert reply.message["X-bpbot-Verdict"] == "PASS"
    finally:
        loop.call_soon_threadsafe(daemon.stop)
        thread.join(timeout=20)
    assert not thread.is_alive()
