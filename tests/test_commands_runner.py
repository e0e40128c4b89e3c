"""The command runner on a real state database, with an injected clock and a
stub DNS for DKIM: one reply per command mail (Done / Ignored / Unknown),
confirmation tokens, rate limits, silence, status and retest.

Replies are read from the outbox; every test must ``take()`` each reply it
caused (the ``env`` fixture fails a passing test that leaves one unchecked).
"""

from __future__ import annotations

import base64
import dataclasses
import email
import email.policy
import random
import re
from email.message import EmailMessage

import dkim
import pytest

from bot.commands import runner as command_runner
from bot.config import rules as config
from bot.demo import commands as demo_commands
from bot.demo import layout
from bot.ingest import spool
from bot.reply import subscriptions
from bot.series import assembly as series
from bot.series import tracker
from bot.state import State

BOT = "bpbot@backports.example.org"
T0 = 1_768_000_000.0  # 2026-01-09
DATE_T0 = "Fri, 09 Jan 2026 23:00:00 +0000"  # a few minutes before T0
DAY = 86400
JANE = "Jane Reader <jane@example.org>"
LUIS = "Luis Maintainer <maintainer@backports.example.org>"
SAMPLE = {p.name[:2]: p for p in layout.sample_list()}
D_MSGID = "20260115072958.5518-1-marek.nowak@example.com"
A_COVER = "20260112081402.4127-1-asa.lindqvist@example.org"


class Env:
    def __init__(self, tmp_path, **commands):
        rules = config.load(config.DEMO_RULES, base_dir=tmp_path)
        self.rules = dataclasses.replace(
            rules, commands=rules.commands.model_copy(update=commands))
        self.state = State(tmp_path / "state" / "bpbot.sqlite")
        self.taken: set[str] = set()
        self.count = 0

    def send(self, body: str, subject: str = "commands", frm: str = JANE, extra: str = "",
             msgid: str | None = None) -> str:
        self.count += 1
        msgid = msgid or f"cmd-{self.count}@example.org"
        raw = (f"From: {frm}\nTo: {BOT}\nSubject: {subject}\nMessage-ID: <{msgid}>\n"
               f"Date: Mon, 19 Jan 2026 10:00:00 +0100\n{extra}"
               f"Content-Type: text/plain; charset=utf-8\n\n{body}").encode()
        self.spool(raw)
        return msgid

    def spool(self, raw: bytes) -> None:
        spool.spool(self.state, "test", [raw], bot_address=BOT, loop_id=self.rules.loop_id)

    def run(self, at: float = T0, dnsfunc=None) -> int:
        return command_runner.process_pending(self.state, self.rules, clock=lambda: at,
                                              dnsfunc=dnsfunc)

    def take(self, n: int) -> list[EmailMessage]:
        rows = [r for r in self.state.query("SELECT key, raw FROM outbox ORDER BY id")
                if r["key"] not in self.taken]
        assert len(rows) == n, [r["key"] for r in rows]
        self.taken.update(r["key"] for r in rows)
        return [email.message_from_bytes(bytes(r["raw"]), policy=email.policy.default)
                for r in rows]

    def leftovers(self) -> list[str]:
        return [r["key"] for r in self.state.query("SELECT key FROM outbox")
                if r["key"] not in self.taken]


@pytest.fixture
def env(tmp_path, request):
    made: list[Env] = []

    def make(**commands) -> Env:
        made.append(Env(tmp_path / str(len(made)), **commands))
        return made[-1]

    yield make
    for e in made:
        assert e.leftovers() == [], "replies nobody checked"


def body(msg: EmailMessage) -> str:
    return msg.get_content()


def said(msg: EmailMessage) -> str:
    """The body with its wrapping undone, for looking up sentences."""
    return " ".join(body(msg).split())


def token_of(msg: EmailMessage) -> str:
    match = re.search(r"^    confirm ([0-9a-f]{20})$", body(msg), re.M)
    assert match, body(msg)
    assert match.group(1) not in msg["Subject"]  # a Subject shows in archives and summaries
    return match.group(1)


