"""Tracker: turns spooled mail into series versions in state.

New mail joins the thread roots kept in state (bot/series/threads.py);
threads touched by new mail are re-assembled with b4; a complete version
becomes ``ready``, an incomplete one ``waiting`` until its grace period ends
(then ``incomplete`` and answered), and a newer version supersedes an older
one not yet tested.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from bot import store
from bot.config.rules import Rules
from bot.ingest import classify as cls
from bot.model import VersionState
from bot.series import assembly as series
from bot.series import threads
from bot.state import State, dumps, loads, now

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

log = logging.getLogger(__name__)
KINDS_SQL = ",".join(f"'{k}'" for k in cls.SERIES_KINDS)
OPEN_STATES = ("waiting", "ready")


def assemble(state: State, rules: Rules, one_thread: bool = False) -> int:
    """Re-assemble every thread with unassembled mail; returns versions touched.

    New mail joins the thread roots kept in state (bot/series/threads.py), so
    a pass costs in proportion to its new mail, not to the window.
    ``one_thread`` treats all mail as one thread: for ``bpbot check`` on
    ``git format-patch`` output, whose files carry no threading headers.
    """
    fresh = state.query(f"SELECT msgid, kind, in_reply_to, refs, subject, from_addr FROM messages"
                        f" WHERE assembled = 0 AND kind IN ({KINDS_SQL}) ORDER BY received_at,"
                        " rowid")
    if not fresh:
        _mark_rest(state)
        return 0
    since = now() - rules.window_days * 86400
    roots = threads.join(state, fresh, since)
    grouped = threads.groups(state, set(roots.values()), since)
    members: dict[str, list[str]] = {root: [] for root in grouped.values()}
    for root, ids in threads.members(state, set(grouped), since).items():
        members[grouped[root]] += ids
    roots = {msgid: grouped[root] for msgid, root in roots.items()}
    if one_thread:
        every = sorted({m for ids in members.values() for m in ids})
        first = min(roots.values())
        roots = {m: first for m in roots}
        members = {first: every}
    # Only patches and cover letters change how b4 groups a thread; a reply
    # just joins the thread's list (its trailers are read at test time).
    touched = sorted({roots[r["msgid"]] for r in fresh if r["kind"] != cls.REPLY})
    replied = {roots[r["msgid"]] for r in fresh} - set(touched)
    _note_replies(state, replied, members)
    count = 0
    pool = _pool(rules) if len(touched) >= POOL_MIN_THREADS else None
    try:
        # Chunks keep memory flat however large the mailbox is.
        for start in range(0, len(touched), CHUNK_THREADS):
            jobs = []
            for root in touched[start:start + CHUNK_THREADS]:
                needed = _grouping_ids(state, members[root])
                raws = [(r["msgid"], bytes(r["raw"])) for r in state.query(
                    f"SELECT msgid, raw FROM messages WHERE msgid IN ({','.join('?' * len(needed))})"
                    " ORDER BY received_at, msgid", needed)] if needed else []
                jobs.append((raws, root))
            results = pool.map(_assemble_job, jobs, chunksize=8) if pool else map(_assemble_job, jobs)
            for (raws, root), versions in zip(jobs, results, strict=True):
                count += _store_thread(state, rules, root, members[root], raws, versions)
    finally:
        if pool is not None:
            pool.shutdown()
    _mark_rest(state)
    _supersede(state)
    return count


POOL_MIN_THREADS = 64   # below this, a process pool costs more than it saves
CHUNK_THREADS = 256


def _assemble_job(job: tuple[list[tuple[str, bytes]], str]) -> list[series.Version]:
    raws, root = job
    return series.assemble_thread(raws, root, with_am=False)


def _pool(rules: Rules) -> ProcessPoolExecutor | None:
    """b4 parses ~1 ms a message in Python: big backlogs use every core.
    forkserver, because the daemon has threads and fork would copy their locks."""
    cpus = os.cpu_count() or 1
    if cpus < 2:
        return None
    # Here, not at module level: only a backlog of POOL_MIN_THREADS needs them.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    return ProcessPoolExecutor(max_workers=cpus, mp_context=multiprocessing.get_context("forkserver"),
                               initializer=series.configure_b4,
                               initargs=(rules.bot_name, rules.bot_address))


def _store_thread(state: State, rules: Rules, root: str, ids: list[str],
                  raws: list[tuple[str, bytes]], versions: list[series.Version]) -> int:
    sizes = {msgid: len(raw) for msgid, raw in raws}
    for version in versions:
        version.problem = version.problem or over_limits(rules, version, sizes)
    with state.tx() as db:
        for version in versions:
            _upsert(db, version, ids)
        db.conn.execute(f"UPDATE messages SET assembled = 1 WHERE msgid IN"
                        f" ({','.join('?' * len(ids))})", ids)
    return len(versions)


def over_limits(rules: Rules, v: series.Version, sizes: dict[str, int]) -> str:
    """Why a version is too big to test ([limits] of the rules), or ''."""
    patches = max(v.expected, len(v.present))
    if patches > rules.max_patches:
        return f"the series has {patches} patches; this bot tests at most {rules.max_patches}"
    size = sum(sizes.get(m, 0) for m in v.msgids)
    if rules.max_diff_bytes and size > rules.max_diff_bytes:
        return (f"the series is {size} bytes of mail; this bot tests at most "
                f"{rules.max_diff_bytes} bytes")
    return ""


def _note_replies(state: State, roots: set[str], members: dict[str, list[str]]) -> None:
    with state.tx() as db:
        for root in roots:
            ids = members[root]
            store.set_thread_messages(db, root, ids)
            db.conn.execute(f"UPDATE messages SET assembled = 1 WHERE msgid IN"
                            f" ({','.join('?' * len(ids))})", ids)


def _grouping_ids(state: State, ids: list[str]) -> list[str]:
    """What b4 needs to group a thread into versions: patches, cover letters and
    the messages patches answer (a cover without [PATCH 0/n]). Replies only
    carry trailers; they join at test time, when the am-ready mbox is made."""
    rows = state.query(f"SELECT msgid, kind, in_reply_to FROM messages WHERE msgid IN"
                       f" ({','.join('?' * len(ids))})", ids)
    parents = {r["in_reply_to"] for r in rows if r["kind"] == cls.PATCH}
    return [r["msgid"] for r in rows if r["kind"] in (cls.PATCH, cls.COVER) or r["msgid"] in parents]


def _mark_rest(state: State) -> None:
    with state.tx() as db:
        db.conn.execute(f"UPDATE messages SET assembled = 1 WHERE assembled = 0"
                        f" AND kind NOT IN ({KINDS_SQL})")


def _upsert(db, v: series.Version, thread_msgids: list[str]) -> None:
    stamp = now()
    key = _series_key(db, v)
    row = db.conn.execute("SELECT id FROM series WHERE key = ?", (key,)).fetchone()
    if row is None:
        series_id = db.conn.execute(
            "INSERT INTO series (key, subject, author_name, author_addr, first_seen)"
            " VALUES (?,?,?,?,?)", [_text(x) for x in (key, v.subject, v.author_name,
                                                     v.author_addr, stamp)]).lastrowid
    else:
        series_id = row[0]
    if v.problem:
        new_state, reason = VersionState.UNTESTABLE, v.problem
    elif v.complete:
        new_state, reason = VersionState.READY, ""
    else:
        new_state, reason = VersionState.WAITING, f"missing {', '.join(map(str, v.missing))} of {v.expected}"
    _absorb(db, v, series_id)
    fields = dict(subject=v.subject, expected=v.expected, present=dumps(v.present),
                  complete=int(v.complete), has_cover=int(v.has_cover), reply_to=v.reply_to,
                  thread_root=v.thread_root, msgids=dumps(v.msgids), base_commit=v.base_commit,
                  tags=dumps(v.tags), trailers=v.trailers, fingerprint=v.fingerprint,
                  am_mbox=v.am_mbox, thread_msgids=dumps(sorted(thread_msgids)), updated_at=stamp)
    fields = {k: _text(x) for k, x in fields.items()}
    # A tested (or running) version keeps its state (bot/store/ assembled).
    if store.assembled(db, series_id, v.revision, fields, new_state, reason,
                       complete=v.complete, fingerprint=v.fingerprint):
        log.info("series v%d %r: %s %s", v.revision, v.subject, new_state, reason)


def _absorb(db, v: series.Version, series_id: int) -> None:
    """A waiting version whose patches are all in ``v`` under another key (patch 1
    arrived late, and the key is patch 1's subject) is the same series: it is
    superseded, not answered as incomplete."""
    ids = set(v.msgids)
    for version_id, msgids in store.waiting_elsewhere(db, v.revision, series_id):
        if msgids and set(msgids) <= ids:
            store.supersede(db, version_id, f"assembled again with patch 1 as {v.key}")


def _series_key(db, v: series.Version) -> str:
    """The series a version belongs to: its key, unless that series already has
    this revision from another thread with other patches (two unrelated
    "[PATCH v2] foo" mails): then a series of its own, keyed by its thread."""
    own = f"{v.key}#thread={v.thread_root}"
    if db.conn.execute("SELECT 1 FROM series WHERE key = ?", (own,)).fetchone():
        return own
    other = store.stored_revision(db, v.key, v.revision)
    if other is None or other[0] == v.thread_root or other[1] == v.fingerprint:
        return v.key
    # A thread that grew (its root moved) still shares patches with what was stored.
    return v.key if set(other[2]) & set(v.msgids) else own


def _text(value):
    """A string SQLite can store: 8-bit header bytes that the email package kept
    as lone surrogates become the characters they encode (or U+FFFD)."""
    if not isinstance(value, str):
        return value
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape" if _escaped_only(value) else "replace") \
            .decode("utf-8", "replace")


def _escaped_only(value: str) -> bool:
    return all(not 0xD800 <= ord(ch) <= 0xDFFF or 0xDC80 <= ord(ch) <= 0xDCFF for ch in value)


def _supersede(state: State) -> None:
    with state.tx() as db:
        store.supersede_older(db)


def am_ready(state: State, version: dict) -> tuple[bytes, str]:
    """(am-ready mbox, problem) for a version, made by b4 from its whole thread."""
    ids = loads(version["thread_msgids"], []) or loads(version["msgids"], [])
    raws = [(r["msgid"], bytes(r["raw"])) for r in state.query(
        f"SELECT msgid, raw FROM messages WHERE msgid IN ({','.join('?' * len(ids))})"
        " ORDER BY received_at, msgid", ids)]
    for v in series.assemble_thread(raws, version["thread_root"], with_am=True,
                                    only_revision=version["revision"]):
        if v.problem:
            return b"", v.problem
        if v.am_mbox:
            return v.am_mbox, ""
    return b"", "b4 no longer finds every patch of this version in its thread"
