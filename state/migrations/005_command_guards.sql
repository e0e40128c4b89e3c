-- Migration 005: guards for mail commands (issue "A hostile patch can stop
-- the bot for good").

-- DKIM signatures that already ran a maintainer's retest (sha256 of b=): a
-- replayed signed mail does nothing, whatever Message-ID it carries.
CREATE TABLE dkim_used (
    signature     TEXT PRIMARY KEY,
    msgid         TEXT NOT NULL,             -- the command mail that used it
    used_at       REAL NOT NULL
);