def confirm(e: Env, request: EmailMessage, frm: str = JANE, at: float = T0) -> EmailMessage:
    """Answer a confirmation request the usual way: reply, quoting it."""
    e.send("Yes, please.\n\n> " + body(request).replace("\n", "\n> "),
           subject=f"Re: {request['Subject']}", frm=frm,
           extra=f"In-Reply-To: {request['Message-ID']}\n")
    e.run(at)
    [reply] = e.take(1)
    return reply


# --- subscriptions and tokens ---------------------------------------------


def test_subscribe_confirm_unsubscribe(env):
    e = env()
    mid = e.send("Hi bot,\n\nsubscribe compat/*\n\nThanks\n")
    assert e.run() == 1
    [request] = e.take(1)
    assert request["To"] == JANE and request["In-Reply-To"] == f"<{mid}>"
    assert request["Auto-Submitted"] == "auto-replied" and request["X-Loop"] == BOT
    assert request["X-bpbot-Commands"] == "done=1, ignored=0, unknown=0"
    assert "Confirmation needed to subscribe jane@example.org" in said(request)
    assert e.state.query("SELECT * FROM subscriptions") == []  # nothing before the confirmation

    done = confirm(e, request)
    assert "Subscribed jane@example.org to reports on series touching compat/*." in said(done)
    assert [(r["address"], r["glob"]) for r in e.state.query("SELECT * FROM subscriptions")] == \
        [("jane@example.org", "compat/*")]

    e.send("subscribe compat/*\n")
    e.run()
    [again] = e.take(1)
    assert "already subscribed" in said(again) and "ignored=1" in again["X-bpbot-Commands"]

    e.send("unsubscribe\n")
    e.run()
    done = confirm(e, e.take(1)[0])
    assert "Unsubscribed jane@example.org from reports on series touching compat/*." in said(done)
    assert e.state.query("SELECT * FROM subscriptions") == []


def test_one_token_covers_every_action_of_a_mail(env):
    e = env()
    e.send("subscribe compat/*\nsubscribe backport-include/*\n")
    e.run()
    done = confirm(e, e.take(1)[0])
    assert body(done).count("Subscribed") == 2


@pytest.mark.parametrize(("case", "answer"), [
    ("wrong-token", "No confirmation is waiting for token ffffffffffffffffffff"),
    ("expired", "expired on 2026-01-12"),
    ("just-in-time", "Subscribed jane@example.org to every report."),
    ("used-twice", "was already used on"),
    ("other-address", "was mailed to another address"),
    ("not-a-token", "'yes' is not a token"),
])
def test_confirmation_problems(env, case: str, answer: str):
    e = env()
    e.send("subscribe\n")
    e.run(T0)
    token = token_of(e.take(1)[0])
    at, frm, line = T0 + 60, JANE, f"confirm {token}"
    if case == "wrong-token":
        line = "confirm ffffffffffffffffffff"
    elif case == "expired":
        at = T0 + 3 * DAY + 1
    elif case == "just-in-time":
        at = T0 + 3 * DAY - 1
    elif case == "other-address":
        frm = "Mallory <mallory@example.net>"
    elif case == "not-a-token":
        line = "confirm yes"
    elif case == "used-twice":
        e.send(line)
        e.run(at)
        e.take(1)
    e.send(line + "\n", frm=frm)
    e.run(at)
    [reply] = e.take(1)
    assert answer in said(reply)
    subscribed = e.state.query("SELECT address FROM subscriptions")
    assert subscribed == ([{"address": "jane@example.org"}]
                          if case in ("just-in-time", "used-twice") else [])


def test_unknown_lines_get_a_hint_and_over_the_limit_are_ignored(env):
    e = env(max_lines=2)
    e.send("subscibe compat/*\nhelp\nstatus queue\n")
    e.run()
    [reply] = e.take(1)
    text = body(reply)
    assert 'Unknown command "subscibe"; did you mean "subscribe"?' in text
    assert "Not read: at most 2 command lines are read per mail" in text
    assert reply["X-bpbot-Commands"] == "done=1, ignored=1, unknown=1"
    assert text.index("Done:") < text.index("Ignored:") < text.index("Unknown:")


# --- silence ---------------------------------------------------------------


