"""Thread roots kept in state (table ``thread_ids``, migration 007).

Each series message (patch, cover letter, reply) joins a thread when it is
assembled: its id, its In-Reply-To and its References all get the same root,
the smallest id of the set, as ``assembly.thread_roots`` computes over a
whole mailbox. New mail that links two threads merges them (the larger
root's ids move to the smaller one). So a daemon pass costs in proportion to
its new mail, not to the window.

A numbered patch or cover letter sent without In-Reply-To/References
(``git send-email --no-thread``) is alone in its thread; such lone mails of
one sender, version and length are one series (``groups``). The root of a
threaded series (its cover letter, or patch 1 without one) has no threading
headers either, but the rest of its series answers it, so it is not alone
and never joins another series.
"""

from __future__ import annotations

import logging

from bot.ingest import classify as cls
from bot.ingest import patchmail
from bot.series import assembly
from bot.state import State, loads

log = logging.getLogger(__name__)
KINDS_SQL = ",".join(f"'{k}'" for k in cls.SERIES_KINDS)
PARTS_SQL = f"'{cls.PATCH}','{cls.COVER}'"
BUILT = "thread_ids_built"  # meta key: mail spooled before migration 007 is threaded
CHUNK = 500                 # ids per IN (...) list
# The queries below join ``thread_ids t CROSS JOIN messages m``: CROSS JOIN
# keeps SQLite's loop order, from the few roots asked for to their messages.
# With a plain JOIN it walked every patch of the window (index on kind) in
# each pass, which made a pass after every poll cost in proportion to the window.


def unthreaded_key(row) -> str:
    """For a numbered patch or cover letter sent without In-Reply-To/References:
    a made-up id naming its sender, version and length; '' for other mail."""
    if row["kind"] not in (cls.PATCH, cls.COVER) or row["in_reply_to"] or \
            loads(row["refs"], []):
        return ""
    n = patchmail.numbering(row["subject"] or "")
    if not n.numbered or n.expected < 2:
        return ""
    return f"unthreaded.v{n.revision}.{n.expected}.{row['from_addr']}@bpbot.invalid"


def linked_ids(row) -> list[str]:
    """The message's own id first, then the ids its threading headers name."""
    ids = [row["msgid"], row["in_reply_to"], *loads(row["refs"], [])]
    return list(dict.fromkeys(i for i in ids if i))


def join(state: State, rows: list[dict], since: float) -> dict[str, str]:
    """Thread ``rows`` (new series messages: msgid, kind, in_reply_to, refs,
    subject, from_addr) into the stored threads; returns msgid -> root for them.
    The first call on a state spooled before migration 007 threads its window."""
    if not state.meta_get(BUILT):
        _build(state, since)
    with state.tx() as db:
        for row in rows:
            _link(db, linked_ids(row), unthreaded_key(row))
    # A later row may have merged an earlier row's thread into another.
    return _lookup(state, [r["msgid"] for r in rows])


def _link(db, ids: list[str], key: str) -> None:
    marks = ",".join("?" * len(ids))
    known = dict(db.conn.execute(f"SELECT msgid, root FROM thread_ids WHERE msgid IN ({marks})",
                                 ids).fetchall())
    roots = set(known.values())
    root = min(roots | set(ids))
    for old in roots - {root}:  # this message links two threads: one root for both
        db.conn.execute("UPDATE thread_ids SET root = ? WHERE root = ?", (root, old))
    db.conn.executemany(
        "INSERT INTO thread_ids (msgid, root, lone_key) VALUES (?, ?, ?) ON CONFLICT (msgid)"
        " DO UPDATE SET root = excluded.root, lone_key = CASE WHEN excluded.lone_key != ''"
        " THEN excluded.lone_key ELSE thread_ids.lone_key END",
        [(i, root, key if n == 0 else "") for n, i in enumerate(ids)])


