"""Thread roots kept in state (table ``thread_ids``, migration 007).

Each series message (patch, cover letter, reply) joins a thread when it is
assembled: its id, its In-Reply-To, its References and, for a numbered patch
sent without them, the made-up parent that joins the parts of its series
(``unthreaded_parent``) all get the same root, the smallest id of the set, as
``assembly.thread_roots`` computes over a whole mailbox. New mail that links
two threads merges them (the larger root's ids move to the smaller one).
So a daemon pass costs in proportion to its new mail, not to the window.
"""

from __future__ import annotations

import logging

from bot.ingest import classify as cls
from bot.ingest import patchmail
from bot.series import assembly
from bot.state import State, loads

log = logging.getLogger(__name__)
KINDS_SQL = ",".join(f"'{k}'" for k in cls.SERIES_KINDS)
BUILT = "thread_ids_built"  # meta key: mail spooled before migration 007 is threaded


def unthreaded_parent(row) -> str:
    """A numbered patch or cover letter sent without In-Reply-To/References
    joins the other parts of its series (same sender, version and length)
    under a made-up parent, so they are assembled together, in number order."""
    if row["kind"] == cls.REPLY or row["in_reply_to"] or loads(row["refs"], []):
        return ""
    n = patchmail.numbering(row["subject"] or "")
    if not n.numbered or n.expected < 2:
        return ""
    return f"unthreaded.v{n.revision}.{n.expected}.{row['from_addr']}@bpbot.invalid"


def linked_ids(row) -> list[str]:
    """The message's own id first, then every id that puts it in a thread."""
    parent = row["in_reply_to"] or unthreaded_parent(row)
    ids = [row["msgid"], *([parent] if parent else []), *loads(row["refs"], [])]
    return list(dict.fromkeys(i for i in ids if i))


def join(state: State, rows: list[dict], since: float) -> dict[str, str]:
    """Thread ``rows`` (new series messages: msgid, kind, in_reply_to, refs,
    subject, from_addr) into the stored threads; returns msgid -> root for them.
    The first call on a state spooled before migration 007 threads its window."""
    if not state.meta_get(BUILT):
        _build(state, since)
    out: dict[str, str] = {}
    with state.tx() as db:
        for row in rows:
            ids = linked_ids(row)
            out[row["msgid"]] = _link(db, ids)
    # A later row may have merged an earlier row's thread into another.
    return _roots(state, list(out)) if len(rows) > 1 else out


def _link(db, ids: list[str]) -> str:
    marks = ",".join("?" * len(ids))
    known = dict(db.conn.execute(f"SELECT msgid, root FROM thread_ids WHERE msgid IN ({marks})",
                                 ids).fetchall())
    roots = set(known.values())
    root = min(roots | set(ids))
    for old in roots - {root}:  # this message links two threads: one root for both
        db.conn.execute("UPDATE thread_ids SET root = ? WHERE root = ?", (root, old))
    db.conn.executemany("INSERT OR REPLACE INTO thread_ids (msgid, root) VALUES (?, ?)",
                        [(i, root) for i in ids if known.get(i) != root])
    return root


def _roots(state: State, msgids: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for start in range(0, len(msgids), 500):
        chunk = msgids[start:start + 500]
        out.update((r["msgid"], r["root"]) for r in state.query(
            f"SELECT msgid, root FROM thread_ids WHERE msgid IN ({','.join('?' * len(chunk))})",
            chunk))
    return out


def members(state: State, roots: set[str], since: float) -> dict[str, list[str]]:
    """root -> its series messages received since ``since`` (or not yet assembled),
    in arrival order: what assembly reads of each thread."""
    out: dict[str, list[str]] = {root: [] for root in roots}
    ordered = sorted(roots)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start:start + 500]
        for r in state.query(
                f"SELECT t.root, m.msgid FROM thread_ids t JOIN messages m ON m.msgid = t.msgid"
                f" WHERE t.root IN ({','.join('?' * len(chunk))}) AND m.kind IN ({KINDS_SQL})"
                " AND (m.received_at >= ? OR m.assembled = 0) ORDER BY m.received_at, m.rowid",
                [*chunk, since]):
            out[r["root"]].append(r["msgid"])
    return out


def _build(state: State, since: float) -> None:
    """Thread the assembled mail of the window once (a state from before 007)."""
    rows = state.query(f"SELECT msgid, kind, in_reply_to, refs, subject, from_addr FROM messages"
                       f" WHERE kind IN ({KINDS_SQL}) AND assembled = 1 AND received_at >= ?",
                       (since,))
    links = [(r["msgid"], "", linked_ids(r)[1:]) for r in rows]
    roots = assembly.thread_roots(links)
    every = {i: roots[r["msgid"]] for r, (_, _, ids) in zip(rows, links, strict=True)
             for i in ids}
    every.update(roots)
    with state.tx() as db:
        db.conn.executemany("INSERT OR REPLACE INTO thread_ids (msgid, root) VALUES (?, ?)",
                            every.items())
        state.meta_set(db, BUILT, "1")
    if rows:
        log.info("threaded %d message(s) spooled before thread roots were stored", len(rows))
