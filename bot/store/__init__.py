"""Every SQL statement on series versions, their runs and steps, behind named
transitions and views (the states are bot/model.py's).

A version moves: (assembly) waiting | ready | untestable -> ``start_run``
running -> ``finish`` done, or ``retry_after`` ready again (an infra-error:
not picked before its ``retry_after`` time) or ``mark_untestable``; waiting
-> ``answer_incomplete``; waiting | ready -> ``supersede_older``; done ->
``queue_retest`` ready. A transition that writes takes ``db``, the open
transaction of ``State.tx()``, so the caller writes the reply in the same
one; a view takes the ``State`` (or that ``db``). The views of the status
page and the mail commands are in bot/store/views.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot.model import FINISHED, PENDING, TESTABLE, RunState, Verdict, VersionState
from bot.state import State, dumps, loads, now

Db = Any  # sqlite_utils.Database inside State.tx()


def _marks(values: tuple | dict) -> str:
    return ",".join("?" * len(values))


def _rows(src: State | Db, sql: str, params: Any = ()) -> list[dict]:
    return list(src.query(sql, params))


def _one(src: State | Db, sql: str, params: Any = ()) -> dict | None:
    rows = _rows(src, sql, params)
    return rows[0] if rows else None


# --- versions: the queue ------------------------------------------------------


def version(src: State | Db, version_id: int) -> dict | None:
    return _one(src, "SELECT * FROM versions WHERE id = ?", (version_id,))


def next_ready(src: State | Db, at: float | None = None) -> dict | None:
    """The oldest version to test; one that just hit an infra-error waits until
    its ``retry_after``."""
    at = now() if at is None else at
    return _one(src, f"SELECT * FROM versions WHERE state IN ({_marks(TESTABLE)})"
                     " AND retry_after <= ? ORDER BY first_seen, id LIMIT 1", (*TESTABLE, at))


def open_versions(src: State | Db) -> int:
    """Versions not answered yet: pending ones, and untestable ones whose notice
    is still owed (bot/reply/notices.py)."""
    row = _one(src, f"SELECT COUNT(*) AS n FROM versions WHERE state IN ({_marks(PENDING)})"
                    " OR (state = ? AND verdict = '')", (*PENDING, VersionState.UNTESTABLE))
    return row["n"] if row else 0


def pending(src: State | Db) -> list[dict]:
    """The queue of the status page: versions not yet answered, oldest first."""
    return _rows(src, "SELECT v.id, v.subject, v.revision, v.state, v.state_reason, v.first_seen,"
                      " v.updated_at, s.author_addr AS author FROM versions v JOIN series s"
                      f" ON s.id = v.series_id WHERE v.state IN ({_marks(PENDING)})"
                      " ORDER BY v.first_seen, v.id", PENDING)


def queue_order(src: State | Db) -> list[dict]:
    """The queue as a mail command shows it: running, then ready, then waiting."""
    return _rows(src, "SELECT subject, revision, state, state_reason FROM versions"
                      f" WHERE state IN ({_marks(PENDING)}) ORDER BY CASE state WHEN ? THEN 0"
                      " WHEN ? THEN 1 ELSE 2 END, first_seen, id",
                 (*PENDING, VersionState.RUNNING, VersionState.READY))


def incomplete_due(src: State | Db, seen_before: float) -> list[dict]:
    """Waiting versions first seen before ``seen_before``: the grace is over."""
    return _rows(src, "SELECT * FROM versions WHERE state = ? AND first_seen <= ?",
                 (VersionState.WAITING, seen_before))


def untestable_unanswered(src: State | Db) -> list[dict]:
    return _rows(src, "SELECT * FROM versions WHERE state = ? AND verdict = ''",
                 (VersionState.UNTESTABLE,))


def verdicts(src: State | Db) -> list[str]:
    """The verdict of every version that is not superseded (`bpbot check`)."""
    return [r["verdict"] for r in _rows(src, "SELECT verdict FROM versions WHERE state != ?",
                                        (VersionState.SUPERSEDED,))]


# --- versions: what series assembly stores ---------------------------------------


def assembled(db: Db, series_id: int, revision: int, fields: dict[str, Any],
              new_state: VersionState, reason: str, *, complete: bool, fingerprint: str) -> bool:
    """Store what assembly made of a version (``fields``: its columns); True when
    it is new. A new version starts in ``new_state``; a known one takes it while
    it is untested (waiting, ready), when it became complete after being answered
    incomplete, or untestable -> ready; a tested one whose patches changed (another
    fingerprint) is ready again; a resend of identical patches changes nothing."""
    old = db.conn.execute("SELECT id, state, fingerprint FROM versions WHERE series_id = ?"
                          " AND revision = ?", (series_id, revision)).fetchone()
    if old is None:
        fields = {**fields, "series_id": series_id, "revision": revision, "state": new_state,
                  "state_reason": reason, "first_seen": fields["updated_at"]}
        db.conn.execute(f"INSERT INTO versions ({','.join(fields)}) VALUES ({_marks(fields)})",
                        list(fields.values()))
        return True
    version_id, old_state, old_fp = old
    if old_state in (VersionState.WAITING, VersionState.READY) or \
            (old_state == VersionState.INCOMPLETE and complete) or \
            (old_state == VersionState.UNTESTABLE and new_state == VersionState.READY):
        fields = {**fields, "state": new_state, "state_reason": reason}
    elif old_state == VersionState.DONE and complete and fingerprint != old_fp:
        fields = {**fields, "state": VersionState.READY,
                  "state_reason": "patches changed since the last test"}
    sets = ",".join(f"{k} = ?" for k in fields)
    db.conn.execute(f"UPDATE versions SET {sets} WHERE id = ?", [*fields.values(), version_id])
    return False


def set_thread_messages(db: Db, thread_root: str, msgids: list[str]) -> None:
    """Every message of the thread (replies with trailers too), for the am-ready mbox."""
    db.conn.execute("UPDATE versions SET thread_msgids = ? WHERE thread_root = ?",
                    (dumps(sorted(msgids)), thread_root))


def waiting_elsewhere(db: Db, revision: int, series_id: int) -> list[tuple[int, list[str]]]:
    """(id, message ids) of the waiting versions of this revision in other series."""
    return [(r[0], loads(r[1], [])) for r in db.conn.execute(
        "SELECT id, msgids FROM versions WHERE state = ? AND revision = ? AND series_id != ?",
        (VersionState.WAITING, revision, series_id)).fetchall()]


def stored_revision(db: Db, series_key: str, revision: int) -> tuple[str, str, list[str]] | None:
    """(thread root, fingerprint, message ids) of a series' stored revision."""
    row = db.conn.execute("SELECT v.thread_root, v.fingerprint, v.msgids FROM versions v"
                          " JOIN series s ON s.id = v.series_id WHERE s.key = ? AND v.revision = ?",
                          (series_key, revision)).fetchone()
    return (row[0], row[1], loads(row[2], [])) if row else None