def _lookup(state: State, msgids: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for start in range(0, len(msgids), CHUNK):
        chunk = msgids[start:start + CHUNK]
        out.update((r["msgid"], r["root"]) for r in state.query(
            f"SELECT msgid, root FROM thread_ids WHERE msgid IN ({','.join('?' * len(chunk))})",
            chunk))
    return out


def groups(state: State, roots: set[str], since: float) -> dict[str, str]:
    """Thread root -> the root it is assembled under: itself, or for a lone
    unthreaded patch its unthreaded key, shared with the other lone parts of
    its series (included, so that the whole series is assembled)."""
    out = {root: root for root in roots}
    keys = set(_lone(state, roots, since).values())
    if not keys:
        return out
    ordered = sorted(keys)
    candidates: set[str] = set()
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start:start + CHUNK]
        candidates.update(r["root"] for r in state.query(
            f"SELECT t.root FROM thread_ids t CROSS JOIN messages m ON m.msgid = t.msgid"
            f" WHERE t.lone_key IN ({','.join('?' * len(chunk))}) AND m.kind IN ({PARTS_SQL})"
            " AND (m.received_at >= ? OR m.assembled = 0)", [*chunk, since]))
    out.update(_lone(state, candidates, since))
    return out


def _lone(state: State, roots: set[str], since: float) -> dict[str, str]:
    """root -> unthreaded key, for the threads whose only patch or cover letter
    (in the window) was sent without threading headers."""
    return {r["root"]: r["key"] for r in _by_root(
        state, roots, since, "SELECT t.root, COUNT(*) AS parts, MAX(t.lone_key) AS key FROM"
        " thread_ids t CROSS JOIN messages m ON m.msgid = t.msgid WHERE t.root IN ({roots})"
        f" AND m.kind IN ({PARTS_SQL}) AND (m.received_at >= ? OR m.assembled = 0)"
        " GROUP BY t.root") if r["parts"] == 1 and r["key"]}


def members(state: State, roots: set[str], since: float) -> dict[str, list[str]]:
    """root -> its series messages received since ``since`` (or not yet assembled),
    in arrival order: what assembly reads of each thread."""
    out: dict[str, list[str]] = {root: [] for root in roots}
    for r in _by_root(state, roots, since,
                      "SELECT t.root, m.msgid FROM thread_ids t CROSS JOIN messages m ON m.msgid = t.msgid"
                      f" WHERE t.root IN ({{roots}}) AND m.kind IN ({KINDS_SQL})"
                      " AND (m.received_at >= ? OR m.assembled = 0) ORDER BY m.received_at, m.rowid"):
        out[r["root"]].append(r["msgid"])
    return out


def _by_root(state: State, roots: set[str], since: float, sql: str):
    """The rows of ``sql`` for ``roots`` (its ``{roots}`` placeholders), asked
    in chunks of CHUNK roots; its one other parameter is ``since``."""
    ordered = sorted(roots)
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start:start + CHUNK]
        yield from state.query(sql.format(roots=",".join("?" * len(chunk))), [*chunk, since])


def _build(state: State, since: float) -> None:
    """Thread the assembled mail of the window once (a state from before 007)."""
    rows = state.query(f"SELECT msgid, kind, in_reply_to, refs, subject, from_addr FROM messages"
                       f" WHERE kind IN ({KINDS_SQL}) AND assembled = 1 AND received_at >= ?",
                       (since,))
    links = [(r["msgid"], "", linked_ids(r)[1:]) for r in rows]
    roots = assembly.thread_roots(links)
    every = {i: (roots[r["msgid"]], "") for r, (_, _, ids) in zip(rows, links, strict=True)
             for i in ids}
    every.update((r["msgid"], (roots[r["msgid"]], unthreaded_key(r))) for r in rows)
    with state.tx() as db:
        db.conn.executemany("INSERT OR REPLACE INTO thread_ids (msgid, root, lone_key)"
                            " VALUES (?, ?, ?)", [(m, *v) for m, v in every.items()])
        state.meta_set(db, BUILT, "1")
    if rows:
        log.info("threaded %d message(s) spooled before thread roots were stored", len(rows))
