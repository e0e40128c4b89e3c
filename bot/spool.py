"""Spool: raw mail into state, classified, before anything else happens.

The source's cursor is saved in the same transaction as the messages it
covers, so a crash between the two cannot skip or repeat mail.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from hashlib import sha256

from . import classify as cls
from .state import State, dumps, now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cursor:
    source: str
    uidvalidity: int
    last_uid: int


@dataclass
class SpoolResult:
    new: int = 0
    duplicates: int = 0
    conflicting: int = 0  # same Message-ID, different bytes
    quarantined: int = 0


def spool(state: State, source: str, raws: list[bytes], *, bot_address: str,
          loop_id: str, max_bytes: int = 0, cursor: Cursor | None = None) -> SpoolResult:
    result = SpoolResult()
    rows = []
    for raw in raws:
        c = cls.classify(raw, bot_address, loop_id, max_bytes)
        rows.append((raw, c))
    stamp = now()
    with state.tx() as db:
        for raw, c in rows:
            old = db.conn.execute("SELECT raw FROM messages WHERE msgid = ?", (c.msgid,)).fetchone()
            if old is not None:
                if bytes(old[0]) == raw:
                    result.duplicates += 1
                    continue
                # Same Message-ID, other bytes: the first copy is the one used; the
                # other is kept in quarantine under its own id (nothing is lost).
                c = dataclasses.replace(
                    c, kind=cls.QUARANTINE, msgid=f"{c.msgid}#conflict-{sha256(raw).hexdigest()[:16]}",
                    reason=f"same Message-ID as an earlier message ({c.msgid}) with different "
                           "content; the first copy is used")
                if db.conn.execute("SELECT 1 FROM messages WHERE msgid = ?", (c.msgid,)).fetchone():
                    result.duplicates += 1
                    continue
                result.conflicting += 1
            if c.kind == cls.QUARANTINE:
                result.quarantined += 1
                log.warning("quarantined %s: %s", c.msgid, c.reason)
            db.conn.execute(
                "INSERT INTO messages (msgid, raw, size, source, received_at, kind, reason, notes,"
                " subject, from_addr, in_reply_to, refs) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (c.msgid, raw, len(raw), source, stamp, c.kind, c.reason, dumps(list(c.notes)),
                 c.subject, c.from_addr, c.in_reply_to, dumps(list(c.references))),
            )
            result.new += 1
        if cursor is not None:
            db.conn.execute(
                "INSERT OR REPLACE INTO cursors (source, uidvalidity, last_uid, updated_at)"
                " VALUES (?,?,?,?)", (cursor.source, cursor.uidvalidity, cursor.last_uid, stamp))
        state.meta_set(db, "last_ingest_at", str(stamp))
    if result.new:
        log.info("spooled %d new message(s) from %s", result.new, source)
    return result


def get_cursor(state: State, source: str) -> Cursor | None:
    row = state.one("SELECT * FROM cursors WHERE source = ?", (source,))
    if row is None:
        return None
    return Cursor(source, row["uidvalidity"], row["last_uid"])
