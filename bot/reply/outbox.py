"""Outbox: replies are queued in the transaction that ends their run, then sent.

A sent reply is recorded before the next one is attempted; a failed send
stays queued and is retried with backoff. States: queued -> sending -> sent;
a reply left 'sending' by a crash is settled by its copy from the list
(``settle_interrupted``), so a crash mid-send does not answer twice.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from email.message import EmailMessage

import sqlite_utils

from bot.config.rules import Rules
from bot.state import State, dumps, loads, now

log = logging.getLogger(__name__)
BACKOFF = [30, 60, 120, 300, 600, 1800, 3600]


def queue(db: sqlite_utils.Database, key: str, kind: str, msg: EmailMessage,
          recipients: list[str], version_id: int | None = None, run_id: int | None = None) -> bool:
    """Queue inside the caller's transaction. False when ``key`` was queued before,
    or when there is nobody to send it to (logged)."""
    if not recipients:
        log.warning("reply %s has no recipient: not queued", key)
        return False
    cur = db.conn.execute(
        "INSERT OR IGNORE INTO outbox (key, kind, version_id, run_id, msgid, recipients, raw, state,"
        " next_attempt_at, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (key, kind, version_id, run_id, str(msg["Message-ID"]).strip("<>"), dumps(recipients),
         msg.as_bytes(), "queued", 0.0, now()))
    return cur.rowcount == 1


def pending(state: State, at: float | None = None) -> list[dict]:
    return state.query("SELECT * FROM outbox WHERE state = 'queued' AND next_attempt_at <= ?"
                       " ORDER BY id", (now() if at is None else at,))


async def send_pending(state: State, rules: Rules) -> int:
    """Send what is due; returns how many went out."""
    # Here, not at module level: queueing a reply (all `bpbot check` does) needs
    # neither aiosmtplib nor the asyncio it brings.
    import aiosmtplib
    settle_interrupted(state, rules)
    sent = 0
    for row in pending(state):
        # 'sending' is committed first: if the bot dies before it learns the
        # server's answer, the next start knows this reply may be out.
        with state.tx() as db:
            db.conn.execute("UPDATE outbox SET state='sending', next_attempt_at=? WHERE id=?",
                            (now() + echo_wait(rules), row["id"]))
        try:
            await _send(rules, row, on_accepted=lambda row=row: _mark_sent(state, row))
        except (aiosmtplib.SMTPException, OSError) as exc:
            attempts = row["attempts"] + 1
            if _permanent(exc) or attempts >= MAX_ATTEMPTS:
                # A 5xx answer (refused recipient, too large) will not change: stop
                # retrying; the reply stays in the outbox as 'failed' with the reason.
                log.error("reply %s given up after %d attempt(s): %s", row["key"], attempts, exc)
                with state.tx() as db:
                    db.conn.execute("UPDATE outbox SET state='failed', attempts=?, last_error=?"
                                    " WHERE id=?", (attempts, str(exc), row["id"]))
                continue
            delay = BACKOFF[min(attempts - 1, len(BACKOFF) - 1)]
            log.warning("send of reply %s failed (attempt %d), retry in %ds: %s",
                        row["key"], attempts, delay, exc)
            with state.tx() as db:
                db.conn.execute("UPDATE outbox SET state='queued', attempts=?, next_attempt_at=?,"
                                " last_error=? WHERE id=?",
                                (attempts, now() + delay, str(exc), row["id"]))
            break  # the server is likely down; the rest waits for the next round
        sent += 1
        log.info("sent %s reply %s to %s", row["kind"], row["key"], ", ".join(loads(row["recipients"])))
    return sent


MAX_ATTEMPTS = 30  # with BACKOFF: about a day of retries


def _permanent(exc: Exception) -> bool:
    import aiosmtplib  # loaded by send_pending, whose errors these are
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return all(getattr(r, "code", 0) >= 500 for r in exc.recipients)
    code = getattr(exc, "code", 0)
    return isinstance(code, int) and 500 <= code < 600


def echo_wait(rules: Rules) -> float:
    """How long a reply cut off mid-send waits for its copy from the list."""
    return 3 * rules.source.poll_seconds + 30


def settle_interrupted(state: State, rules: Rules) -> None:
    """Replies whose send a crash cut off ('sending'): did the server take them?

    A reply with the list on Cc comes back through the list: once its copy is
    in the spool it was sent, and is never sent again. Without a copy after
    ``echo_wait`` (or with no list to echo it) it is queued again: sent at
    least once, at worst twice.
    """
    for row in state.query("SELECT * FROM outbox WHERE state = 'sending'"):
        via_list = rules.reply_cc_list and rules.list_address.lower() in \
            [r.lower() for r in loads(row["recipients"], [])]
        # Only a reply that went through the list can come back from it (a
        # subscriber's copy shares the report's Message-ID but not the list).
        if via_list and state.one("SELECT 1 AS x FROM messages WHERE msgid = ?", (row["msgid"],)):
            log.info("reply %s: its copy came back from the list, so it was sent", row["key"])
            with state.tx() as db:
                db.conn.execute("UPDATE outbox SET state='sent', sent_at=?, attempts=attempts+1,"
                                " last_error='' WHERE id=? AND state='sending'", (now(), row["id"]))
            continue
        if via_list and row["next_attempt_at"] > now():
            continue  # still waiting for the list's copy
        log.warning("reply %s was cut off mid-send by a crash and is sent again "
                    "(it may arrive twice)", row["key"])
        with state.tx() as db:
            db.conn.execute("UPDATE outbox SET state='queued', next_attempt_at=0, last_error="
                            "'interrupted mid-send' WHERE id=? AND state='sending'", (row["id"],))


def _mark_sent(state: State, row: dict) -> None:
    with state.tx() as db:
        db.conn.execute("UPDATE outbox SET state='sent', sent_at=?, attempts=attempts+1"
                        " WHERE id=?", (now(), row["id"]))
        state.meta_set(db, "last_sent_at", str(now()))


async def _send(rules: Rules, row: dict, on_accepted: Callable[[], None]) -> None:
    """Send one reply; ``on_accepted`` runs as soon as the server has taken it.

    The server owns the mail once it answers 250 to the data. ``on_accepted``
    commits 'sent' right then, before QUIT (which may be slow, or fail): the
    window in which a crash leaves the bot unsure is one SQLite commit, and
    ``settle_interrupted`` resolves it from the list's copy of the reply.
    """
    import aiosmtplib  # loaded by send_pending, this function's caller
    smtp = rules.smtp
    password = None
    if smtp.user and smtp.password_file is not None:
        password = smtp.password_file.read_text(encoding="utf-8").strip()
    client = aiosmtplib.SMTP(hostname=smtp.host, port=smtp.port, username=smtp.user or None,
                             password=password, start_tls=smtp.starttls, timeout=smtp.timeout)
    await client.connect()
    try:
        await client.sendmail(rules.bot_address, loads(row["recipients"]), bytes(row["raw"]))
        on_accepted()
    finally:
        with contextlib.suppress(Exception):  # after the 250, QUIT is a courtesy
            await client.quit()
