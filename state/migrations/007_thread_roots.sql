-- Migration 007: each message's thread root, kept as mail arrives, so a
-- daemon pass joins new mail to its thread instead of re-threading the whole
-- window (bot/series/threads.py). Rows are filled by the tracker: mail that
-- was spooled before this migration is threaded once, on the first pass.

-- Every id a series message names (itself, its In-Reply-To and References),
-- with the root of its thread: the smallest id of the set, as
-- series.thread_roots() gives it. Ids of mail never received are kept too:
-- two replies to a lost message stay together.
CREATE TABLE thread_ids (
    msgid        TEXT PRIMARY KEY,
    root         TEXT NOT NULL,
    -- a numbered patch or cover letter sent without In-Reply-To/References:
    -- sender, version and length; alone in their threads, such mails are
    -- assembled together (bot/series/threads.py groups)
    lone_key     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX thread_ids_root ON thread_ids (root);
CREATE INDEX thread_ids_lone_key ON thread_ids (lone_key) WHERE lone_key != '';

-- An empty pass, `bpbot status` and `bpbot check` look messages up by kind.
CREATE INDEX messages_kind ON messages (kind);

-- A reply joins the versions of its thread by root (tracker._note_replies,
-- and `retest <thread root>`): without it each reply scans every version.
CREATE INDEX IF NOT EXISTS versions_thread_root ON versions (thread_root);
