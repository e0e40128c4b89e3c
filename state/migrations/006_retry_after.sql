-- Migration 006: when a version may be tried again, in a column of its own
-- (it was read from the text of state_reason). 0: at once.

ALTER TABLE versions ADD COLUMN retry_after REAL NOT NULL DEFAULT 0;

-- A version waiting after an infrastructure error keeps its wait (5 minutes).
UPDATE versions SET retry_after = updated_at + 300
    WHERE state = 'ready' AND state_reason LIKE 'retry after an infrastructure error%';
