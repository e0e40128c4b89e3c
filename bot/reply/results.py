"""The end of a test run: record the run and its steps, queue the reply and
the subscribers' copies, all in one transaction; an infra-error is retried
before it is answered. ``run_version`` is the whole run of one version."""

from __future__ import annotations

from pathlib import Path

from bot.config.rules import Rules
from bot.reply import notices, outbox, report, subscriptions
from bot.sandbox.bwrap import Sandbox
from bot.series import diffinfo
from bot.state import State, dumps, now
from bot.testrun import matrix, pipeline
from bot.testrun.outcome import INFRA_ERROR, RunOutcome
from bot.testrun.steps import INFRA, StepResult

MAX_INFRA_RETRIES = 3


def run_version(state: State, rules: Rules, sandbox: Sandbox, version: dict,
                progress: pipeline.Progress | None = None) -> RunOutcome:
    """Test one version and answer it (bot/testrun/pipeline.py does the test)."""
    return pipeline.run_version(state, rules, sandbox, version, finish, progress)


def give_up(state: State, rules: Rules, version: dict, reason: str) -> RunOutcome:
    """Answer the version as an infra-error for ``reason``, without testing it."""
    run_id = pipeline.start_run(state, version)
    outcome = RunOutcome("", "", "", [StepResult("apply", INFRA, detail=reason)],
                                run_id=run_id)
    finish(state, rules, version, run_id, rules.state_dir / "work" / f"run-{run_id}", outcome,
            final_reason=reason)
    return outcome



def finish(state: State, rules: Rules, version: dict, run_id: int, run_dir: Path,
            outcome: RunOutcome, final_reason: str = "") -> None:
    """Record the run and answer it; an infra-error is retried first, unless
    ``final_reason`` says why it is answered now."""
    infra = outcome.verdict == INFRA_ERROR
    if infra and not final_reason and _infra_runs(state, version["id"]) < MAX_INFRA_RETRIES:
        # Not the series' fault: record the run, answer nothing, try again.
        with state.tx() as db:
            _record_steps(db, run_id, outcome)
            db.conn.execute("UPDATE runs SET state='infra-error', verdict=?, finished_at=?,"
                            " workdir=? WHERE id=?", (outcome.verdict, now(), str(run_dir), run_id))
            db.conn.execute("UPDATE versions SET state='ready', state_reason=?, updated_at=?"
                            " WHERE id=?", (pipeline.INFRA_RETRY_REASON, now(), version["id"]))
        return
    outcome.since_previous = _since_previous(state, version, outcome)
    target = notices.target_for(state, version)
    word = outcome.verdict.upper()
    body = report.render_run(rules, target, outcome)
    key = f"report:{version['id']}:{run_id}"
    msg, rcpts = report.reply(rules, target, body, key, word)
    with state.tx() as db:
        _record_steps(db, run_id, outcome)
        db.conn.execute("UPDATE runs SET state=?, verdict=?, base_ref=?, base_commit=?,"
                        " base_reason=?, finished_at=?, workdir=? WHERE id=?",
                        ("infra-error" if infra else "done", outcome.verdict, outcome.base_ref,
                         outcome.base_commit, outcome.base_reason, now(), str(run_dir), run_id))
        # A `retest ... full` asks for one full run, not for every later one.
        db.conn.execute("UPDATE versions SET state=?, state_reason=?, verdict=?, force_full=0,"
                        " updated_at=? WHERE id=?",
                        ("done", final_reason, outcome.verdict, now(), version["id"]))
        outbox.queue(db, key, "report", msg, rcpts, version_id=version["id"], run_id=run_id)
        # Subscribers' copies (mail commands): queued with the report, so exactly once each.
        subscriptions.queue_copies(db, rules, version, msg,
                                   diffinfo.touched_paths(bytes(version["am_mbox"] or b"")), run_id)


def _since_previous(state: State, version: dict, outcome: RunOutcome) -> list[str]:
    prev = state.one(
        "SELECT v.revision, r.id AS run_id FROM versions v JOIN runs r ON r.version_id = v.id"
        " WHERE v.series_id = ? AND v.revision < ? AND r.state = 'done'"
        " ORDER BY v.revision DESC, r.id DESC LIMIT 1", (version["series_id"], version["revision"]))
    if prev is None or not outcome.kernels:
        return []
    before = {r["kernel"]: r["verdict"] for r in state.query(
        "SELECT kernel, verdict FROM steps WHERE run_id = ? AND name = 'kernel'", (prev["run_id"],))}
    return matrix.since_previous(outcome.kernels, before, prev["revision"], version["revision"])


def _infra_runs(state: State, version_id: int) -> int:
    # Since the last finished run: a later retest starts counting afresh.
    row = state.one("SELECT COUNT(*) AS n FROM runs WHERE version_id = ? AND state = 'infra-error'"
                    " AND id > COALESCE((SELECT MAX(id) FROM runs WHERE version_id = ?"
                    " AND state = 'done'), 0)", (version_id, version_id))
    return row["n"] if row else 0


def _record_steps(db, run_id: int, outcome: RunOutcome) -> None:
    for s in outcome.steps:
        db.conn.execute(
            "INSERT INTO steps (run_id, name, kernel, status, detail, diagnostics, log_path,"
            " started_at, duration) VALUES (?,?,?,?,?,?,?,?,?)",
            (run_id, s.name, s.kernel, s.status, s.detail,
             dumps([d.to_dict() for d in s.diagnostics]), s.log_path, s.started_at or now(),
             s.duration))
    # One 'kernel' row per configured kernel: the version matrix.
    for k in outcome.kernels:
        db.conn.execute(
            "INSERT INTO steps (run_id, name, kernel, status, detail, why, verdict, new_errors,"
            " new_warnings, started_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (run_id, "kernel", k.kernel.name, k.verdict, k.detail, k.why, k.verdict,
             k.new_errors, k.new_warnings, now()))