def test_bounces_auto_replies_and_loops_are_never_answered(env):
    e = env()
    e.spool(SAMPLE["12"].read_bytes().replace(b"To: ", b"X-Was-To: ", 1))  # a bounce
    e.send("help\n", subject="Out of office", extra="Auto-Submitted: auto-replied\n")
    e.send("help\n", extra="Precedence: bulk\n")
    e.send("help\n", frm="Mail Delivery Subsystem <MAILER-DAEMON@example.net>")
    e.send("help\n", frm="kernel test robot <lkp@intel.com>")
    e.send("help\n", extra=f"X-Loop: {BOT}\n")
    e.send("help\n", frm="backports@vger.kernel.org")
    assert e.run() == 0
    e.take(0)
    outcomes = {r["outcome"] for r in e.state.query("SELECT outcome FROM command_mails")}
    assert outcomes == {"silent"}


def test_a_reply_without_commands_is_silent_a_new_mail_gets_help(env):
    e = env()
    e.send("Thanks for the report, v2 is coming.\n", subject="Re: [PATCH] x",
           extra="In-Reply-To: <bpbot-1@backports.example.org>\n")
    assert e.run() == 0
    e.send("Hello, how does this work?\n", subject="question")
    assert e.run() == 1
    [reply] = e.take(1)
    assert "found no command in your mail" in said(reply)
    assert "  subscribe [path-glob]" in body(reply)


def test_restart_never_answers_twice(env, tmp_path):
    e = env()
    e.send("help\n")
    assert e.run() == 1
    e.state = State(e.state.path)  # a restart: a new connection on the same database
    assert e.run() == 0
    assert len(e.take(1)) == 1


# --- rate limits -----------------------------------------------------------


def test_per_sender_limit_one_notice_then_silence_until_the_hour_passed(env):
    e = env(per_sender_per_hour=2)
    for i in range(4):
        e.send("help\n")
        e.run(T0 + i * 60)
    replies = e.take(3)
    assert [m["X-bpbot-Commands"] is not None for m in replies] == [True, True, False]
    assert "this is the only notice" in said(replies[2])
    assert "2026-01-10 00:06 UTC" in said(replies[2])  # the first reply + 1 hour
    e.send("help\n", frm="Other Person <other@example.org>")  # others are not affected
    e.run(T0 + 300)
    e.take(1)
    e.send("help\n")
    e.run(T0 + 3601)
    e.take(1)
    outcomes = [r["outcome"] for r in e.state.query(
        "SELECT outcome FROM command_mails WHERE sender = 'jane@example.org' ORDER BY rowid")]
    assert outcomes == ["answered", "answered", "notice", "rate-limited", "answered"]


def test_overall_limit_makes_known_senders_wait_and_drops_strangers(env):
    e = env(overall_per_hour=2)
    with e.state.tx() as db:
        for who in ("a", "b", "c"):
            subscriptions.add(db, f"{who}@example.org", "*", T0)
    e.send("help\n", frm="d <d@example.org>")  # a stranger, first in line
    for who in ("a", "b", "c"):
        e.send("help\n", frm=f"{who} <{who}@example.org>")
    assert e.run(T0) == 2
    assert [m["To"] for m in e.take(2)] == ["a <a@example.org>", "b <b@example.org>"]
    assert e.run(T0 + 60) == 0  # still within the hour: the third subscriber's mail waits
    assert e.run(T0 + 3601) == 1
    assert [m["To"] for m in e.take(1)] == ["c <c@example.org>"]
    [dropped] = e.state.query("SELECT outcome, reason FROM command_mails WHERE sender ="
                              " 'd@example.org'")
    assert dropped["outcome"] == "dropped" and "overall limit of 2" in dropped["reason"]


# --- status and retest -----------------------------------------------------


def _with_series(e: Env, names=("09",), state: str = "done") -> None:
    series.configure_b4(e.rules.bot_name, BOT)
    for n in names:
        e.spool(SAMPLE[n].read_bytes())
    tracker.assemble(e.state, e.rules)
    with e.state.tx() as db:
        db.conn.execute("UPDATE versions SET state = ?, verdict = 'not-applied'", (state,))


