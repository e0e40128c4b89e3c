"""The end of a test run: record the run and its steps, queue the reply and
the subscribers' copies, all in one transaction; an infra-error is retried
before it is answered. ``run_version`` is the whole run of one version."""

from __future__ import annotations

from pathlib import Path

from bot import store
from bot.config.rules import Rules
from bot.model import verdict_header
from bot.reply import notices, outbox, report, subscriptions
from bot.sandbox.bwrap import Sandbox
from bot.series import diffinfo
from bot.state import State, now
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
                                run_id=run_id or 0)
    if run_id is None:  # superseded meanwhile: nothing to answer
        return outcome
    finish(state, rules, version, run_id, rules.state_dir / "work" / f"run-{run_id}", outcome,
            final_reason=reason)
    return outcome


def finish(state: State, rules: Rules, version: dict, run_id: int, run_dir: Path,
            outcome: RunOutcome, final_reason: str = "") -> None:
    """Record the run and answer it; an infra-error is retried first, unless
    ``final_reason`` says why it is answered now."""
    infra = outcome.verdict == INFRA_ERROR
    if infra and not final_reason and store.infra_runs(state, version["id"]) < MAX_INFRA_RETRIES:
        # Not the series' fault: record the run, answer nothing, try again later.
        with state.tx() as db:
            store.finish_for_retry(db, version["id"], run_id, outcome, str(run_dir),
                                   pipeline.INFRA_RETRY_REASON,
                                   now() + pipeline.INFRA_RETRY_SECONDS)
        return
    outcome.since_previous = _since_previous(state, version, outcome)
    target = notices.target_for(state, version)
    body = report.render_run(rules, target, outcome)
    key = f"report:{version['id']}:{run_id}"
    msg, rcpts = report.reply(rules, target, body, key, verdict_header(outcome.verdict))
    with state.tx() as db:
        store.finish(db, version["id"], run_id, outcome, str(run_dir), final_reason)
        outbox.queue(db, key, "report", msg, rcpts, version_id=version["id"], run_id=run_id)
        # Subscribers' copies (mail commands): queued with the report, so exactly once each.
        subscriptions.queue_copies(db, rules, version, msg,
                                   diffinfo.touched_paths(bytes(version["am_mbox"] or b"")), run_id)


def _since_previous(state: State, version: dict, outcome: RunOutcome) -> list[str]:
    prev = store.previous_answer(state, version["series_id"], version["revision"])
    if prev is None or not outcome.kernels:
        return []
    revision, before = prev
    return matrix.since_previous(outcome.kernels, before, revision, version["revision"])