# --- versions: transitions ----------------------------------------------------


def set_am_mbox(db: Db, version_id: int, mbox: bytes) -> None:
    db.conn.execute("UPDATE versions SET am_mbox = ? WHERE id = ?", (mbox, version_id))


def retry_after(db: Db, version_id: int, reason: str, at: float) -> None:
    """Back to ready, not picked before ``at`` (an infra-error, no disk space);
    the reason is for the status page."""
    db.conn.execute("UPDATE versions SET state = ?, state_reason = ?, retry_after = ?,"
                    " updated_at = ? WHERE id = ?",
                    (VersionState.READY, reason, at, now(), version_id))


def mark_untestable(db: Db, version_id: int, run_id: int | None, problem: str) -> None:
    """The version cannot be tested (``problem`` says why); its notice is owed
    (``answer_untestable``). The run, if one was started, ends with it."""
    if run_id is not None:
        db.conn.execute("UPDATE runs SET state = ?, verdict = ?, finished_at = ? WHERE id = ?",
                        (RunState.UNTESTABLE, Verdict.UNTESTABLE, now(), run_id))
    db.conn.execute("UPDATE versions SET state = ?, state_reason = ?, verdict = '',"
                    " updated_at = ? WHERE id = ?",
                    (VersionState.UNTESTABLE, problem, now(), version_id))


def answer_untestable(db: Db, version_id: int) -> None:
    db.conn.execute("UPDATE versions SET verdict = ?, updated_at = ? WHERE id = ?",
                    (Verdict.UNTESTABLE, now(), version_id))


def answer_incomplete(db: Db, version_id: int) -> None:
    """Still waiting after the grace: answered as incomplete (unless it moved on)."""
    db.conn.execute("UPDATE versions SET state = ?, verdict = ?, updated_at = ?"
                    " WHERE id = ? AND state = ?", (VersionState.INCOMPLETE, Verdict.INCOMPLETE,
                                                    now(), version_id, VersionState.WAITING))


