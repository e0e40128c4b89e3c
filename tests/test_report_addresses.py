"""Reply headers for any author: non-ASCII names are encoded; an address that
needs SMTPUTF8 is left out (the list still gets the reply) instead of crashing."""

from __future__ import annotations

import email
import email.policy

import pytest

from bot import model
from bot.config import rules as config
from bot.reply import report

RULES = config.load(config.DEMO_RULES, base_dir="/nonexistent")


def _target(name: str, addr: str) -> model.Target:
    return model.Target(msgid="p1@example.org", subject="[PATCH] x", references=[],
                         author_name=name, author_addr=addr, series_subject="x",
                         revision=1, expected=1, present=[1])


@pytest.mark.parametrize(("name", "addr", "to"), [
    ("Jane Doe", "jane@example.org", "Jane Doe <jane@example.org>"),
    ("Jörg Müller", "joerg@example.de", "Jörg Müller <joerg@example.de>"),
    ("Jörg", "jörg@example.de", "backports@vger.kernel.org"),
    ("", "", "backports@vger.kernel.org"),
], ids=["ascii", "utf8-name", "utf8-local-part", "no-author"])
def test_reply_headers_for_any_author(name, addr, to):
    msg, rcpts = report.compose(RULES, _target(name, addr), ["body"], "report:1:1", "PASS")
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert parsed["To"] == to
    assert "backports@vger.kernel.org" in rcpts
    assert all(r.isascii() for r in rcpts)
