"""The whole path on real servers: dovecot IMAP -> bpbot -> aiosmtpd.

The sample list is APPENDed to a real IMAP folder in two stages (a v2 is
mailed after the v1 reply, as in real life); the daemon's real loop runs
until everything is answered; exactly one reply per series reaches the SMTP
server with the right threading headers and verdict; restarting the daemon
sends nothing twice and fetches nothing twice.
"""

from __future__ import annotations

import asyncio
import dataclasses

from bot.config.rules import Source
from bot.daemon import Daemon
from bot.demo import layout
from bot.sandbox import bwrap as sandbox
from bot.state import State

SAMPLE = {p.name: p for p in layout.sample_list()}
STAGE_1 = [n for n in SAMPLE if not n.startswith(("13-", "14-"))]
STAGE_2 = ["13-fixes-3.10-v2-patch-1-2.eml", "14-fixes-3.10-v2-patch-2-2.eml"]


def _rules(tmp_path, imap, smtp):
    rules = layout.prepare(tmp_path / "work", with_list=False)
    source = Source(kind="imap", host=imap.host, port=imap.port, ssl=False, user=imap.user,
                    password_file=imap.password_file, folder=imap.folder, poll_seconds=1)
    return dataclasses.replace(rules, source=source, grace_seconds=1,
                               smtp=dataclasses.replace(rules.smtp, host=smtp.host, port=smtp.port))


def _serve(rules) -> State:
    """Start the daemon on the same state (a restart), run until idle, stop."""
    state = State(rules.state_dir / "bpbot.sqlite")
    daemon = Daemon(rules, state, sandbox.for_rules(rules))
    asyncio.run(daemon.run(until_idle=True, tick=0.2))
    return state


def _by_subject(messages):
    return {m.message["In-Reply-To"]: m.message for m in messages}


def test_imap_to_smtp_round_trip(tmp_path, imap_server, smtp_server):
    rules = _rules(tmp_path, imap_server, smtp_server)
    for name in STAGE_1:
        imap_server.append(SAMPLE[name].read_bytes())

    state = _serve(rules)
    first = _by_subject(smtp_server.take(4, timeout=60))
    cover_a = "<20260112081402.4127-1-asa.lindqvist@example.org>"
    b_v1 = "<20260114100233.9174-1-tomasz.wierzba@example.com>"
    d = "<20260115072958.5518-1-marek.nowak@example.com>"
    e = "<20260116133005.30411-1-lena.okafor@example.org>"
    assert set(first) == {cover_a, b_v1, d, e}

    a = first[cover_a]
    assert a["Subject"] == "Re: [PATCH 0/3] backports: add the minidrv RSSI histogram"
    assert a["References"] == cover_a
    assert a["X-bpbot-Verdict"] == "PASS"
    assert a["Auto-Submitted"] == "auto-generated"
    assert a["X-Loop"] == rules.loop_id
    assert "asa.lindqvist@example.org" in a["To"] and rules.list_address in a["Cc"]
    assert "Verdict: PASS" in a.get_content()

    fail = first[b_v1]
    assert fail["X-bpbot-Verdict"] == "FAIL"
    body = fail.get_content()
    assert "FAIL: breaks 3.10" in body
    assert "error: implicit declaration of function" in body
    assert "backport-include/linux/mm.h:10" in body

    assert first[d]["X-bpbot-Verdict"] == "NOT-APPLIED"
    assert "does not apply" in first[d].get_content()
    assert "missing 2 of 3; got 1, 3." in first[e].get_content()

    # The contributor mails v2 after reading the v1 reply; the bot restarts.
    for name in STAGE_2:
        imap_server.append(SAMPLE[name].read_bytes())
    state = _serve(rules)
    [v2] = smtp_server.take(1, timeout=60)
    assert v2.message["In-Reply-To"] == "<20260119084512.11872-1-tomasz.wierzba@example.com>"
    assert v2.message["X-bpbot-Verdict"] == "PASS"

    # A third start finds nothing new: no fetch, no reply.
    before = state.one("SELECT COUNT(*) AS n FROM messages")["n"]
    state = _serve(rules)
    assert state.one("SELECT COUNT(*) AS n FROM messages")["n"] == before == len(SAMPLE)
    cursor = state.one("SELECT * FROM cursors")
    assert cursor["last_uid"] == len(SAMPLE)
    sent = state.query("SELECT key FROM outbox WHERE state = 'sent'")
    assert len(sent) == 5
    assert smtp_server.unchecked() == []