def supersede_older(db: Db) -> int:
    """Versions waiting or ready when a later revision of their series exists,
    never tested before (a retested one stays): superseded."""
    latest = "SELECT MAX(v2.revision) FROM versions v2 WHERE v2.series_id = versions.series_id"
    waiting, ready = VersionState.WAITING, VersionState.READY
    return db.conn.execute(
        f"UPDATE versions SET state = ?, state_reason = 'v' || ({latest})"
        " || ' arrived before this version was tested', updated_at = ?"
        f" WHERE state IN (?, ?) AND revision < ({latest})"
        " AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.version_id = versions.id)",
        (VersionState.SUPERSEDED, now(), waiting, ready)).rowcount


def supersede(db: Db, version_id: int, reason: str) -> None:
    db.conn.execute("UPDATE versions SET state = ?, state_reason = ?, updated_at = ? WHERE id = ?",
                    (VersionState.SUPERSEDED, reason, now(), version_id))


def queue_retest(db: Db, version_id: int, reason: str, full: bool, at: float) -> None:
    """Ready again at once (a maintainer's retest), on every kernel with ``full``."""
    db.conn.execute("UPDATE versions SET state = ?, state_reason = ?, force_full = ?,"
                    " retry_after = 0, updated_at = ? WHERE id = ?",
                    (VersionState.READY, reason, int(full), at, version_id))


# --- runs ------------------------------------------------------------------------


def start_run(db: Db, version_id: int) -> int | None:
    """Claim the version: it is running, in a new run (returned); None when it is
    no longer to be tested (superseded while the run was handed to the worker).
    A run this process left 'running' (a failed state write) is closed as
    interrupted; one left by a crash was closed as abandoned at start-up
    (``close_crashed_runs``)."""
    claimed = db.conn.execute("UPDATE versions SET state = ?, updated_at = ? WHERE id = ?"
                              " AND state IN (?, ?)", (VersionState.RUNNING, now(), version_id,
                                                       VersionState.READY, VersionState.RUNNING))
    if claimed.rowcount == 0:
        return None
    db.conn.execute("UPDATE runs SET state = ?, finished_at = ? WHERE version_id = ? AND state = ?",
                    (RunState.INTERRUPTED, now(), version_id, RunState.RUNNING))
    return db.conn.execute("INSERT INTO runs (version_id, state, started_at, stage)"
                           " VALUES (?, ?, ?, 'prepare')",
                           (version_id, RunState.RUNNING, now())).lastrowid


def set_stage(db: Db, run_id: int, stage: str) -> None:
    db.conn.execute("UPDATE runs SET stage = ? WHERE id = ?", (stage, run_id))


def mark_interrupted(db: Db, version_id: int) -> None:
    """The bot stopped during a run of this version (a stop, not a crash): the run
    is interrupted and the version is tested again at the next start."""
    db.conn.execute("UPDATE runs SET state = ?, finished_at = ? WHERE version_id = ? AND state = ?",
                    (RunState.INTERRUPTED, now(), version_id, RunState.RUNNING))
    db.conn.execute("UPDATE versions SET state = ?, updated_at = ? WHERE id = ? AND state = ?",
                    (VersionState.READY, now(), version_id, VersionState.RUNNING))


def close_crashed_runs(db: Db) -> int:
    """At start-up: a run still 'running' is one the daemon died in; it is abandoned."""
    return db.conn.execute("UPDATE runs SET state = ?, finished_at = ? WHERE state = ?",
                           (RunState.ABANDONED, now(), RunState.RUNNING)).rowcount


def mark_crashed(db: Db, version_id: int) -> None:
    """The isolated run of the version killed its child process."""
    db.conn.execute("UPDATE runs SET state = ?, finished_at = ? WHERE version_id = ? AND state = ?",
                    (RunState.CRASHED, now(), version_id, RunState.RUNNING))


def crash_suspects(src: State | Db, version_id: int) -> list[dict]:
    """The runs of this version the daemon died in, since its last finished run."""
    return _rows(src, "SELECT id, stage FROM runs WHERE version_id = ? AND state = ? AND id >"
                      " COALESCE((SELECT MAX(id) FROM runs WHERE version_id = ?"
                      f" AND state IN ({_marks(FINISHED)})), 0) ORDER BY id",
                 (version_id, RunState.ABANDONED, version_id, *FINISHED))


