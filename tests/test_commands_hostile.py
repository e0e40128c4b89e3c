"""Mail commands turned against people (issue "A hostile patch can stop the
bot for good"): each test replays one attack and checks it does nothing.

DKIM replays of a maintainer's public signed mail, a reply that reflects a
huge argument at a forged sender, a flood of forged senders ahead of a
maintainer, a list tricked into subscribing, and patches mailed straight to
the bot. Uses the ``env`` of test_commands_runner (real state database,
injected clock, stub DNS); every reply a test causes must be taken.
"""

from __future__ import annotations

import dkim
import pytest
import test_commands_runner
from test_commands_runner import (
    A_COVER,
    BOT,
    D_MSGID,
    DATE_T0,
    DAY,
    LUIS,
    T0,
    _signed,
    _with_series,
    body,
    confirm,
    said,
    token_of,
)

from bot.commands import runner as command_runner
from bot.commands.parse import ParsedMail
from bot.config import rules as config

D_SUBJECT = "Re: [PATCH] backports: add timer_shutdown_sync()"
env = test_commands_runner.env  # the fixtures: state, clock, replies that must be taken
dkim_key = test_commands_runner.dkim_key


def _states(e) -> dict[str, str]:
    """reply_to (the series' first mail) -> state of its version."""
    return {r["reply_to"]: r["state"] for r in e.state.query("SELECT reply_to, state FROM versions")}


def _maintainer_retest(msgid: str, date: str = DATE_T0, extra: str = "",
                       text: str = "retest full\n") -> bytes:
    """Luis's public reply in D's thread, as it sits in the list archive."""
    return (f"From: {LUIS}\nTo: {BOT}\nCc: backports@vger.kernel.org\nSubject: {D_SUBJECT}\n"
            f"Date: {date}\nMessage-ID: <{msgid}>\nIn-Reply-To: <{D_MSGID}>\n"
            f"References: <{D_MSGID}>\n{extra}\n{text}").encode()


def _dns(records):
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name)
    return lookup


def _dkim_env(env):
    e = env(require_dkim=True)
    _with_series(e, ("09", "01", "02", "03", "04"))  # D, and A (a cover and 3 patches)
    return e


# --- DKIM replay -------------------------------------------------------------


def test_dkim_replay_with_prepended_headers_does_nothing(env, dkim_key):
    key, records = dkim_key
    e = _dkim_env(env)
    signed = _signed(_maintainer_retest("luis-1@backports.example.org"), key)
    e.spool(signed)
    e.run(dnsfunc=_dns(records))
    assert "Queued a retest of v1" in said(e.take(1)[0])
    with e.state.tx() as db:
        db.conn.execute("UPDATE versions SET state = 'done'")
    # The same bytes, with other threading headers on top: DKIM signed the last
    # copy of each header, the bot would read the first.
    replay = (f"Message-ID: <replay-1@evil.example>\r\nIn-Reply-To: <{A_COVER}>\r\n"
              f"References: <{A_COVER}>\r\n").encode() + signed
    assert dkim.verify(replay, dnsfunc=_dns(records))  # the signature still verifies
    e.spool(replay)
    assert e.run(dnsfunc=_dns(records)) == 0
    e.take(0)
    assert set(_states(e).values()) == {"done"}
    assert e.state.one("SELECT COUNT(*) AS n FROM retests")["n"] == 1
    row = e.state.one("SELECT outcome, reason FROM command_mails WHERE msgid = ?",
                      ("replay-1@evil.example",))
    assert row["outcome"] == "silent"
    assert "more than one Message-ID, In-Reply-To, References header" in row["reason"]


def test_dkim_signature_with_a_body_length_is_refused(env, dkim_key):
    key, records = dkim_key
    e = _dkim_env(env)
    raw = _maintainer_retest("luis-l@backports.example.org").replace(b"\n", b"\r\n")
    signed = dkim.sign(raw, b"sel", b"backports.example.org", key, length=True,
                       include_headers=[b"from", b"to", b"cc", b"subject", b"date",
                                        b"message-id", b"in-reply-to", b"references"]) + raw
    tampered = signed + f"retest <{A_COVER}>\r\n".encode()  # below the signed l= bytes
    assert dkim.verify(tampered, dnsfunc=_dns(records))
    e.spool(tampered)
    e.run(dnsfunc=_dns(records))
    [reply] = e.take(1)
    assert "signs only the first l= bytes of the body" in said(reply)
    assert set(_states(e).values()) == {"done"}


