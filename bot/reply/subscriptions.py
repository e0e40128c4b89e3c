"""Subscriptions: readers who get a copy of every report on series touching
paths that match their glob ('*' = every report).

A subscription starts and ends only through a confirmed mail command
(``bot/commands/parse.py``). ``queue_copies`` is called by the pipeline inside the
transaction that queues a report, so each subscriber's copy is queued
exactly once with the report (outbox key ``copy:<version>:<run>:<address>``)
and sent through the same outbox.
"""

from __future__ import annotations

import email.utils
import fnmatch
import logging
from email.message import EmailMessage

import sqlite_utils

from bot.config.rules import Rules
from bot.ingest.lists import ListRule
from bot.reply import compose, outbox, render

log = logging.getLogger(__name__)


def has(db: sqlite_utils.Database, address: str, glob: str) -> bool:
    return db.conn.execute("SELECT 1 FROM subscriptions WHERE address = ? AND glob = ?",
                           (address, glob)).fetchone() is not None


def globs(db: sqlite_utils.Database, address: str) -> list[str]:
    return [r[0] for r in db.conn.execute(
        "SELECT glob FROM subscriptions WHERE address = ? ORDER BY id", (address,))]


def add(db: sqlite_utils.Database, address: str, glob: str, at: float, token: str = "") -> bool:
    """False when the address already had this glob."""
    cur = db.conn.execute("INSERT OR IGNORE INTO subscriptions (address, glob, created_at, token)"
                          " VALUES (?,?,?,?)", (address, glob, at, token))
    if cur.rowcount:
        log.info("subscribed %s to %s", address, glob)
    return cur.rowcount == 1


def remove(db: sqlite_utils.Database, address: str, glob: str) -> list[str]:
    """Remove one glob, or every one with 'all'; returns the globs removed."""
    removed = [g for g in globs(db, address) if glob == "all" or g == glob]
    for g in removed:
        db.conn.execute("DELETE FROM subscriptions WHERE address = ? AND glob = ?", (address, g))
        log.info("unsubscribed %s from %s", address, g)
    return removed


def glob_matches(glob: str, paths: list[str]) -> list[str]:
    """The paths a subscription glob covers: fnmatch, or a folder prefix."""
    if glob == "*":
        return list(paths) or ["*"]
    folder = glob.rstrip("/") + "/"
    return [p for p in paths if fnmatch.fnmatchcase(p, glob) or p.startswith(folder)]


def matching(db: sqlite_utils.Database, paths: list[str]) -> dict[str, tuple[str, list[str]]]:
    """address -> (the first glob that matches, the paths it matches)."""
    out: dict[str, tuple[str, list[str]]] = {}
    for address, glob in db.conn.execute("SELECT address, glob FROM subscriptions ORDER BY id"):
        if address in out:
            continue
        hits = glob_matches(glob, paths)
        if hits:
            out[address] = (glob, hits)
    return out


def queue_copies(db: sqlite_utils.Database, rules: Rules, version: dict, msg: EmailMessage,
                 paths: list[str], run_id: int) -> int:
    """Queue a copy of the report ``msg`` for every matching subscriber; returns how many.

    Addresses that get the report anyway (To/Cc), the bot itself and mailing
    lists (subscribed before lists were refused) get no copy.
    """
    already = {a.lower() for _, a in email.utils.getaddresses(
        [str(v) for v in (msg.get_all("To") or []) + (msg.get_all("Cc") or [])])}
    already.add(rules.bot_address)
    queued = 0
    lists = ListRule.of(rules)
    for address, (glob, hits) in matching(db, paths).items():
        if address in already or lists.is_list_address(address):
            continue
        try:
            copy = copy_message(rules, msg, address, glob, hits)
        except ValueError as exc:
            log.warning("no copy of the report on version %d for %r: %s", version["id"],
                        address, exc)
            continue
        key = f"copy:{version['id']}:{run_id}:{address}"
        if outbox.queue(db, key, "copy", copy, [address], version_id=version["id"],
                        run_id=run_id):
            queued += 1
    if queued:
        log.info("queued %d subscriber cop%s of the report on version %d", queued,
                 "y" if queued == 1 else "ies", version["id"])
    return queued


def copy_message(rules: Rules, msg: EmailMessage, address: str, glob: str,
                 hits: list[str]) -> EmailMessage:
    """The report as sent to the thread, addressed to one subscriber, with a footer
    saying why it came and how to stop it (templates/mail/copy_note.txt). The
    Message-ID stays the same, so a subscriber who also reads the list sees it once."""
    to, why = compose.mailbox("", address)
    if to is None:
        raise ValueError(f"subscriber {why}")
    note = render.render("copy_note.txt", glob=glob, hits=hits, bot_address=rules.bot_address)
    return compose.readdress(msg, to, {
        "List-Unsubscribe": f"<mailto:{rules.bot_address}?subject=unsubscribe>",
        "X-bpbot-Copy-For": glob}, note)
