-- bpbot state, migration 004: where a run was when it ended, so that the
-- reason given for a version that killed the bot says where
-- (bot/isolate.py).

-- The first word of the run's last progress message: prepare, apply,
-- kernels, baseline, generate, build, report.
ALTER TABLE runs ADD COLUMN stage TEXT NOT NULL DEFAULT '';
