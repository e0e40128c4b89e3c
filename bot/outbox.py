"""Outbox: replies are queued in the transaction that ends their run, then sent.

A sent reply is recorded before the next one is attempted; a failed send
stays queued and is retried with backoff.
"""

from __future__ import annotations

import logging
from email.message import EmailMessage

import aiosmtplib
import sqlite_utils

from .config import Rules
from .state import State, dumps, loads, now

log = logging.getLogger(__name__)
BACKOFF = [30, 60, 120, 300, 600, 1800, 3600]


def queue(db: sqlite_utils.Database, key: str, kind: str, msg: EmailMessage,
          recipients: list[str], version_id: int | None = None, run_id: int | None = None) -> bool:
    """Queue inside the caller's transaction. False when ``key`` was queued before."""
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
    sent = 0
    for row in pending(state):
        try:
            await _send(rules, row)
        except (aiosmtplib.SMTPException, OSError) as exc:
            attempts = row["attempts"] + 1
            delay = BACKOFF[min(attempts - 1, len(BACKOFF) - 1)]
            log.warning("send of reply %s failed (attempt %d), retry in %ds: %s",
                        row["key"], attempts, delay, exc)
            with state.tx() as db:
                db.conn.execute("UPDATE outbox SET attempts=?, next_attempt_at=?, last_error=?"
                                " WHERE id=?", (attempts, now() + delay, str(exc), row["id"]))
            break  # the server is likely down; the rest waits for the next round
        with state.tx() as db:
            db.conn.execute("UPDATE outbox SET state='sent', sent_at=?, attempts=attempts+1"
                            " WHERE id=?", (now(), row["id"]))
            state.meta_set(db, "last_sent_at", str(now()))
        sent += 1
        log.info("sent %s reply %s to %s", row["kind"], row["key"], ", ".join(loads(row["recipients"])))
    return sent


async def _send(rules: Rules, row: dict) -> None:
    smtp = rules.smtp
    password = None
    if smtp.user and smtp.password_file is not None:
        password = smtp.password_file.read_text(encoding="utf-8").strip()
    await aiosmtplib.send(
        bytes(row["raw"]), sender=rules.bot_address, recipients=loads(row["recipients"]),
        hostname=smtp.host, port=smtp.port, username=smtp.user or None, password=password,
        start_tls=smtp.starttls, timeout=smtp.timeout,
    )
