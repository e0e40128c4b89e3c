"""Views of versions, runs and steps for `bpbot status`, the status page, `bpbot
check` and the mail commands (reads only; bot/store/__init__.py writes)."""

from __future__ import annotations

from bot.state import State, loads
from bot.store import Db, _one, _rows


def base_commits(src: State | Db) -> list[str]:
    """Every base commit a run was tested on."""
    return [r["base_commit"] for r in _rows(
        src, "SELECT DISTINCT base_commit FROM runs WHERE base_commit != ''")]


def run_version_id(src: State | Db, run_id: int) -> int | None:
    """The series version a run belongs to (replies link to /runs/<id>)."""
    row = _one(src, "SELECT version_id FROM runs WHERE id = ?", (run_id,))
    return row["version_id"] if row else None


def step_log_path(src: State | Db, step_id: int) -> str:
    row = _one(src, "SELECT log_path FROM steps WHERE id = ?", (step_id,))
    return row["log_path"] if row else ""


# --- views for `bpbot status` and the status page --------------------------------


def series_rows(src: State | Db) -> list[dict]:
    """Every version with its author, latest run and that run's steps."""
    out = []
    for v in _rows(src, "SELECT v.*, s.author_addr, s.author_name FROM versions v JOIN series s"
                        " ON s.id = v.series_id ORDER BY v.first_seen, v.id"):
        run = _one(src, "SELECT * FROM runs WHERE version_id = ? ORDER BY id DESC LIMIT 1",
                   (v["id"],))
        steps = _rows(src, "SELECT name, kernel, status, detail, why, verdict, new_errors,"
                           " new_warnings FROM steps WHERE run_id = ? ORDER BY id",
                      (run["id"],)) if run else []
        out.append(dict(version=v, run=run, steps=steps))
    return out


def version_runs(src: State | Db, version_id: int) -> tuple[dict, list[dict], list[dict]] | None:
    """One version with its author, its runs (newest first) and its series'
    versions; None when there is no such version."""
    v = _one(src, "SELECT v.id, v.series_id, v.revision, v.subject, v.expected, v.present, v.state,"
                  " v.state_reason, v.verdict, v.first_seen, v.updated_at, v.reply_to,"
                  " s.author_name, s.author_addr FROM versions v JOIN series s"
                  " ON s.id = v.series_id WHERE v.id = ?", (version_id,))
    if v is None:
        return None
    runs = _rows(src, "SELECT id, state, verdict, base_ref, base_commit, base_reason,"
                      " started_at, finished_at FROM runs WHERE version_id = ? ORDER BY id DESC",
                 (version_id,))
    others = _rows(src, "SELECT id, revision, state, verdict FROM versions"
                        " WHERE series_id = ? ORDER BY revision", (v["series_id"],))
    return v, runs, others


def run_steps(src: State | Db, run_id: int) -> list[dict]:
    """Every step of a run, its diagnostics decoded."""
    steps = _rows(src, "SELECT id, name, kernel, status, detail, why, verdict, new_errors,"
                       " new_warnings, diagnostics, log_path, started_at, duration FROM steps"
                       " WHERE run_id = ? ORDER BY id", (run_id,))
    for s in steps:
        s["diagnostics"] = loads(s["diagnostics"], [])
    return steps


# --- finding a version from a mail (mail commands) -------------------------------


def version_for_msgid(src: State | Db, msgid: str) -> dict | None:
    """The newest version with this mail (its reply target or one of its
    patches), our reply to it, or this thread root."""
    for sql in (
        "SELECT * FROM versions WHERE reply_to = ?1 OR EXISTS (SELECT 1 FROM"
        " json_each(versions.msgids) WHERE value = ?1) ORDER BY revision DESC LIMIT 1",
        "SELECT v.* FROM versions v JOIN outbox o ON o.version_id = v.id WHERE o.msgid = ?"
        " ORDER BY o.id DESC LIMIT 1",
        "SELECT * FROM versions WHERE thread_root = ? ORDER BY revision DESC LIMIT 1",
    ):
        row = _one(src, sql, (msgid,))
        if row is not None:
            return row
    return None


def series_with_words(src: State | Db, words: tuple[str, ...], limit: int) -> list[int]:
    """Series whose subject holds every word, most recently updated first."""
    where = " AND ".join("instr(lower(v.subject), ?) > 0" for _ in words)
    return [r["series_id"] for r in _rows(
        src, f"SELECT v.series_id, MAX(v.updated_at) AS last FROM versions v WHERE {where}"
             f" GROUP BY v.series_id ORDER BY last DESC LIMIT {int(limit)}",
        [w.lower() for w in words])]


def series_version_ids(src: State | Db, series_id: int) -> list[int]:
    return [r["id"] for r in _rows(src, "SELECT id FROM versions WHERE series_id = ?"
                                        " ORDER BY revision", (series_id,))]
