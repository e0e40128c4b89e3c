"""The outbox against a real SMTP server: queued once, retried, sent once."""

from __future__ import annotations

import asyncio
import dataclasses
from email.message import EmailMessage

from bot.demo import layout
from bot.reply import outbox
from bot.state import State


def _rules(tmp_path, smtp):
    rules = layout.prepare(tmp_path / "work", with_list=False)
    return dataclasses.replace(rules, smtp=dataclasses.replace(rules.smtp, host=smtp.host,
                                                               port=smtp.port, timeout=5))


def _msg(n: int) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = f"Re: [PATCH] test {n}"
    msg["From"] = "bpbot@backports.example.org"
    msg["To"] = "dev@example.org"
    msg["Message-ID"] = f"<reply-{n}@backports.example.org>"
    msg.set_content("body\n")
    return msg


def test_same_key_is_queued_once(tmp_path):
    state = State(tmp_path / "s.sqlite")
    with state.tx() as db:
        assert outbox.queue(db, "report:1:1", "report", _msg(1), ["dev@example.org"])
        assert not outbox.queue(db, "report:1:1", "report", _msg(1), ["dev@example.org"])
    assert len(outbox.pending(state)) == 1


def test_failed_send_stays_queued_and_is_retried(tmp_path, smtp_server):
    rules = _rules(tmp_path, smtp_server)
    state = State(rules.state_dir / "s.sqlite")
    with state.tx() as db:
        outbox.queue(db, "report:1:1", "report", _msg(1), ["dev@example.org"])
        outbox.queue(db, "report:2:2", "report", _msg(2), ["dev@example.org"])
    smtp_server.stop()
    assert asyncio.run(outbox.send_pending(state, rules)) == 0
    [row] = state.query("SELECT * FROM outbox WHERE attempts = 1")
    assert row["state"] == "queued" and row["last_error"] and row["next_attempt_at"] > 0
    assert outbox.pending(state) == [state.one("SELECT * FROM outbox WHERE key='report:2:2'")]
    smtp_server.start()
    assert asyncio.run(outbox.send_pending(state, rules)) == 1  # the one not backing off
    assert len(outbox.pending(state, at=row["next_attempt_at"] + 1)) == 1
    with state.tx() as db:
        db.conn.execute("UPDATE outbox SET next_attempt_at = 0")
    assert asyncio.run(outbox.send_pending(state, rules)) == 1
    assert asyncio.run(outbox.send_pending(state, rules)) == 0
    got = smtp_server.take(2, timeout=10)
    assert sorted(m.message["Message-ID"] for m in got) == [
        "<reply-1@backports.example.org>", "<reply-2@backports.example.org>"]


def test_permanent_refusal_is_given_up_not_retried_forever(tmp_path, smtp_server):
    rules = _rules(tmp_path, smtp_server)
    state = State(rules.state_dir / "s.sqlite")
    with state.tx() as db:
        outbox.queue(db, "report:1:1", "report", _msg(1), ["dev@example.org"])
        outbox.queue(db, "report:2:2", "report", _msg(2), ["dev@example.org"])
    smtp_server.failure = "554 5.6.0 message refused"
    assert asyncio.run(outbox.send_pending(state, rules)) == 0
    rows = state.query("SELECT key, state, last_error FROM outbox ORDER BY id")
    assert [r["state"] for r in rows] == ["failed", "failed"]
    assert "554" in rows[0]["last_error"]
    assert outbox.pending(state, at=10**12) == []