def test_status_by_message_id_words_queue_and_thread(env):
    e = env()
    _with_series(e, ("09", "01", "02", "03", "04"))
    with e.state.tx() as db:
        db.conn.execute("UPDATE versions SET state = 'ready', verdict = '' WHERE reply_to = ?",
                        (A_COVER,))
    e.send(f"status <{D_MSGID}>\nstatus timer_shutdown\nstatus queue\nstatus <nope@x>\n")
    e.send("status\n", subject="Re: [PATCH] backports: add timer_shutdown_sync()",
           extra=f"In-Reply-To: <{D_MSGID}>\n")
    e.run()
    by_id, in_thread = e.take(2)
    text = body(by_id)
    assert text.count('"backports: add timer_shutdown_sync()" from marek.nowak@example.com:') == 2
    assert re.search(r"^    v1  done +not-applied", text, re.M)
    assert "Queue: 0 running, 1 waiting to be tested, 0 waiting for missing patches." in \
        said(by_id)
    assert "ready     v1  backports: add the minidrv RSSI histogram" in text
    assert "No series with a mail <nope@x> is known" in text
    assert by_id["X-bpbot-Commands"] == "done=3, ignored=1, unknown=0"
    assert '"backports: add timer_shutdown_sync()"' in said(in_thread)


def test_retest_from_a_stranger_is_refused(env):
    e = env()
    _with_series(e)
    e.send(f"retest <{D_MSGID}>\n")
    e.run()
    [reply] = e.take(1)
    assert "retest is for the maintainers named in the bot's rules" in said(reply)
    assert e.state.one("SELECT state FROM versions")["state"] == "done"


def test_retest_from_a_maintainer_needs_a_confirmation(env):
    e = env()
    _with_series(e)
    e.send("retest full\n", subject="Re: [PATCH] backports: add timer_shutdown_sync()", frm=LUIS,
           extra=f"In-Reply-To: <{D_MSGID}>\n")
    e.run()
    [request] = e.take(1)
    assert "Confirmation needed to retest v1" in said(request)
    assert e.state.one("SELECT state FROM versions")["state"] == "done"
    done = confirm(e, request, frm=LUIS)
    assert "Queued a retest of v1" in said(done)
    v = e.state.one("SELECT state, force_full, state_reason FROM versions")
    assert (v["state"], v["force_full"]) == ("ready", 1)
    assert v["state_reason"] == "retest asked by maintainer@backports.example.org"
    [r] = e.state.query("SELECT requested_by, full_matrix, auth FROM retests")
    assert r == {"requested_by": "maintainer@backports.example.org", "full_matrix": 1,
                 "auth": "confirmed"}


def test_retest_of_an_incomplete_series_is_ignored(env):
    e = env()
    _with_series(e, ("10",), state="incomplete")
    e.send("retest <20260116133005.30411-1-lena.okafor@example.org>\n", frm=LUIS)
    e.run()
    [reply] = e.take(1)
    assert "is incomplete (got 1 of 3)" in said(reply)


# --- DKIM ------------------------------------------------------------------


def _prime(rng: random.Random, bits: int) -> int:
    """A random prime (Miller-Rabin, 40 rounds)."""
    while True:
        n = rng.getrandbits(bits) | (1 << (bits - 1)) | 1
        d, r = n - 1, 0
        while d % 2 == 0:
            d, r = d // 2, r + 1
        for _ in range(40):
            x = pow(rng.randrange(2, n - 1), d, n)
            if x in (1, n - 1):
                continue
            for _ in range(r - 1):
                x = pow(x, 2, n)
                if x == n - 1:
                    break
            else:
                break
        else:
            return n


