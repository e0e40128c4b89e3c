"""commands.parse() over a table of real-looking mails: which lines are
commands, which are unknown (with a hint), and which mails get silence.

parse() is a pure function of the bytes; nothing here touches state.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.commands import parse as commands
from bot.commands import runner as command_runner
from bot.commands.parse import msgid_argument
from bot.config import rules as config
from bot.ingest import classify
from bot.ingest.lists import ListRule
from bot.reply.subscriptions import glob_matches

BOT = "bpbot@backports.example.org"
LIST = "backports@vger.kernel.org"
LISTS = ListRule(LIST, "backports.vger.kernel.org", ("*@vger.kernel.org", "*@lists.*"))


def mail(body: str, subject: str = "commands for the bot", *, frm: str = "Jane Reader <jane@example.org>",
         to: str = BOT, extra: str = "", ctype: str = "text/plain; charset=UTF-8",
         cte: str = "8bit", msgid: str = "<cmd-1@example.org>") -> bytes:
    head = (f"From: {frm}\nTo: {to}\nSubject: {subject}\nDate: Mon, 19 Jan 2026 10:00:00 +0100\n"
            f"Message-ID: {msgid}\n{extra}MIME-Version: 1.0\nContent-Type: {ctype}\n"
            f"Content-Transfer-Encoding: {cte}\n\n")
    return (head + body).encode()


PATCH_REPLY = mail(
    subject="Re: [PATCH 1/2] headers: add kvcalloc()",
    to=f"Tomasz Wierzba <tomasz.wierzba@example.com>, {BOT}",
    extra=("Cc: backports@vger.kernel.org\n"
           "In-Reply-To: <20260114100233.9174-1-tomasz.wierzba@example.com>\n"
           "References: <20260114100233.9174-1-tomasz.wierzba@example.com>\n"),
    body="""On Wed, Jan 14, 2026 at 11:02:33AM +0100, Tomasz Wierzba wrote:
> kvcalloc() is used by minidrv's ring buffer since 5.10.
>
> diff --git a/backport-include/linux/mm.h b/backport-include/linux/mm.h
> @@ -0,0 +1,12 @@
> +#ifndef __BACKPORT_MM_H

The 3.10 failure in the bot's reply was a stale header on the build
host, fixed now. Let's have it again on everything:

retest full

> +static inline void *kvcalloc(size_t n, size_t size, gfp_t flags)

Thanks,
Luis
""")

ALTERNATIVE = mail(
    ctype='multipart/alternative; boundary="alt"', cte="7bit",
    body="""--alt
Content-Type: text/plain; charset=UTF-8

status queue

--alt
Content-Type: text/html; charset=UTF-8

<html><body><p>status queue</p><p>retest &lt;x@y&gt;</p></body></html>
--alt--
""")

HTML_ONLY = mail(
    ctype="text/html; charset=UTF-8",
    body="""<html><head><style>p { color: red }</style></head><body>
