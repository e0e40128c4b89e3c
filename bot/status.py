"""``bpbot status``: the series seen, their state and verdicts.

It only reads the state (``ReadOnlyState``): without one it says so and
creates nothing; a state it cannot read is a ``StateUnreadable`` naming the
path and the problem. Text from mail is escaped for the terminal.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from pathlib import Path
from urllib.parse import quote

import sqlite_utils

from bot import store
from bot.ingest.mailtext import for_terminal
from bot.model import TESTABLE, VERDICT_LABELS, Verdict, words
from bot.state import State, loads, migrations
from bot.store import views

ADDRESS = re.compile(r"[^\s<>\"'(),;:]+@[^\s<>\"'(),;:]+")


def rows(state: State) -> list[dict]:
    out = []
    for row in views.series_rows(state):
        v, run, steps = row["version"], row["run"], row["steps"]
        out.append(dict(
            id=v["id"], subject=v["subject"], revision=v["revision"], author=v["author_addr"],
            expected=v["expected"], present=loads(v["present"], []), state=v["state"],
            state_reason=v["state_reason"], verdict=v["verdict"],
            base=(run or {}).get("base_ref", ""), base_commit=(run or {}).get("base_commit", ""),
            run=(run or {}).get("id"), steps=steps,
        ))
    return out


def quarantined(state: State, limit: int | None = None,
                hide_addresses: bool = False) -> list[dict]:
    """Mail kept aside and never used, newest first: msgid, subject, reason and
    when it arrived (``received_at``, seconds since the epoch). ``hide_addresses``
    for the status page: a quarantined mail may have been written to the bot,
    not to the list, so addresses in subjects and reasons become <address>."""
    items = state.query(
        "SELECT msgid, subject, reason, received_at FROM messages WHERE kind = 'quarantine'"
        " ORDER BY received_at DESC, rowid DESC" + (" LIMIT ?" if limit else ""),
        (limit,) if limit else ())
    for q in items if hide_addresses else ():
        for key in ("subject", "reason"):
            q[key] = ADDRESS.sub("<address>", q[key] or "")
    return items


# What `bpbot status --json` prints when there is no state yet: every key of
# summary(), empty, and ``no_state`` saying where the state was looked for.
NO_STATE = dict(messages={}, outbox={}, series=[], quarantined=[], last_poll_at="",
                last_sent_at="")


def summary(state: State) -> dict:
    counts = {r["kind"]: r["n"] for r in state.query(
        "SELECT kind, COUNT(*) AS n FROM messages GROUP BY kind")}
    outbox = {r["state"]: r["n"] for r in state.query(
        "SELECT state, COUNT(*) AS n FROM outbox GROUP BY state")}
    return dict(messages=counts, outbox=outbox, series=rows(state),
                quarantined=quarantined(state),
                last_poll_at=state.meta_get("last_poll_at"),
                last_sent_at=state.meta_get("last_sent_at"))


def _kernels(steps: list[dict]) -> str:
    """The version matrix in one line: 3.10:FAIL 4.19:ok 5.10:- 6.1:base-fails."""
    marks = words(VERDICT_LABELS, "cell")
    return " ".join(f"{s['kernel']}:{marks.get(s['verdict'], s['verdict'])}"
                    for s in steps if s["name"] == "kernel")


TEXT_QUARANTINED = 20  # the newest shown by `bpbot status`; --json has them all


def render_table(state: State) -> str:
    data = summary(state)
    lines = [f"{'series':<44} {'ver':<4} {'state':<11} {'verdict':<12} builds",
             "-" * 100]
    for r in data["series"]:
        subject = for_terminal(r["subject"])
        subject = subject if len(subject) <= 44 else subject[:41] + "..."
        lines.append(f"{subject:<44} v{r['revision']:<3} {r['state']:<11} "
                     f"{r['verdict'] or '-':<12} {_kernels(r['steps'])}")
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(data["messages"].items()))
    lines.append("")
    lines.append(f"messages: {kinds or 'none'}")
    lines.append("replies: " + (", ".join(f"{k} {n}" for k, n in sorted(data["outbox"].items()))
                                or "none"))
    if data["quarantined"]:
        shown = data["quarantined"][:TEXT_QUARANTINED]
        more = len(data["quarantined"]) - len(shown)
        lines += ["", f"quarantined ({len(data['quarantined'])}, newest first"
                  + (f"; {more} older in --json" if more else "") + "):"]
        for q in shown:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(q["received_at"]))
            lines.append(f"  {stamp} <{for_terminal(q['msgid'])}> "
                         f"{for_terminal(q['subject']) or '(no subject)'}")
            lines.append(f"      {for_terminal(q['reason'])}")
    return "\n".join(lines)


def render_json(state: State) -> str:
    return json.dumps(summary(state), indent=2, sort_keys=True)


def report(database: Path, as_json: bool) -> str:
    """What `bpbot status` prints, read without writing anything: the table (or
    JSON), else "no state yet at <database> (the bot has not run)" (in JSON: the
    empty summary with ``no_state``). Raises StateUnreadable."""
    state = ReadOnlyState(database, snapshot=True)
    try:
        state.verify()
        return render_json(state) if as_json else render_table(state)
    except NoDatabase as exc:
        return json.dumps(dict(NO_STATE, no_state=str(exc)), indent=2, sort_keys=True) \
            if as_json else str(exc)
    except sqlite3.DatabaseError as exc:  # a page of the file broken past its header
        raise StateUnreadable(f"{database}: cannot be read: {exc}") from None
    finally:
        state.close()


# --- The status page (bot/web/page.py) reads the same tables through these. ---

run_version_id = views.run_version_id  # the series version a run belongs to


def version_detail(state: State, version_id: int, run_id: int | None = None) -> dict | None:
    """One series version: its runs, and every step of one run (the latest unless
    ``run_id``) with status, verdict, diagnostics and log path."""
    found = views.version_runs(state, version_id)
    if found is None:
        return None
    v, runs, others = found
    run = next((r for r in runs if r["id"] == run_id), None) if run_id else (runs or [None])[0]
    if run_id and run is None:
        return None
    steps = views.run_steps(state, run["id"]) if run else []
    return dict(
        id=v["id"], series_id=v["series_id"], subject=v["subject"], revision=v["revision"],
        author=v["author_addr"], author_name=v["author_name"], expected=v["expected"],
        present=loads(v["present"], []), state=v["state"], state_reason=v["state_reason"],
        verdict=v["verdict"], first_seen=v["first_seen"], updated_at=v["updated_at"],
        reply_to=v["reply_to"], run=run, runs=runs, steps=steps, versions=others,
        baselines=_baselines(state, run, steps),
    )


def _baselines(state: State, run: dict | None, steps: list[dict]) -> dict[str, dict]:
    """Per kernel the base build the series was compared with (for base-fails)."""
    if not run or not run["base_commit"]:
        return {}
    out = {}
    for s in steps:
        if s["name"] == "kernel" and s["verdict"] == Verdict.BASE_FAILS:
            row = state.one("SELECT status, stage, detail, log_path, created_at FROM baselines"
                            " WHERE base_commit = ? AND kernel = ? ORDER BY created_at DESC"
                            " LIMIT 1", (run["base_commit"], s["kernel"]))
            if row:
                out[s["kernel"]] = row
    return out


def queue(state: State) -> dict:
    """What is still to do: series versions not yet answered, replies not yet sent."""
    versions = store.pending(state)
    # Never who a reply goes to: command replies and subscribers' copies go to people
    # who wrote to the bot, not to the list (nor the key, which names them; nor an
    # address in an SMTP error).
    replies = state.query(
        "SELECT o.id, o.kind, o.version_id, o.attempts, o.next_attempt_at,"
        " o.last_error, o.created_at, v.subject FROM outbox o LEFT JOIN versions v"
        " ON v.id = o.version_id WHERE o.state = 'queued' ORDER BY o.id")
    for r in replies:
        r["last_error"] = ADDRESS.sub("<address>", r["last_error"] or "")
    return dict(versions=versions, outbox=replies)


def health(state: State, at: float, poll_seconds: int = 300) -> dict:
    """Is the bot alive? Last successful poll, last reply sent, oldest pending item,
    and the problems a maintainer should see at a glance (``ok`` is False then)."""
    def stamp(key: str) -> float | None:
        value = state.meta_get(key)
        return float(value) if value else None

    pending = queue(state)
    items = [(v["first_seen"], f"v{v['revision']} {v['subject']!r} ({v['state']})")
             for v in pending["versions"]]
    items += [(r["created_at"], f"{r['kind']} reply to {r['subject']!r}" if r["subject"]
               else f"{r['kind']} reply {r['id']}") for r in pending["outbox"]]
    oldest = min(items, default=None)
    out = dict(now=at, last_poll_at=stamp("last_poll_at"), last_sent_at=stamp("last_sent_at"),
               last_ingest_at=stamp("last_ingest_at"),
               oldest_pending_at=oldest[0] if oldest else None,
               oldest_pending=oldest[1] if oldest else "",
               pending_versions=len(pending["versions"]), pending_replies=len(pending["outbox"]))
    problems = []
    poll_limit = max(3 * poll_seconds, 600)
    if out["last_poll_at"] is None:
        problems.append("no successful poll recorded")
    elif at - out["last_poll_at"] > poll_limit:
        problems.append(f"no successful poll for {age(at - out['last_poll_at'])}")
    stuck = [r for r in pending["outbox"] if at - r["created_at"] > 3600]
    if stuck:
        problems.append(f"{len(stuck)} repl{'ies' if len(stuck) > 1 else 'y'} queued for over"
                        f" an hour (last error: {stuck[0]['last_error'] or 'none'})")
    running = [v for v in pending["versions"] if v["state"] in TESTABLE
               and at - v["updated_at"] > 6 * 3600]
    if running:
        problems.append(f"{len(running)} series waiting for a test for over 6 hours")
    out.update(ok=not problems, problems=problems)
    return out


def age(seconds: float) -> str:
    """42s, 5m, 3h, 2d: how long ago, roughly."""
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class NoDatabase(RuntimeError):
    """The state database does not exist yet (``bpbot serve`` creates it)."""


class StateUnreadable(RuntimeError):
    """The state is there but cannot be read as bpbot's: names the path and why."""