def test_dkim_signature_must_sign_the_threading_headers(env, dkim_key):
    key, records = dkim_key
    e = _dkim_env(env)
    raw = _maintainer_retest("luis-h@backports.example.org")
    signed = _signed(raw, key, headers=(b"from", b"to", b"cc", b"subject", b"date",
                                        b"message-id"))
    moved = signed.replace(f"<{D_MSGID}>".encode(), f"<{A_COVER}>".encode())
    assert dkim.verify(moved, dnsfunc=_dns(records))
    e.spool(moved)
    e.run(dnsfunc=_dns(records))
    [reply] = e.take(1)
    assert "does not sign in-reply-to, references" in said(reply)
    assert set(_states(e).values()) == {"done"}


@pytest.mark.parametrize(("date", "problem"), [
    ("Sat, 03 Jan 2026 10:00:00 +0000", "is more than 3 days old"),
    ("Mon, 19 Jan 2026 10:00:00 +0000", "is in the future"),
])
def test_dkim_signed_mail_needs_a_recent_date(env, dkim_key, date: str, problem: str):
    key, records = dkim_key
    e = _dkim_env(env)
    e.spool(_signed(_maintainer_retest("luis-old@backports.example.org", date=date), key))
    e.run(dnsfunc=_dns(records))
    [reply] = e.take(1)
    assert "verified, but its Date" in said(reply) and problem in said(reply)
    assert set(_states(e).values()) == {"done"}


def test_a_used_dkim_signature_works_once(env, dkim_key):
    """However a second copy gets past the Message-ID check (here: stored under
    another id), the signature it carries has been used."""
    key, records = dkim_key
    e = _dkim_env(env)
    signed = _signed(_maintainer_retest("luis-2@backports.example.org"), key)
    e.spool(signed)
    e.run(dnsfunc=_dns(records))
    e.take(1)
    with e.state.tx() as db:
        db.conn.execute("UPDATE versions SET state = 'done'")
        db.conn.execute("INSERT INTO messages (msgid, raw, size, source, received_at, kind,"
                        " reason, from_addr) VALUES ('copy-2@x', ?, ?, 'test', ?, 'command',"
                        " 'addressed to the bot', 'maintainer@backports.example.org')",
                        (signed, len(signed), T0))
    e.run(T0 + 60, dnsfunc=_dns(records))
    [reply] = e.take(1)
    assert "This DKIM signature already asked for a retest, in " \
        "<luis-2@backports.example.org>" in said(reply)
    assert e.state.one("SELECT COUNT(*) AS n FROM retests")["n"] == 1


def test_one_signed_mail_may_ask_for_several_retests(env, dkim_key):
    key, records = dkim_key
    e = _dkim_env(env)
    text = f"retest <{D_MSGID}>\nretest <{A_COVER}>\n"
    e.spool(_signed(_maintainer_retest("luis-3@backports.example.org", text=text), key))
    e.run(dnsfunc=_dns(records))
    [reply] = e.take(1)
    assert said(reply).count("Queued a retest of v1") == 2
    assert set(_states(e).values()) == {"ready"}


def test_many_signatures_cost_at_most_three_dns_lookups(env, dkim_key):
    """Each check is a DNS lookup (a timeout each, for a slow server): a forged
    mail with many signatures must not hold the runner."""
    key, records = dkim_key
    e = _dkim_env(env)
    raw = _maintainer_retest("luis-many@backports.example.org")
    for domain in [b"backports.example.org"] * 8 + [b"elsewhere.example.net"] * 8:
        raw = _signed(raw, key, domain).replace(b"\r\n", b"\n")
    raw = raw.replace(b"retest full", b"retest  full")  # none verifies any more
    lookups: list[bytes] = []

    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        lookups.append(name)
        return records.get(name)

    e.spool(raw)
    e.run(dnsfunc=dns)
    [reply] = e.take(1)
    assert len(lookups) == 3
    assert "not checked: too many signatures" in said(reply)
    assert set(_states(e).values()) == {"done"}


# --- reflection ------------------------------------------------------------


def test_a_huge_argument_is_not_reflected(env):
    e = env()
    word = "x" * 2_000_000
    e.send(f"status {word}\nstatus queue {word}\n", subject="status " + "y" * 100_000,
           frm="Victim " + "v" * 50_000 + " <victim@example.org>")
    e.run()
    [reply] = e.take(1)
    assert len(reply.as_bytes()) < 20_000
    assert len(reply["Subject"]) < 300
    assert "[cut: 2000007 characters]" in body(reply)


