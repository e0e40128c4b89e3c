-- Migration 003: kernel subsets, baselines and the version matrix.

-- Base builds, cached by (base commit, generator inputs, kernel, build command).
CREATE TABLE baselines (
    key          TEXT PRIMARY KEY,       -- sha256 over the inputs above
    base_commit  TEXT NOT NULL,
    kernel       TEXT NOT NULL,
    status       TEXT NOT NULL,          -- success, failed, timeout, infra-error
    stage        TEXT NOT NULL,          -- generate or build: where the base failed
    detail       TEXT NOT NULL DEFAULT '',
    diagnostics  TEXT NOT NULL DEFAULT '[]',
    log_path     TEXT NOT NULL DEFAULT '',
    created_at   REAL NOT NULL
);
CREATE INDEX baselines_commit ON baselines (base_commit);

-- Per kernel: why it was chosen, its verdict against the base, new diagnostics.
ALTER TABLE steps ADD COLUMN why TEXT NOT NULL DEFAULT '';
ALTER TABLE steps ADD COLUMN verdict TEXT NOT NULL DEFAULT '';   -- pass, fail, base-fails, not-built
ALTER TABLE steps ADD COLUMN new_errors INTEGER NOT NULL DEFAULT 0;
ALTER TABLE steps ADD COLUMN new_warnings INTEGER NOT NULL DEFAULT 0;

-- Every message of the version's thread (replies with trailers included):
-- the am-ready mbox is made from them when the version is tested.
ALTER TABLE versions ADD COLUMN thread_msgids TEXT NOT NULL DEFAULT '[]';