def infra_runs(src: State | Db, version_id: int) -> int:
    """Infra-error runs since the last answered one (a retest counts afresh)."""
    row = _one(src, "SELECT COUNT(*) AS n FROM runs WHERE version_id = ? AND state = ?"
                    " AND id > COALESCE((SELECT MAX(id) FROM runs WHERE version_id = ?"
                    " AND state = ?), 0)",
               (version_id, RunState.INFRA_ERROR, version_id, RunState.DONE))
    return row["n"] if row else 0


def record_steps(db: Db, run_id: int, steps: Iterable, kernels: Iterable) -> None:
    """The run's steps (bot/testrun/steps.py StepResult) and one 'kernel' row
    per configured kernel (bot/testrun/matrix.py KernelResult): its matrix."""
    for s in steps:
        db.conn.execute(
            "INSERT INTO steps (run_id, name, kernel, status, detail, diagnostics, log_path,"
            " started_at, duration) VALUES (?,?,?,?,?,?,?,?,?)",
            (run_id, s.name, s.kernel, s.status, s.detail,
             dumps([d.to_dict() for d in s.diagnostics]), s.log_path, s.started_at or now(),
             s.duration))
    for k in kernels:
        db.conn.execute(
            "INSERT INTO steps (run_id, name, kernel, status, detail, why, verdict, new_errors,"
            " new_warnings, started_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (run_id, "kernel", k.kernel.name, k.verdict, k.detail, k.why, k.verdict,
             k.new_errors, k.new_warnings, now()))


def _end_run(db: Db, run_id: int, state: RunState, verdict: str, workdir: str,
             base: tuple[str, str, str] | None = None) -> None:
    """The run ends in ``state``; ``base`` is (ref, commit, reason) when it got that far."""
    if base is None:
        db.conn.execute("UPDATE runs SET state = ?, verdict = ?, finished_at = ?, workdir = ?"
                        " WHERE id = ?", (state, verdict, now(), workdir, run_id))
        return
    db.conn.execute("UPDATE runs SET state = ?, verdict = ?, base_ref = ?, base_commit = ?,"
                    " base_reason = ?, finished_at = ?, workdir = ? WHERE id = ?",
                    (state, verdict, *base, now(), workdir, run_id))


def finish(db: Db, version_id: int, run_id: int, outcome: Any, workdir: str,
           reason: str = "") -> None:
    """Record the run (its steps, matrix, base and verdict: a RunOutcome of
    bot/testrun/outcome.py) and answer the version with its verdict; an
    infra-error answered (no retry left) is recorded as one. A `retest ... full`
    asks for one full run, not for every later one."""
    record_steps(db, run_id, outcome.steps, outcome.kernels)
    infra = outcome.verdict == Verdict.INFRA_ERROR
    _end_run(db, run_id, RunState.INFRA_ERROR if infra else RunState.DONE, outcome.verdict,
             workdir, (outcome.base_ref, outcome.base_commit, outcome.base_reason))
    db.conn.execute("UPDATE versions SET state = ?, state_reason = ?, verdict = ?, force_full = 0,"
                    " retry_after = 0, updated_at = ? WHERE id = ?",
                    (VersionState.DONE, reason, outcome.verdict, now(), version_id))


def finish_for_retry(db: Db, version_id: int, run_id: int, outcome: Any, workdir: str,
                     reason: str, at: float) -> None:
    """Record an infra-error run and answer nothing: the version is tried again
    after ``at`` (``retry_after``)."""
    record_steps(db, run_id, outcome.steps, outcome.kernels)
    _end_run(db, run_id, RunState.INFRA_ERROR, outcome.verdict, workdir)
    retry_after(db, version_id, reason, at)


def previous_answer(src: State | Db, series_id: int, revision: int) -> tuple[int, dict] | None:
    """(revision, kernel -> verdict) of the last answered run of an earlier version."""
    prev = _one(src, "SELECT v.revision, r.id AS run_id FROM versions v JOIN runs r"
                     " ON r.version_id = v.id WHERE v.series_id = ? AND v.revision < ?"
                     " AND r.state = ? ORDER BY v.revision DESC, r.id DESC LIMIT 1",
                (series_id, revision, RunState.DONE))
    if prev is None:
        return None
    return prev["revision"], {r["kernel"]: r["verdict"] for r in _rows(
        src, "SELECT kernel, verdict FROM steps WHERE run_id = ? AND name = 'kernel'",
        (prev["run_id"],))}
