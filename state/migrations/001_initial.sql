-- bpbot state, migration 001. Applied once by bot/state.py at start.

-- Raw mail, spooled before anything else happens to it.
CREATE TABLE messages (
    msgid        TEXT PRIMARY KEY,       -- normalised, without <>
    raw          BLOB NOT NULL,
    size         INTEGER NOT NULL,
    source       TEXT NOT NULL,          -- where it came from (imap:..., maildir:..., mbox:...)
    received_at  REAL NOT NULL,
    kind         TEXT NOT NULL,          -- patch, cover, reply, command, bounce, ... quarantine
    reason       TEXT NOT NULL,
    notes        TEXT NOT NULL DEFAULT '[]',
    subject      TEXT NOT NULL DEFAULT '',
    from_addr    TEXT NOT NULL DEFAULT '',
    in_reply_to  TEXT NOT NULL DEFAULT '',
    refs         TEXT NOT NULL DEFAULT '[]',
    assembled    INTEGER NOT NULL DEFAULT 0 -- 1 once series assembly has seen it
);
CREATE INDEX messages_assembled ON messages (assembled);
CREATE INDEX messages_received ON messages (received_at);

-- Where each source stopped: (UIDVALIDITY, last UID) for IMAP.
CREATE TABLE cursors (
    source       TEXT PRIMARY KEY,
    uidvalidity  INTEGER NOT NULL DEFAULT 0,
    last_uid     INTEGER NOT NULL DEFAULT 0,
    updated_at   REAL NOT NULL
);

CREATE TABLE series (
    id           INTEGER PRIMARY KEY,
    key          TEXT NOT NULL UNIQUE,   -- change-id, else author + subject
    subject      TEXT NOT NULL,
    author_name  TEXT NOT NULL DEFAULT '',
    author_addr  TEXT NOT NULL DEFAULT '',
    first_seen   REAL NOT NULL
);

CREATE TABLE versions (
    id            INTEGER PRIMARY KEY,
    series_id     INTEGER NOT NULL REFERENCES series (id),
    revision      INTEGER NOT NULL,
    subject       TEXT NOT NULL,
    expected      INTEGER NOT NULL,
    present       TEXT NOT NULL DEFAULT '[]',  -- patch numbers we have
    complete      INTEGER NOT NULL DEFAULT 0,
    has_cover     INTEGER NOT NULL DEFAULT 0,
    reply_to      TEXT NOT NULL,               -- cover letter, else patch 1 (else first patch)
    thread_root   TEXT NOT NULL,
    msgids        TEXT NOT NULL DEFAULT '[]',  -- every message of this version
    recipients    TEXT NOT NULL DEFAULT '[]',  -- To/Cc of the reply target
    base_commit   TEXT NOT NULL DEFAULT '',
    tags          TEXT NOT NULL DEFAULT '[]',  -- extra subject prefixes ([PATCH 6.1 ...])
    trailers      INTEGER NOT NULL DEFAULT 0,  -- follow-up trailers b4 collected
    fingerprint   TEXT NOT NULL DEFAULT '',
    am_mbox       BLOB,                        -- b4's am-ready patches when complete
    state         TEXT NOT NULL,               -- waiting, ready, running, done, incomplete, superseded, untestable (bot/model.py VersionState)
    state_reason  TEXT NOT NULL DEFAULT '',
    verdict       TEXT NOT NULL DEFAULT '',
    first_seen    REAL NOT NULL,
    updated_at    REAL NOT NULL,
    UNIQUE (series_id, revision)
);
CREATE INDEX versions_state ON versions (state);

CREATE TABLE runs (
    id           INTEGER PRIMARY KEY,
    version_id   INTEGER NOT NULL REFERENCES versions (id),
    state        TEXT NOT NULL,           -- running, done, infra-error, interrupted, abandoned, crashed, untestable (bot/model.py RunState)
    verdict      TEXT NOT NULL DEFAULT '', -- pass, fail, partial, not-tested, not-applied, infra-error, untestable
    base_ref     TEXT NOT NULL DEFAULT '',
    base_commit  TEXT NOT NULL DEFAULT '',
    base_reason  TEXT NOT NULL DEFAULT '',
    started_at   REAL NOT NULL,
    finished_at  REAL,
    workdir      TEXT NOT NULL DEFAULT ''
);

CREATE TABLE steps (
    id           INTEGER PRIMARY KEY,
    run_id       INTEGER NOT NULL REFERENCES runs (id),
    name         TEXT NOT NULL,           -- apply, generate, build
    kernel       TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL,           -- success, failed, skipped, timeout, infra-error
    detail       TEXT NOT NULL DEFAULT '',
    diagnostics  TEXT NOT NULL DEFAULT '[]',
    log_path     TEXT NOT NULL DEFAULT '',
    started_at   REAL NOT NULL,
    duration     REAL NOT NULL DEFAULT 0
);
CREATE INDEX steps_run ON steps (run_id);

-- Replies to send. key is unique per series version and run, so a restart
-- never queues (or sends) the same reply twice.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    key             TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,        -- report, incomplete, untestable
    version_id      INTEGER,
    run_id          INTEGER,
    msgid           TEXT NOT NULL,
    recipients      TEXT NOT NULL,        -- envelope recipients (JSON list)
    raw             BLOB NOT NULL,
    state           TEXT NOT NULL,        -- queued, sending, sent, failed (a 5xx, given up)
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      REAL NOT NULL,
    sent_at         REAL
);
CREATE INDEX outbox_state ON outbox (state, next_attempt_at);