def test_every_reply_is_cut_at_16_kib():
    rules = config.load(config.DEMO_RULES)
    parsed = ParsedMail("m@x", "status", "Jane", "jane@example.org")
    lines = [f"  v1  done  series number {i} " + "z" * 60 for i in range(2000)]
    msg, _ = command_runner.reply(rules, parsed, "\n".join(lines), "command:m@x")
    text = msg.get_content()
    assert len(text.encode()) <= 16 * 1024 + 200  # the cut text, then the signature
    assert "[This reply was cut: it would have been" in " ".join(text.split())
    assert text.rstrip().endswith("the backports patch bot")


# --- flood -----------------------------------------------------------------


def test_forged_senders_neither_delay_a_maintainer_nor_wait_for_later(env):
    e = env()
    limit = e.rules.commands.overall_per_hour  # 60 in the demo rules
    for i in range(2 * limit):
        e.send("subscribe\n", frm=f"Victim {i} <victim{i}@example.net>")
    e.send("status queue\n", frm=LUIS)
    assert e.run(T0) == limit
    replies = e.take(limit)
    assert replies[0]["To"] == LUIS  # answered first, not two hours later
    dropped = e.state.query("SELECT reason FROM command_mails WHERE outcome = 'dropped'")
    assert len(dropped) == limit + 1 and "not kept for later" in dropped[0]["reason"]
    assert e.run(T0 + 3601) == 0  # dropped, not deferred
    e.take(0)
    assert e.state.one("SELECT COUNT(*) AS n FROM tokens")["n"] == limit - 1


def test_at_most_three_outstanding_tokens_per_address(env):
    e = env()
    for glob in ("a/*", "b/*", "c/*", "d/*"):
        e.send(f"subscribe {glob}\n", frm="Victim <victim@example.net>")
    e.run()
    *requests, refused = e.take(4)
    assert all(token_of(r) for r in requests)
    assert "3 confirmations already wait for victim@example.net" in said(refused)
    assert "confirm" not in body(refused).replace("confirmations", "")
    assert e.state.one("SELECT COUNT(*) AS n FROM tokens")["n"] == 3
    # Once one is used, there is room for another.
    confirm(e, requests[0], frm="Victim <victim@example.net>")
    e.send("subscribe e/*\n", frm="Victim <victim@example.net>")
    e.run()
    assert token_of(e.take(1)[0])


# --- lists -----------------------------------------------------------------


@pytest.mark.parametrize("address", ["linux-wireless@vger.kernel.org", "dev@lists.example.org",
                                     "backports@vger.kernel.org"])
def test_a_list_address_gets_no_reply_and_cannot_confirm(env, address: str):
    e = env()
    e.send("subscribe\n", frm=address)
    assert e.run() == 0
    e.take(0)
    reason = e.state.one("SELECT reason FROM command_mails")["reason"]
    assert f"sent from a list address ({address})" in reason
    # A token it holds anyway (issued before this rule) confirms nothing.
    with e.state.tx() as db:
        db.conn.execute("INSERT INTO tokens (token, address, actions, request_msgid, created_at,"
                        " expires_at) VALUES ('0123456789abcdef0123', ?, ?, 'old@x', ?, ?)",
                        (address, '[{"command": "subscribe", "args": ["*"]}]', T0, T0 + DAY))
    e.send("confirm 0123456789abcdef0123\n", frm=address)
    assert e.run() == 0
    assert e.state.query("SELECT * FROM subscriptions") == []


def test_subscribe_and_confirm_through_a_list_are_refused(env):
    e = env()
    e.send("subscribe\n", extra="List-Id: Wireless <linux-wireless.vger.kernel.org>\n")
    e.run()
    [refused] = e.take(1)
    assert "subscribe is not read in mail that came through a mailing list (this one carries " \
        "List-Id)" in said(refused)
    assert e.state.query("SELECT * FROM tokens") == []
    e.send("subscribe\n")
    e.run()
    token = token_of(e.take(1)[0])
    e.send(f"confirm {token}\n", extra="List-Post: <mailto:linux-wireless@vger.kernel.org>\n")
    e.run()
    assert "confirm is not read in mail that came through a mailing list" in said(e.take(1)[0])
    assert e.state.query("SELECT * FROM subscriptions") == []


def test_the_token_is_never_in_the_subject_and_a_quoted_reply_confirms(env):
    e = env()
    e.send("subscribe compat/*\n", subject="please")
    e.run()
    [request] = e.take(1)
    token = token_of(request)
    assert request["Subject"] == "Re: please" and token not in str(request)[:2000].split("\n\n")[0]
    done = confirm(e, request)  # "Re: please", the request quoted below
    assert "Subscribed jane@example.org" in said(done)
