-- bpbot state, migration 002: mail commands and subscriptions (issue 4).
-- Statements are split on a semicolon at the end of a line, so comments here
-- never end in one.

-- `retest <message-id> full` asks for every kernel, not only the subset.
-- The build stage reads it; every retest sets it (0 or 1).
ALTER TABLE versions ADD COLUMN force_full INTEGER NOT NULL DEFAULT 0;

-- Every command mail the bot has dealt with, answered or not. A mail is
-- handled once: its row is written in the transaction that queues the reply.
CREATE TABLE command_mails (
    msgid         TEXT PRIMARY KEY,          -- the command mail (messages.msgid)
    sender        TEXT NOT NULL,             -- lower-case From address
    outcome       TEXT NOT NULL,             -- answered, notice, silent, rate-limited
    reason        TEXT NOT NULL DEFAULT '',  -- why silent, or a summary of the answer
    replied       INTEGER NOT NULL DEFAULT 0,-- 1 when a reply was queued
    done          INTEGER NOT NULL DEFAULT 0,
    ignored       INTEGER NOT NULL DEFAULT 0,
    unknown       INTEGER NOT NULL DEFAULT 0,
    processed_at  REAL NOT NULL
);
CREATE INDEX command_mails_sender ON command_mails (sender, processed_at);
CREATE INDEX command_mails_replied ON command_mails (replied, processed_at);

-- Mail spooled before this migration is history, not a command to answer now.
INSERT INTO command_mails (msgid, sender, outcome, reason, processed_at)
    SELECT msgid, from_addr, 'silent', 'spooled before mail commands existed', received_at
    FROM messages WHERE kind = 'command';

-- Confirmation tokens: one per command mail that needs one, covering every
-- action of that mail (subscribe, unsubscribe, retest). Single use.
CREATE TABLE tokens (
    token         TEXT PRIMARY KEY,
    address       TEXT NOT NULL,             -- the only address that may confirm
    actions       TEXT NOT NULL,             -- JSON list of {"command", "args"}
    request_msgid TEXT NOT NULL,             -- the mail that asked
    created_at    REAL NOT NULL,
    expires_at    REAL NOT NULL,
    used_at       REAL,
    used_by       TEXT NOT NULL DEFAULT ''   -- the confirming mail
);
CREATE INDEX tokens_address ON tokens (address);

-- Readers who get a copy of every report on series touching paths that
-- match their glob ('*' = everything).
CREATE TABLE subscriptions (
    id            INTEGER PRIMARY KEY,
    address       TEXT NOT NULL,
    glob          TEXT NOT NULL,
    created_at    REAL NOT NULL,
    token         TEXT NOT NULL DEFAULT '',  -- the confirmation that started it
    UNIQUE (address, glob)
);

-- Retests asked for by maintainers, for the record.
CREATE TABLE retests (
    id            INTEGER PRIMARY KEY,
    version_id    INTEGER NOT NULL REFERENCES versions (id),
    requested_by  TEXT NOT NULL,
    full_matrix   INTEGER NOT NULL DEFAULT 0,
    msgid         TEXT NOT NULL,             -- the mail that ran it (retest or confirm)
    auth          TEXT NOT NULL,             -- dkim, confirmed
    created_at    REAL NOT NULL
);
