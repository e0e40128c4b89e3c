"""Tracker: turns spooled mail into series versions in state.

Threads touched by new mail are re-assembled with b4; a complete version
becomes ``ready``, an incomplete one ``waiting`` until its grace period ends
(then ``incomplete`` and answered), and a newer version supersedes an older
one not yet tested.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from . import classify as cls
from . import outbox, report, series
from .config import Rules
from .state import State, dumps, loads, now

log = logging.getLogger(__name__)
KINDS_SQL = ",".join(f"'{k}'" for k in cls.SERIES_KINDS)
OPEN_STATES = ("waiting", "ready")


def assemble(state: State, rules: Rules, one_thread: bool = False) -> int:
    """Re-assemble every thread with unassembled mail; returns versions touched.

    ``one_thread`` treats all mail as one thread: for ``bpbot check`` on
    ``git format-patch`` output, whose files carry no threading headers.
    """
    fresh = state.query(f"SELECT msgid FROM messages WHERE assembled = 0 AND kind IN ({KINDS_SQL})")
    if not fresh:
        _mark_rest(state)
        return 0
    since = now() - rules.window_days * 86400
    links = [(r["msgid"], r["in_reply_to"], loads(r["refs"], []))
             for r in state.query(f"SELECT msgid, in_reply_to, refs FROM messages WHERE kind IN"
                                  f" ({KINDS_SQL}) AND (received_at >= ? OR assembled = 0)",
                                  (since,))]
    roots = series.thread_roots(links)
    if one_thread and roots:
        first = min(roots.values())
        roots = {m: first for m in roots}
    members: dict[str, list[str]] = defaultdict(list)
    for msgid, root in roots.items():
        members[root].append(msgid)
    touched = {roots[r["msgid"]] for r in fresh if r["msgid"] in roots}
    count = 0
    for root in sorted(touched):
        ids = members[root]
        raws = [(r["msgid"], bytes(r["raw"])) for r in state.query(
            f"SELECT msgid, raw FROM messages WHERE msgid IN ({','.join('?' * len(ids))})"
            " ORDER BY received_at, msgid", ids)]
        versions = series.assemble_thread(raws, root)
        with state.tx() as db:
            for version in versions:
                _upsert(db, version)
                count += 1
            db.conn.execute(f"UPDATE messages SET assembled = 1 WHERE msgid IN"
                            f" ({','.join('?' * len(ids))})", ids)
    _mark_rest(state)
    _supersede(state)
    return count


def _mark_rest(state: State) -> None:
    with state.tx() as db:
        db.conn.execute(f"UPDATE messages SET assembled = 1 WHERE assembled = 0"
                        f" AND kind NOT IN ({KINDS_SQL})")


def _upsert(db, v: series.Version) -> None:
    stamp = now()
    row = db.conn.execute("SELECT id FROM series WHERE key = ?", (v.key,)).fetchone()
    if row is None:
        series_id = db.conn.execute(
            "INSERT INTO series (key, subject, author_name, author_addr, first_seen)"
            " VALUES (?,?,?,?,?)", (v.key, v.subject, v.author_name, v.author_addr, stamp)).lastrowid
    else:
        series_id = row[0]
    if v.problem:
        new_state, reason = "untestable", v.problem
    elif v.complete:
        new_state, reason = "ready", ""
    else:
        new_state, reason = "waiting", f"missing {', '.join(map(str, v.missing))} of {v.expected}"
    old = db.conn.execute("SELECT id, state, fingerprint FROM versions WHERE series_id = ? AND"
                          " revision = ?", (series_id, v.revision)).fetchone()
    fields = dict(subject=v.subject, expected=v.expected, present=dumps(v.present),
                  complete=int(v.complete), has_cover=int(v.has_cover), reply_to=v.reply_to,
                  thread_root=v.thread_root, msgids=dumps(v.msgids), base_commit=v.base_commit,
                  tags=dumps(v.tags), trailers=v.trailers, fingerprint=v.fingerprint,
                  am_mbox=v.am_mbox, updated_at=stamp)
    if old is None:
        fields.update(series_id=series_id, revision=v.revision, state=new_state,
                      state_reason=reason, first_seen=stamp)
        cols = ",".join(fields)
        db.conn.execute(f"INSERT INTO versions ({cols}) VALUES ({','.join('?' * len(fields))})",
                        list(fields.values()))
        log.info("series v%d %r: %s %s", v.revision, v.subject, new_state, reason)
        return
    version_id, old_state, old_fp = old
    # A tested (or running) version keeps its state unless it became complete
    # after being answered as incomplete; a resend of identical patches
    # (same fingerprint) does not trigger another test.
    if old_state in ("waiting", "ready") or (old_state == "incomplete" and v.complete) or \
            (old_state == "untestable" and new_state == "ready"):
        fields.update(state=new_state, state_reason=reason)
    elif old_state == "done" and v.complete and v.fingerprint != old_fp:
        fields.update(state="ready", state_reason="patches changed since the last test")
    sets = ",".join(f"{k} = ?" for k in fields)
    db.conn.execute(f"UPDATE versions SET {sets} WHERE id = ?", [*fields.values(), version_id])


def _supersede(state: State) -> None:
    with state.tx() as db:
        db.conn.execute(
            "UPDATE versions SET state = 'superseded', state_reason = 'v' || ("
            " SELECT MAX(v2.revision) FROM versions v2 WHERE v2.series_id = versions.series_id)"
            " || ' arrived before this version was tested', updated_at = ?"
            " WHERE state IN ('waiting', 'ready') AND revision < ("
            " SELECT MAX(v2.revision) FROM versions v2 WHERE v2.series_id = versions.series_id)",
            (now(),))


def target_for(state: State, version: dict) -> report.Target:
    """What a reply to ``version`` answers: its cover letter, else patch 1."""
    msg = state.one("SELECT subject, refs FROM messages WHERE msgid = ?", (version["reply_to"],))
    ser = state.one("SELECT * FROM series WHERE id = ?", (version["series_id"],))
    return report.Target(
        msgid=version["reply_to"], subject=msg["subject"] if msg else version["subject"],
        references=loads(msg["refs"], []) if msg else [], author_name=ser["author_name"],
        author_addr=ser["author_addr"], series_subject=version["subject"],
        revision=version["revision"], expected=version["expected"],
        present=loads(version["present"], []),
    )


def expire(state: State, rules: Rules, at: float | None = None) -> int:
    """Answer versions still incomplete after the grace period; returns how many."""
    at = now() if at is None else at
    due = state.query("SELECT * FROM versions WHERE state = 'waiting' AND first_seen <= ?",
                      (at - rules.grace_seconds,))
    for version in due:
        target = target_for(state, version)
        body = report.render_incomplete(rules, target, _human(rules.grace_seconds))
        msg, rcpts = report.compose(rules, target, body, f"incomplete:{version['id']}",
                                    "NOT TESTED (incomplete)")
        with state.tx() as db:
            db.conn.execute("UPDATE versions SET state='incomplete', verdict='incomplete',"
                            " updated_at=? WHERE id=? AND state='waiting'", (now(), version["id"]))
            outbox.queue(db, f"incomplete:{version['id']}", "incomplete", msg, rcpts,
                         version_id=version["id"])
    for version in state.query("SELECT * FROM versions WHERE state = 'untestable'"
                               " AND verdict = ''"):
        target = target_for(state, version)
        body = report.render_untestable(rules, target, version["state_reason"])
        msg, rcpts = report.compose(rules, target, body, f"untestable:{version['id']}",
                                    "NOT TESTED (untestable)")
        with state.tx() as db:
            db.conn.execute("UPDATE versions SET verdict='untestable', updated_at=? WHERE id=?",
                            (now(), version["id"]))
            outbox.queue(db, f"untestable:{version['id']}", "untestable", msg, rcpts,
                         version_id=version["id"])
    return len(due)


def _human(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"
