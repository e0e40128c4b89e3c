"""Subscriptions: copies of reports queued exactly once with the report, and
the whole round trip on real servers (dovecot IMAP -> bpbot -> aiosmtpd):
subscribe -> confirm -> a report arrives as a copy -> unsubscribe -> confirm
-> no more copies.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from email.message import EmailMessage

from bot.config import rules as config
from bot.config.rules import Source
from bot.daemon import Daemon
from bot.demo import layout
from bot.reply import outbox, subscriptions
from bot.sandbox import bwrap as sandbox
from bot.state import State

BOT = "bpbot@backports.example.org"
READER = "Rafael Oliveira <rafael.oliveira@example.net>"
SAMPLE = {p.name[:2]: p for p in layout.sample_list()}


def _report(msgid: str = "<bpbot-report-1@backports.example.org>") -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = "Re: [PATCH] backports: add timer_shutdown_sync()"
    msg["From"] = f"bpbot <{BOT}>"
    msg["To"] = "Marek Nowak <marek.nowak@example.com>"
    msg["Cc"] = "backports@vger.kernel.org"
    msg["Message-ID"] = msgid
    msg["In-Reply-To"] = "<20260115072958.5518-1-marek.nowak@example.com>"
    msg["X-bpbot-Verdict"] = "NOT-APPLIED"
    msg.set_content("Hi Marek,\n\nVerdict: NOT TESTED\n\n-- \nbpbot\n")
    return msg


def test_copies_are_queued_once_for_matching_subscribers_only(tmp_path):
    rules = config.load(config.DEMO_RULES, base_dir=tmp_path)
    state = State(tmp_path / "s.sqlite")
    with state.tx() as db:
        for address, glob in [("a@example.org", "backport-include/*"),
                              ("a@example.org", "*"),  # one copy per address
                              ("b@example.org", "compat/*"),
                              ("c@example.org", "*"),
                              ("marek.nowak@example.com", "*"),  # the author has it anyway
                              ("backports@vger.kernel.org", "*"),  # so has the list
                              ("linux-wireless@vger.kernel.org", "*")]:  # a list: never
            subscriptions.add(db, address, glob, 0.0)
    version = {"id": 7}
    paths = ["backport-include/linux/timer.h"]
    for _ in range(2):  # a second call (a replay) queues nothing new
        with state.tx() as db:
            subscriptions.queue_copies(db, rules, version, _report(), paths, run_id=3)
    rows = state.query("SELECT key, kind, recipients, version_id, run_id FROM outbox ORDER BY key")
    assert [r["key"] for r in rows] == ["copy:7:3:a@example.org", "copy:7:3:c@example.org"]
    assert {r["kind"] for r in rows} == {"copy"} and rows[0]["recipients"] == '["a@example.org"]'
    [copy] = [r for r in outbox.pending(state) if r["key"] == "copy:7:3:a@example.org"]
    text = bytes(copy["raw"]).decode()
    assert "\nTo: a@example.org\n" in text and "\nCc:" not in text
    assert "Message-ID: <bpbot-report-1@backports.example.org>" in text
    assert "X-bpbot-Copy-For: backport-include/*" in text
    assert f"List-Unsubscribe: <mailto:{BOT}?subject=unsubscribe>" in text
    assert "(here: backport-include/linux/timer.h)" in text
    assert "\n  unsubscribe backport-include/*\n" in text


def test_unsubscribe_all_removes_every_glob(tmp_path):
    state = State(tmp_path / "s.sqlite")
    with state.tx() as db:
        subscriptions.add(db, "a@example.org", "compat/*", 0.0)
        subscriptions.add(db, "a@example.org", "*", 0.0)
        assert not subscriptions.add(db, "a@example.org", "*", 0.0)
        assert subscriptions.remove(db, "a@example.org", "nope/*") == []
        assert subscriptions.remove(db, "a@example.org", "all") == ["compat/*", "*"]
        assert subscriptions.globs(db, "a@example.org") == []


# --- on real servers -------------------------------------------------------


def imap_rules(tmp_path, imap, smtp, **commands):
    rules = layout.prepare(tmp_path / "work", with_list=False)
    source = Source(kind="imap", host=imap.host, port=imap.port, ssl=False, user=imap.user,
                    password_file=imap.password_file, folder=imap.folder, poll_seconds=1)
    return dataclasses.replace(
        rules, source=source, grace_seconds=1,
        smtp=dataclasses.replace(rules.smtp, host=smtp.host, port=smtp.port),
        commands=rules.commands.model_copy(update=commands))


def serve(rules) -> State:
    """Start the daemon on the state (a restart each time), run until idle, stop."""
    state = State(rules.state_dir / "bpbot.sqlite")
    asyncio.run(Daemon(rules, state, sandbox.for_rules(rules)).run(until_idle=True, tick=0.2))
    return state


def command_mail(n: int, body: str, subject: str = "bot commands", frm: str = READER,
                 in_reply_to: str = "") -> bytes:
    thread = f"In-Reply-To: {in_reply_to}\nReferences: {in_reply_to}\n" if in_reply_to else ""
    return (f"From: {frm}\nTo: bpbot <{BOT}>\nSubject: {subject}\n"
            f"Date: Sun, 11 Jan 2026 10:{n:02d}:00 +0100\n"
            f"Message-ID: <20260111-{n}-cmd@example.net>\n{thread}"
            "Content-Type: text/plain; charset=UTF-8\n\n" + body).encode()


def answer(request, frm: str = READER) -> bytes:
    """A plain reply to a confirmation request, quoting it (and so its token)."""
    msg = request.message
    quoted = "\n".join("> " + line for line in msg.get_content().splitlines())
    return command_mail(int(msg["In-Reply-To"].split("-")[1]) + 1, f"OK\n\n{quoted}\n",
                        subject=f"Re: {msg['Subject']}", frm=frm, in_reply_to=msg["Message-ID"])


def test_subscribe_confirm_copy_unsubscribe_confirm_no_copy(tmp_path, imap_server, smtp_server):
    rules = imap_rules(tmp_path, imap_server, smtp_server)
    imap_server.append(command_mail(1, "subscribe backport-include/*\n"))
    serve(rules)
    [request] = smtp_server.take(1, timeout=30)
    assert request.rcpt_tos == ["rafael.oliveira@example.net"]
    assert request.subject == "Re: bot commands"  # the token is in the text, never the Subject
    assert re.search(r"^    confirm [0-9a-f]{20}\r?$", request.message.get_content(), re.M)

    imap_server.append(answer(request))
    serve(rules)
    [done] = smtp_server.take(1, timeout=30)
    assert "Subscribed rafael.oliveira@example.net" in done.message.get_content()

    imap_server.append(SAMPLE["09"].read_bytes())  # touches backport-include/linux/timer.h
    state = serve(rules)
    got = {tuple(m.rcpt_tos): m for m in smtp_server.take(2, timeout=60)}
    report = got[("marek.nowak@example.com", "backports@vger.kernel.org")].message
    copy = got[("rafael.oliveira@example.net",)].message
    assert copy["Message-ID"] == report["Message-ID"]
    assert copy["In-Reply-To"] == report["In-Reply-To"] and copy["Subject"] == report["Subject"]
    assert copy["X-bpbot-Copy-For"] == "backport-include/*" and copy["Cc"] is None
    assert report.get_content() in copy.get_content()

    imap_server.append(command_mail(20, "unsubscribe all\n"))
    serve(rules)
    [request] = smtp_server.take(1, timeout=30)
    assert state.query("SELECT address FROM subscriptions") != []  # not before the confirmation
    imap_server.append(answer(request))
    serve(rules)
    [done] = smtp_server.take(1, timeout=30)
    assert "Unsubscribed rafael.oliveira@example.net" in done.message.get_content()

    for n in ("06", "07"):  # touches backport-include/linux/mm.h: a report, and no copy
        imap_server.append(SAMPLE[n].read_bytes())
    state = serve(rules)
    [report] = smtp_server.take(1, timeout=60)
    assert report.rcpt_tos == ["tomasz.wierzba@example.com", "backports@vger.kernel.org"]
    assert state.one("SELECT COUNT(*) AS n FROM outbox WHERE kind = 'copy'")["n"] == 1
    assert state.one("SELECT COUNT(*) AS n FROM outbox WHERE state = 'queued'")["n"] == 0