<div dir="ltr">subscribe compat/*<br></div>
<div class="gmail_quote">On Mon, Jan 19, 2026 bpbot wrote:<br>
<blockquote class="gmail_quote">help<br>unsubscribe all</blockquote></div>
</body></html>
""")

BASE64 = mail(cte="base64", body=base64.encodebytes(
    "unsubscribe all\n\nGrüße,\nJürgen\n".encode()).decode())

TOP_POSTED = mail(
    subject="Re: help", extra="In-Reply-To: <bpbot-1@backports.example.org>\n",
    body="""subscribe backport-include/*

On Mon, Jan 19, 2026 at 09:00:00AM +0000, bpbot wrote:
> Hi Jane,
>
> > help
>   help
>       this list of commands
""")

OUTLOOK = mail(
    subject="RE: confirm 0123456789abcdef0123",
    body="""Yes please.

-----Original Message-----
From: bpbot <bpbot@backports.example.org>
Subject: confirm 0123456789abcdef0123

subscribe backport-include/*
""")

BOUNCE = mail(
    frm="Mail Delivery System <MAILER-DAEMON@mail.example.net>", subject="Undelivered Mail",
    ctype='multipart/report; report-type=delivery-status; boundary="b"', cte="7bit",
    extra="Auto-Submitted: auto-replied\n",
    body="""--b
Content-Type: text/plain

This is the mail system at host mail.example.net.

help
subscribe

--b
Content-Type: message/delivery-status

Action: failed
Status: 5.1.1

--b--
""")


@dataclass(frozen=True)
class Want:
    lines: tuple[str, ...] = ()  # "name args" of known commands, "?word->hint" of unknown ones
    over: int = 0
    silent: str = ""  # substring of the silence reason


def seen(parsed: commands.ParsedMail) -> tuple[str, ...]:
    return tuple(" ".join((c.name, *c.args)) if c.name else f"?{c.word}->{c.hint}"
                 for c in parsed.lines)


CASES = [
    ("plain", mail("help\nstatus queue\n"), Want(("help", "status queue"))),
    ("subject-is-a-line", mail("", subject="subscribe compat/*"), Want(("subscribe compat/*",))),
    ("subject-and-body-same-line-once", mail("help\n", subject="help"), Want(("help",))),
    ("prose-is-skipped", mail("Hi bot,\n\ncould you\nsubscribe backport-include/*\nplease?\n"
                              "Thanks!\n"), Want(("subscribe backport-include/*",))),
    ("quoted-never-counts", mail("> help\n>subscribe\n | status\nThanks\n"), Want()),
    ("indented-never-counts", mail("  help\n\tsubscribe\n"), Want()),
    ("top-posted", TOP_POSTED, Want(("subscribe backport-include/*",))),
    ("re-subject-only-confirm-counts", mail("thanks!\n", subject="Re: help",
                                            extra="In-Reply-To: <x@y>\n"), Want()),
    ("re-confirm-subject", mail("", subject="Re: Re: confirm 0123456789abcdef0123"),
     Want(("confirm 0123456789abcdef0123",))),
    ("outlook-original-not-read", OUTLOOK, Want(("confirm 0123456789abcdef0123",))),
    ("html-alternative-reads-plain", ALTERNATIVE, Want(("status queue",))),
    ("html-only-blockquote-is-quoted", HTML_ONLY, Want(("subscribe compat/*",))),
    ("base64-body", BASE64, Want(("unsubscribe all",))),
    ("reply-to-a-patch", PATCH_REPLY, Want(("retest full",))),
    ("typo-did-you-mean", mail("subscibe compat/*\nstatsu\n"),
     Want(("?subscibe->subscribe", "?statsu->status"))),
    ("typo-in-long-prose-is-prose", mail("subscibe to this list would be nice for me too\n"),
     Want()),
    ("case-and-colon", mail("HELP\nStatus: queue\n"), Want(("help", "status queue"))),
    ("signature-ends-the-text", mail("help\n-- \nretest <a@b>\n"), Want(("help",))),
    ("over-the-limit", mail("help\nstatus\nstatus queue\nsubscribe\nunsubscribe\nstatus x\n"
                            "subscribe compat/*\n"),
     Want(("help", "status", "status queue", "subscribe", "unsubscribe"), over=2)),
    ("bounce-is-silent", BOUNCE, Want(silent="bounce")),
    ("mailer-daemon", mail("help\n", frm="MAILER-DAEMON@example.net"), Want(silent="bounce")),
    ("empty-return-path", mail("help\n", extra="Return-Path: <>\n"), Want(silent="Return-Path")),
    ("vacation", mail("help\n", subject="Out of office",
                      extra="Auto-Submitted: auto-replied\n"), Want(silent="Auto-Submitted")),
    ("auto-submitted-no-is-human", mail("help\n", extra="Auto-Submitted: no\n"), Want(("help",))),
    ("precedence-bulk", mail("help\n", extra="Precedence: bulk\n"), Want(silent="Precedence")),
    ("precedence-junk", mail("help\n", extra="Precedence: junk\n"), Want(silent="Precedence")),
    ("precedence-list", mail("help\n", extra="Precedence: list\n"), Want(silent="Precedence")),
    ("own-mail", mail("help\n", frm=f"bpbot <{BOT}>"), Want(silent="bot itself")),
    ("own-sub-address", mail("help\n", frm="bpbot+confirm@backports.example.org"),
     Want(silent="bot itself")),
    ("our-x-loop", mail("help\n", extra=f"X-Loop: {BOT}\n"), Want(silent="X-Loop")),
    ("from-the-list", mail("help\n", frm=LIST), Want(silent="list address")),
    ("other-bot-0day", mail("help\n", frm="kernel test robot <lkp@intel.com>"),
     Want(silent="robot")),
    ("other-bot-noreply", mail("help\n", frm="GitLab <noreply@gitlab.example.com>"),
     Want(silent="robot")),
    ("other-bot-x-autoreply", mail("help\n", extra="X-Autoreply: yes\n"),
     Want(silent="X-Autoreply")),
    ("other-bpbot-report", mail("help\n", extra="X-bpbot-Verdict: PASS\n"),
     Want(silent="X-bpbot-Verdict")),
    ("exchange-auto-reply", mail("help\n", extra="X-Auto-Response-Suppress: All\n"),
     Want(silent="X-Auto-Response-Suppress")),
    ("no-from", mail("help\n", frm=""), Want(silent="From")),
    ("duplicate-in-reply-to", mail("help\n", extra="In-Reply-To: <a@x>\nIn-Reply-To: <b@x>\n"),
     Want(silent="more than one In-Reply-To header")),
    ("duplicate-from", mail("help\n", extra="From: Luis <maintainer@backports.example.org>\n"),
     Want(silent="more than one From header")),
    ("quoted-token-in-a-reply", mail("OK\n\n> Hi,\n>\n>     confirm 0123456789abcdef0123\n",
                                     subject="Re: subscribe", extra="In-Reply-To: <r@x>\n"),
     Want(("confirm 0123456789abcdef0123",))),
    ("quoted-token-outside-a-reply", mail("> Hi,\n>     confirm 0123456789abcdef0123\n"), Want()),
    ("long-line-is-cut", mail("status " + "w" * 5000 + "\n"),
     Want(("status " + "w" * 193,))),  # the arguments come from the cut line
    ("garbage", b"\x00\xff\xfe not a mail", Want(silent="From")),
]


@pytest.mark.parametrize(("raw", "want"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_parse(raw: bytes, want: Want):
    parsed = commands.parse(raw, BOT, BOT, max_lines=5, lists=LISTS)
    if want.silent:
        assert want.silent in parsed.silent
        assert parsed.lines == ()
        return
    assert parsed.silent == ""
    assert seen(parsed) == want.lines
    assert len(parsed.over_limit) == want.over


def test_sub_addresses_only_when_enabled():
    raw = mail("", subject="hello", to="bpbot+confirm+0123456789abcdef0123@backports.example.org")
    assert seen(commands.parse(raw, BOT, BOT, subaddress=True)) == ("confirm 0123456789abcdef0123",)
    assert seen(commands.parse(raw, BOT, BOT, subaddress=False)) == ()
    other = mail("", subject="hello", to="bpbot+help@elsewhere.example.org")
    assert seen(commands.parse(other, BOT, BOT, subaddress=True)) == ()


def test_reply_threading_fields():
    parsed = commands.parse(PATCH_REPLY, BOT, BOT)
    assert parsed.is_reply
    assert parsed.thread == ["20260114100233.9174-1-tomasz.wierzba@example.com"]
    assert parsed.from_addr == "jane@example.org" and parsed.from_name == "Jane Reader"


CHECKS = [
    ("subscribe", (), ""), ("subscribe", ("compat/*",), ""),
    ("subscribe", ("a", "b"), "one path glob"), ("subscribe", ("backport-include/linux/*.h",), ""),
    ("subscribe", ("$(x)",), "not a path glob"), ("unsubscribe", ("a", "b"), "one path glob"),
    ("confirm", (), "exactly one token"), ("confirm", ("0123456789abcdef0123",), ""),
    ("confirm", ("yes",), "not a token"), ("retest", ("<a@b>",), ""),
    ("retest", ("<a@b>", "full"), ""), ("retest", ("full",), ""),
    ("retest", ("soon",), "Message-ID"), ("retest", ("<a@b>", "<c@d>"), "Message-ID"),
]


@pytest.mark.parametrize(("name", "args", "problem"), CHECKS)
def test_argument_checks(name: str, args: tuple[str, ...], problem: str):
    got = commands.BY_NAME[name].check(args)
    assert (problem in got) if problem else got == ""


@pytest.mark.parametrize(("value", "msgid"), [
    ("<a.b@example.org>", "a.b@example.org"), ("a.b@example.org", "a.b@example.org"),
    ("https://lore.kernel.org/backports/20260114100233.9174-1-t@example.com/",
     "20260114100233.9174-1-t@example.com"),
    ("full", ""), ("https://example.org/", ""),
])
def test_msgid_argument(value: str, msgid: str):
    assert msgid_argument(value) == msgid


@pytest.mark.parametrize(("glob", "paths", "hits"), [
    ("*", ["a/b.c"], ["a/b.c"]),
    ("*", [], ["*"]),  # a report on a series without a readable diff still goes to '*'
    ("compat/*", ["compat/backport-5.10.c", "copy-list"], ["compat/backport-5.10.c"]),
    ("backport-include/*", ["backport-include/linux/mm.h"], ["backport-include/linux/mm.h"]),
    ("backport-include", ["backport-include/linux/mm.h"], ["backport-include/linux/mm.h"]),
    ("backport-include/linux/*.h", ["backport-include/net/x.h"], []),
    ("patches/", ["patches/0001-x/a.patch", "devel/x"], ["patches/0001-x/a.patch"]),
    ("*.cocci", ["patches/a/b.cocci"], ["patches/a/b.cocci"]),
])
def test_glob_matches(glob: str, paths: list[str], hits: list[str]):
    assert glob_matches(glob, paths) == hits


def test_help_lists_every_command_with_an_example():
    lines = commands.help_lines(BOT, 5)
    text = "\n".join(lines)
    for c in commands.REGISTRY:
        assert f"  {c.name}" in text and c.example in text
    assert all(len(line) <= 76 for line in lines[2:])


def test_reply_text_never_reads_as_a_command():
    """Every line of a reply that would read as a command is indented, so a
    reply quoted without '>' (Outlook) cannot send commands back."""
    lines = ["subscribe jane@example.org to every report", "> help", "  help", "Hi,",
             "retest is for the maintainers"]
    assert command_runner.defuse(lines) == [
        "  subscribe jane@example.org to every report", "> help", "  help", "Hi,",
        "  retest is for the maintainers"]


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=2000))
def test_parse_never_raises(raw: bytes):
    parsed = commands.parse(raw, BOT, BOT)
    assert parsed.silent or isinstance(parsed.lines, tuple)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=500))
def test_parse_any_body_text(body: str):
    parsed = commands.parse(mail(body), BOT, BOT, max_lines=5)
    assert len(parsed.lines) <= 5
    assert all(c.name in commands.BY_NAME or c.hint for c in parsed.lines)


# --- the [commands] table of the rules --------------------------------------

RULES = config.RULES_DIR
DEMO = (RULES / "demo.toml").read_text(encoding="utf-8")


def test_shipped_rules_have_a_commands_table(tmp_path):
    demo = config.load(RULES / "demo.toml", base_dir=tmp_path).commands
    assert (demo.max_lines, demo.per_sender_per_hour, demo.overall_per_hour, demo.token_days) == \
        (5, 10, 60, 3)
    assert demo.maintainers == ("maintainer@backports.example.org",)
    assert not demo.subaddress and not demo.require_dkim
    assert config.load(RULES / "backports.toml").commands.require_dkim


def test_commands_table_is_optional(tmp_path):
    text = DEMO.split("\n[commands]\n")[0]
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    assert config.load(path, base_dir=tmp_path).commands == config.CommandRules()


@pytest.mark.parametrize(("old", "new", "key", "problem"), [
    ("max_lines = 5", "max_lines = 0", "commands.max_lines", "positive"),
    ("token_days = 3", 'token_days = "3d"', "commands.token_days", "must be int"),
    ('maintainers = ["maintainer@backports.example.org"]', 'maintainers = "luis@example.org"',
     "commands.maintainers", "must be list"),
    ('maintainers = ["maintainer@backports.example.org"]', 'maintainers = ["luis"]',
     "commands.maintainers", "entry 0 must be a mail address"),
    ("require_dkim = false", 'require_dkim = "yes"', "commands.require_dkim", "must be bool"),
    ("subaddress = false", "subaddress = false\nsub_address = true", "commands.sub_address",
     "unknown key"),
    ("per_sender_per_hour = 10", "per_sender_per_hour = -1", "commands.per_sender_per_hour",
     "positive"),
    ('list_addresses = ["*@vger.kernel.org", "*@lists.*"]', 'list_addresses = ["lists.*"]',
     "commands.list_addresses", "entry 0 must be an address pattern"),
])
def test_broken_commands_table_names_the_key(tmp_path, old: str, new: str, key: str,
                                             problem: str):
    assert old in DEMO
    path = tmp_path / "rules.toml"
    path.write_text(DEMO.replace(old, new), encoding="utf-8")
    with pytest.raises(config.ConfigError) as info:
        config.load(path, base_dir=tmp_path)
    assert info.value.key == key and problem in info.value.problem


@pytest.mark.parametrize("raw", [
    mail("help\n", extra="Return-Path: <>\n"),  # null sender, but no bounce
    mail("Your mail could not be delivered.\n", subject="failure notice",
         extra="Return-Path: <>\n"),
    mail("help\n", frm="MAILER-DAEMON@example.net"),
    mail("help\n"),
], ids=["empty-return-path", "empty-return-path-and-failure-subject", "mailer-daemon", "person"])
def test_classify_and_the_commands_share_one_bounce_rule(raw: bytes):
    is_bounce = classify.classify(raw, BOT, BOT).kind == classify.BOUNCE
    parsed = commands.parse(raw, BOT, BOT, lists=LISTS)
    assert is_bounce == parsed.silent.startswith("a bounce"), parsed.silent


@pytest.mark.parametrize(("body", "reply"), [
    ("> " * 24 + "x\n", True),  # nested repeats in a regex took 2^n steps on such a line
    ("subscibx compat\n" * 200_000, False),  # a did-you-mean for each of 200,000 lines
], ids=["quoted-line-redos", "many-prose-lines"])
def test_a_hostile_body_is_read_in_bounded_time(body: str, reply: bool):
    raw = mail(body, extra="In-Reply-To: <r@x>\n" if reply else "")
    started = time.monotonic()
    parsed = commands.parse(raw, BOT, BOT, lists=LISTS)
    assert time.monotonic() - started < 10  # was 25 s and 77 s; now well under 1 s
    assert parsed.silent == ""