def _der(tag: int, body: bytes) -> bytes:
    size = len(body).to_bytes((len(body).bit_length() + 7) // 8 or 1, "big")
    return bytes([tag]) + (bytes([len(body)]) if len(body) < 128 else
                           bytes([0x80 | len(size)]) + size) + body


def _ints(*values: int) -> bytes:
    return _der(0x30, b"".join(_der(0x02, v.to_bytes(v.bit_length() // 8 + 1, "big"))
                               for v in values))


@pytest.fixture(scope="module")
def dkim_key():
    """A fixed RSA key made here (no openssl needed) as PEM, and its public half as
    the DKIM TXT records of two domains."""
    rng = random.Random(4)
    e = 65537
    while True:
        p, q = _prime(rng, 512), _prime(rng, 512)
        if p != q and (p - 1) % e and (q - 1) % e:
            break
    n, d = p * q, pow(e, -1, (p - 1) * (q - 1))
    private = _ints(0, n, e, d, p, q, d % (p - 1), d % (q - 1), pow(q, -1, p))
    pem = b"-----BEGIN RSA PRIVATE KEY-----\n" + base64.encodebytes(private) + \
        b"-----END RSA PRIVATE KEY-----\n"
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(_ints(n, e))
    return pem, {b"sel._domainkey.backports.example.org.": record,
                 b"sel._domainkey.elsewhere.example.net.": record}


SIGNED = (b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"in-reply-to", b"references")


def _signed(raw: bytes, key: bytes, domain: bytes = b"backports.example.org",
            headers: tuple[bytes, ...] = SIGNED) -> bytes:
    raw = raw.replace(b"\n", b"\r\n")
    return dkim.sign(raw, b"sel", domain, key, include_headers=list(headers)) + raw


def _retest_mail(msgid: str) -> bytes:
    return (f"From: {LUIS}\nTo: {BOT}\nSubject: please test D again\nMessage-ID: <{msgid}>\n"
            f"Date: {DATE_T0}\n\nretest <{D_MSGID}>\n").encode()


@pytest.mark.parametrize(("case", "queued", "answer"), [
    ("signed", True, "Queued a retest of v1"),
    ("tampered", False, "(d=backports.example.org) does not verify: body hash mismatch"),
    ("unsigned", False, "no DKIM-Signature header"),
    ("other-domain", False, "is not of the From domain"),
    ("no-dns-record", False, "does not verify"),
])
def test_retest_with_dkim(env, dkim_key, case: str, queued: bool, answer: str):
    key, records = dkim_key
    e = env(require_dkim=True)
    _with_series(e)
    raw = _retest_mail(f"dkim-{case}@backports.example.org")
    if case in ("signed", "tampered", "no-dns-record"):
        raw = _signed(raw, key)
    elif case == "other-domain":
        raw = _signed(raw, key, b"elsewhere.example.net")
    if case == "tampered":
        raw = raw.replace(b"retest <", b"retest  <")
    lookups: list[bytes] = []

    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        lookups.append(name)
        return None if case == "no-dns-record" else records.get(name)

    e.spool(raw)
    e.run(dnsfunc=dns)
    [reply] = e.take(1)
    assert answer in said(reply)
    assert (e.state.one("SELECT state FROM versions")["state"] == "ready") == queued
    assert bool(lookups) == (case not in ("unsigned", "other-domain"))  # others': no DNS
    if queued:
        assert e.state.one("SELECT auth FROM retests")["auth"] == "dkim"
        assert "confirm" not in reply["Subject"]


def test_sub_address_commands_when_the_rules_allow_them(env):
    for enabled, replies in ((True, 1), (False, 0)):
        e = env(subaddress=enabled)
        raw = (f"From: {JANE}\nTo: bpbot+subscribe@backports.example.org\nSubject: hi\n"
               "Message-ID: <sub-1@example.org>\n\nplease\n").encode()
        e.spool(raw)  # classify() files it as "other": it is not the bot's own address
        assert e.state.one("SELECT kind FROM messages")["kind"] == "other"
        assert e.run() == replies
        if enabled:
            [request] = e.take(1)
            assert request["Reply-To"] == \
                f"bpbot+confirm+{token_of(request)}@backports.example.org"
        e.spool(raw.replace(b"sub-1", b"sub-2"))  # handled once: the first is not seen again
        assert e.run() == replies
        e.take(replies)


def test_the_demos_answer_to_a_confirmation_request_confirms(env):
    """`bpbot demo` answers the request the way a reader would (bot/demo/commands.py)."""
    e = env()
    e.send("subscribe backport-include/*\n", frm=demo_commands.READER)
    e.run()
    [request] = e.take(1)
    e.spool(demo_commands.confirmation(BOT, request))
    e.run()
    [done] = e.take(1)
    assert "Subscribed rafael.oliveira@example.net" in said(done)
