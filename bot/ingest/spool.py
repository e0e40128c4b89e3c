"""Spool: raw mail into state, classified, before anything else happens.

The source's cursor is saved in the same transaction as the messages it
covers, so a crash between the two cannot skip or repeat mail.

With ``lists`` (the daemon's sources; ``bpbot check`` reads local files and
passes none), a patch or cover letter that did not come through the list is
kept as kind ``direct`` and never tested: its report would Cc the list about
mail the list never saw. With the rules' strict_tags, a patch tagged for
another tree is kept as kind ``not-for-tree`` (bot/ingest/tags.py).

When the same Message-ID arrives twice with other bytes, the first copy is
used, unless it did not come through the list and the second carries the
list's List-Id: then the list's copy is used and the other is kept in
quarantine.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from hashlib import sha256

from bot.ingest import classify as cls
from bot.ingest import mail, tags
from bot.ingest.lists import DIRECT, ListRule
from bot.state import State, dumps, now

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
          loop_id: str, max_bytes: int = 0, cursor: Cursor | None = None,
          lists: ListRule | None = None,
          tree_tags: frozenset[str] | None = None) -> SpoolResult:
    """Classify and store ``raws``; ``tree_tags``: the subject tags this tree takes
    when the rules have strict_tags (bot/ingest/tags.py), None for any."""
    result = SpoolResult()
    rows = []
    for raw in raws:
        c = cls.classify(raw, bot_address, loop_id, max_bytes, lists)
        c = tags.not_for_tree(c, tree_tags)
        if lists is not None:
            c = not_through_list(c, lists)
        rows.append((raw, c))
    stamp = now()
    with state.tx() as db:
        for raw, c in rows:
            old = db.conn.execute("SELECT raw FROM messages WHERE msgid = ?", (c.msgid,)).fetchone()
            if old is not None:
                if bytes(old[0]) == raw:
                    result.duplicates += 1
                    continue
                if lists is not None and _prefer_list_copy(db, c.msgid, bytes(old[0]), raw,
                                                           lists):
                    result.conflicting += 1
                    old = None
            if old is not None:
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


def not_through_list(c: cls.Classified, lists: ListRule) -> cls.Classified:
    """A patch or cover letter mailed to the bot, not through the list: kept, not tested."""
    if c.kind not in (cls.PATCH, cls.COVER) or c.through_list:
        return c
    return dataclasses.replace(
        c, kind=DIRECT, reason=f"{c.kind} mailed to the bot directly, not through the list "
        f"({lists.address} is neither in To/Cc nor its List-Id); not tested")


def _prefer_list_copy(db, msgid: str, old: bytes, new: bytes, lists: ListRule) -> bool:
    """When the first copy did not come through the list and the new one carries
    the list's List-Id, move the first aside (quarantine, nothing lost) so the
    list's copy takes the Message-ID. A first copy that came through the list
    stays: a List-Id is easily forged, and a later copy must not swap the
    patch of a series already seen on the list."""
    if lists.came_through_list(_headers(old)) or not lists.carries_our_list_id(_headers(new)):
        return False
    aside = f"{msgid}#conflict-{sha256(old).hexdigest()[:16]}"
    if db.conn.execute("SELECT 1 FROM messages WHERE msgid = ?", (aside,)).fetchone():
        db.conn.execute("DELETE FROM messages WHERE msgid = ?", (msgid,))  # kept aside already
    else:
        db.conn.execute(
            "UPDATE messages SET msgid = ?, kind = ?, reason = ? WHERE msgid = ?",
            (aside, cls.QUARANTINE, f"same Message-ID as the copy that came through the list "
             f"({msgid}) with different content; the list's copy is used", msgid))
    log.warning("%s: the copy from the list replaces an earlier one without its List-Id "
                "(kept as %s)", msgid, aside)
    return True


def _headers(raw: bytes):
    return BytesHeaderParser(policy=mail.FAST).parsebytes(raw)


def get_cursor(state: State, source: str) -> Cursor | None:
    row = state.one("SELECT * FROM cursors WHERE source = ?", (source,))
    if row is None:
        return None
    return Cursor(source, row["uidvalidity"], row["last_uid"])
