"""Reply headers for any author (issue 11 item 9): display names with [ ],
commas, quotes, parentheses or non-ASCII are quoted or encoded, and the
envelope holds exactly the intended addresses. An address that needs SMTPUTF8
or is malformed (a fuzzed From that parses to '.com') gets no mail: the
report goes to the list only, or nowhere, and the reason is logged."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import logging

import pytest
import test_commands_runner
from test_commands_runner import BOT

from bot import model
from bot.config import rules as config
from bot.reply import compose, outbox, report
from bot.state import State

RULES = config.load(config.DEMO_RULES, base_dir="/nonexistent")
LIST = "backports@vger.kernel.org"
env = test_commands_runner.env


def _target(name: str, addr: str) -> model.Target:
    return model.Target(msgid="p1@example.org", subject="[PATCH] x", references=[],
                        author_name=name, author_addr=addr, series_subject="x",
                        revision=1, expected=1, present=[1])


WELL_FORMED = [
    ("ascii", "Jane Doe", "jane@example.org", "Jane Doe <jane@example.org>"),
    ("utf8-name", "Jörg Müller", "joerg@example.de", "Jörg Müller <joerg@example.de>"),
    ("brackets", "Jane Doe [ext]", "jane@example.org", '"Jane Doe [ext]" <jane@example.org>'),
    ("comma", "Doe, Jane", "jane@example.org", '"Doe, Jane" <jane@example.org>'),
    ("quotes", 'Jane "JD" Doe', "jane@example.org", '"Jane \\"JD\\" Doe" <jane@example.org>'),
    ("parentheses", "Jane (home) Doe", "jane@example.org",
     '"Jane (home) Doe" <jane@example.org>'),
    ("utf8-and-specials", "Müller, Jörg [ext] (home)", "joerg@example.de",
     '"Müller, Jörg [ext] (home)" <joerg@example.de>'),
    ("angle-and-at", "jane@example.org <x>", "jane@example.org",
     '"jane@example.org <x>" <jane@example.org>'),
    ("header-injection", "Jane\r\nBcc: evil@example.net", "jane@example.org",
     '"Jane  Bcc: evil@example.net" <jane@example.org>'),
    ("no-name", "", "jane@example.org", "jane@example.org"),
]


@pytest.mark.parametrize(("name", "addr", "to"), [c[1:] for c in WELL_FORMED],
                         ids=[c[0] for c in WELL_FORMED])
def test_display_names_are_quoted_and_the_envelope_is_exact(name, addr, to):
    msg, rcpts = report.reply(RULES, _target(name, addr), "body", "report:1:1", "PASS")
    assert rcpts == [addr, LIST]
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert parsed["To"] == to
    assert [a.addr_spec for a in parsed["To"].addresses] == [addr]
    assert parsed["Cc"] == LIST
    assert "Bcc" not in parsed
    assert all(r.isascii() for r in rcpts)


NOT_MAILED = [
    ("utf8-local-part", "Jörg", "jörg@example.de", "SMTPUTF8"),
    ("fuzzed-dot-com", "x", ".com", "malformed"),
    ("two-ats", "x", "a@b@example.com", "malformed"),
    ("no-domain", "x", "jane@", "malformed"),
    ("no-local-part", "x", "@example.com", "malformed"),
    ("bare-host", "x", "jane@localhost", "malformed"),
    ("domain-literal", "x", "jane@[127.0.0.1]", "malformed"),
    ("space", "x", "ja ne@example.com", "malformed"),
    ("angle-brackets", "x", "<jane@example.com>", "malformed"),
    ("no-author", "", "", "no address"),
]


@pytest.mark.parametrize(("name", "addr", "why"), [c[1:] for c in NOT_MAILED],
                         ids=[c[0] for c in NOT_MAILED])
def test_an_address_that_cannot_be_mailed_leaves_the_list_only(name, addr, why, caplog):
    with caplog.at_level(logging.WARNING, logger="bot.reply.report"):
        msg, rcpts = report.reply(RULES, _target(name, addr), "body", "report:1:1", "PASS")
    assert rcpts == [LIST]
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert parsed["To"] == LIST and "Cc" not in parsed
    assert why in caplog.text and "not mailed to the author" in caplog.text


def test_without_the_list_a_malformed_author_gets_nothing_queued(tmp_path, caplog):
    rules = dataclasses.replace(RULES, reply_cc_list=False)
    with caplog.at_level(logging.WARNING):
        msg, rcpts = report.reply(rules, _target("x", ".com"), "body", "report:1:1", "PASS")
        state = State(tmp_path / "s.sqlite")
        with state.tx() as db:
            assert not outbox.queue(db, "report:1:1", "report", msg, rcpts)
    assert rcpts == []
    assert state.query("SELECT * FROM outbox") == []
    assert "has nobody to go to" in caplog.text and "no recipient: not queued" in caplog.text


@pytest.mark.parametrize(("addr", "ok"), [("jane@example.org", True), (".com", False),
                                          ("jane@", False), ("jörg@example.de", False)])
def test_mailbox(addr, ok):
    box, why = compose.mailbox("Jane", addr)
    assert (box is not None, why == "") == (ok, ok)


def test_a_command_mail_from_a_malformed_address_is_not_answered(env):
    e = env()
    e.send("help\n", frm="Fuzz <fuzz@localhost>")
    assert e.run() == 0
    e.take(0)
    row = e.state.one("SELECT outcome, reason FROM command_mails")
    assert row["outcome"] == "silent" and "malformed" in row["reason"], row
    assert BOT not in row["reason"]