SQLITE_HEADER = b"SQLite format 3\x00"  # the first bytes of every SQLite database file


class ReadOnlyState(State):
    """The state as the status page reads it: opened read-only (SQLite URI
    ``mode=ro``), never created, never migrated, every connection ``query_only``.

    A WAL database needs its ``-wal`` and ``-shm`` files to be read; while the
    daemon runs they exist. When the daemon is stopped they are gone, and a
    reader on a read-only file system cannot make them: then, and only when no
    ``-wal`` file exists (so the main file holds everything), the file is read
    as ``immutable``.

    ``snapshot`` is for one short read (``bpbot status``): when no ``-wal`` file
    exists the file is read as ``immutable`` at once, so that reading leaves
    nothing behind (``mode=ro`` makes the ``-wal`` and ``-shm`` files when the
    folder is writable, owned by whoever reads: a root-owned ``-shm`` would
    lock the daemon out).
    """

    def __init__(self, path: Path, snapshot: bool = False):  # no super(): it creates, migrates
        self.path = Path(path)
        self.snapshot = snapshot
        self._local = threading.local()

    def exists(self) -> bool:
        return self.path.is_file()

    @property
    def db(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            if not self.exists():
                raise self._missing()
            conn = self._connect()
            conn.execute("PRAGMA query_only=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            db = sqlite_utils.Database(conn)
            self._local.db = db
        return db

    def _missing(self) -> NoDatabase:
        return NoDatabase(f"no state yet at {self.path} (the bot has not run)")

    def verify(self) -> None:
        """Raise NoDatabase when there is no state yet, StateUnreadable when what
        is there is no state this bpbot can read (each names the path)."""
        try:
            for folder in self.path.parents:  # the nearest that exists is a directory
                if folder.exists():
                    if not folder.is_dir():
                        raise StateUnreadable(f"{folder}: not a directory (the state_dir"
                                              " must be one)")
                    break
            if not self.path.exists():
                raise self._missing()
            if not self.path.is_file():
                raise StateUnreadable(f"{self.path}: not a file")
            with self.path.open("rb") as fh:
                head = fh.read(len(SQLITE_HEADER))
        except OSError as exc:
            raise StateUnreadable(f"{exc.filename or self.path}: cannot be read:"
                                  f" {exc.strerror or exc}") from None
        if head and head != SQLITE_HEADER:
            raise StateUnreadable(f"{self.path}: not an SQLite database")
        self._verify_schema()

    def _verify_schema(self) -> None:
        tables = {r["name"] for r in self.query(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"migrations", "messages"} <= tables:
            raise StateUnreadable(f"{self.path}: not a bpbot database (no bpbot tables)")
        done = {r["name"] for r in self.query("SELECT name FROM migrations")}
        missing = [f.name for f in migrations() if f.name not in done]
        if missing:
            raise StateUnreadable(f"{self.path}: made by an older bpbot ({len(missing)}"
                                  " migration(s) not applied); `bpbot serve` migrates it")

    def _connect(self) -> sqlite3.Connection:
        uri = f"file:{quote(str(self.path.absolute()))}?mode=ro"
        if self.snapshot and not Path(f"{self.path}-wal").exists():
            return sqlite3.connect(uri + "&immutable=1", uri=True, check_same_thread=False)
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            if Path(f"{self.path}-wal").exists():
                raise
        return sqlite3.connect(uri + "&immutable=1", uri=True, check_same_thread=False)

    def migrate(self) -> None:
        raise RuntimeError("the status page never migrates the database")

    def tx(self):
        raise RuntimeError("the status page never writes to the database")
