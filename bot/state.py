"""State in SQLite (sqlite-utils), WAL mode.

Every write goes through ``State.tx()``, which takes the write lock at once
(``BEGIN IMMEDIATE``); a deferred BEGIN upgraded under threads fails with
"database is locked". Each thread gets its own connection.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

# NNN_name.sql, applied once each, in order, in one transaction; shipped inside
# the package (bot/migrations links to state/migrations in a checkout).
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def migrations() -> list[Path]:
    files = sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9]_*.sql"))
    numbers = [f.name[:3] for f in files]
    if len(set(numbers)) != len(numbers):
        raise RuntimeError(f"two migrations share a number in {MIGRATIONS_DIR}: {numbers}")
    return files


def _apply(db: sqlite_utils.Database, script: Path) -> None:
    # executescript() would COMMIT our transaction; run statement by statement.
    statement = ""
    for line in script.read_text(encoding="utf-8").splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            db.conn.execute(statement)
            statement = ""


class State:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.migrate()

    @property
    def db(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            db = sqlite_utils.Database(conn)
            self._local.db = db
        return db

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.conn.close()
            self._local.db = None

    @contextmanager
    def tx(self) -> Iterator[sqlite_utils.Database]:
        """One write transaction: BEGIN IMMEDIATE ... COMMIT (or ROLLBACK)."""
        db = self.db
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.conn.execute("ROLLBACK")
            raise
        db.conn.execute("COMMIT")

    def migrate(self) -> None:
        with self.tx() as db:
            db.conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            db.conn.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY,"
                            " applied_at REAL NOT NULL)")
            done = {r[0] for r in db.conn.execute("SELECT name FROM migrations")}
            files = migrations()
            unknown = done - {f.name for f in files}
            if unknown:
                raise RuntimeError(f"{self.path} has migrations this bpbot does not know "
                                   f"({', '.join(sorted(unknown))}); upgrade bpbot")
            # Each migration once, by name, in order (a merged-in lower number still runs).
            for script in files:
                if script.name not in done:
                    _apply(db, script)
                    db.conn.execute("INSERT INTO migrations VALUES (?, ?)", (script.name, now()))
            db.conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                            (str(len(files)),))

    # --- small helpers -------------------------------------------------

    def query(self, sql: str, params: Any = ()) -> list[dict]:
        return list(self.db.query(sql, params))

    def one(self, sql: str, params: Any = ()) -> dict | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def meta_get(self, key: str, default: str = "") -> str:
        row = self.one("SELECT value FROM meta WHERE key = ?", (key,))
        return row["value"] if row else default

    def meta_set(self, db: sqlite_utils.Database, key: str, value: str) -> None:
        db.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))


def now() -> float:
    return time.time()


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def loads(value: str | None, default: Any = None) -> Any:
    return json.loads(value) if value else default
