"""Pipeline: test one series version (apply -> generate -> build -> report).

The run, its steps and the reply are written in one transaction at the end,
so a crash mid-run leaves the version ``running`` and it is simply run again.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from . import apply, build, generate, outbox, report, tracker
from .config import Rules
from .sandbox import Sandbox
from .state import State, dumps, loads, now
from .steps import FAILED, INFRA, SKIPPED, SUCCESS, StepResult

log = logging.getLogger(__name__)
Progress = Callable[[str], None]


def next_ready(state: State) -> dict | None:
    return state.one("SELECT * FROM versions WHERE state IN ('ready', 'running')"
                     " ORDER BY first_seen, id LIMIT 1")


def run_version(state: State, rules: Rules, sandbox: Sandbox, version: dict,
                progress: Progress | None = None) -> report.RunOutcome:
    say = progress or (lambda text: None)
    with state.tx() as db:
        db.conn.execute("UPDATE versions SET state='running', updated_at=? WHERE id=?",
                        (now(), version["id"]))
        # An earlier run of this version that never finished (a crash) is closed.
        db.conn.execute("UPDATE runs SET state='abandoned', finished_at=? WHERE version_id=?"
                        " AND state='running'", (now(), version["id"]))
        run_id = db.conn.execute(
            "INSERT INTO runs (version_id, state, started_at) VALUES (?, 'running', ?)",
            (version["id"], now())).lastrowid
    workdir = rules.state_dir / "work" / f"run-{run_id}"
    say(f"v{version['revision']} {version['subject']!r}: run {run_id}")
    try:
        outcome = _execute(rules, sandbox, version, workdir, run_id, say)
    except Exception as exc:  # noqa: BLE001 - an infra failure is never the patch's fault
        log.exception("run %d failed inside the bot", run_id)
        outcome = report.RunOutcome("", "", "", [StepResult("apply", INFRA, detail=str(exc))],
                                    run_id=run_id)
    finally:
        apply.remove_worktree(rules, workdir / "src")
        shutil.rmtree(workdir / "out", ignore_errors=True)
        shutil.rmtree(workdir / "build", ignore_errors=True)
    _finish(state, rules, version, run_id, workdir, outcome)
    say(f"run {run_id}: {outcome.verdict}")
    return outcome


def _execute(rules: Rules, sandbox: Sandbox, version: dict, workdir: Path, run_id: int,
             say: Progress) -> report.RunOutcome:
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    mbox = bytes(version["am_mbox"] or b"")
    (workdir / "series.mbox").write_bytes(mbox)
    base = apply.choose_base(rules, version["base_commit"], loads(version["tags"], []))
    outcome = report.RunOutcome(base.ref, base.commit, base.reason, [], run_id=run_id)
    src = workdir / "src"
    apply.add_worktree(rules, base, src)
    say(f"apply {len(loads(version['present'], []))} patch(es) on {base.ref} {base.commit[:12]}")
    started = time.time()
    result = apply.am(rules, src, mbox, logs / "apply.log")
    step = StepResult("apply", SUCCESS if result.ok else FAILED, started_at=started,
                      duration=time.time() - started, log_path=str(logs / "apply.log"))
    if result.ok:
        step.detail = f"{result.applied} patch{'es' if result.applied != 1 else ''} applied"
    else:
        step.detail = f"patch {result.failed_patch.split()[0]} failed" if result.failed_patch \
            else "failed"
        where = f"Patch {result.failed_patch}" if result.failed_patch else "The series"
        explain = [f"{where} does not apply to {base.ref} at {base.commit[:12]}."]
        if result.conflicts:
            explain.append("Conflicting files: " + ", ".join(result.conflicts) + ".")
        step.tail = [" ".join(explain), "git am said:"] + result.message.splitlines()[:8]
    outcome.steps.append(step)
    if not result.ok:
        outcome.steps += [StepResult("generate", SKIPPED, detail="not applied")]
        outcome.steps += [StepResult("build", SKIPPED, kernel=k.name, detail="not applied")
                          for k in rules.kernels]
        return outcome
    say("generate")
    gen = generate.generate(rules, sandbox, src, workdir / "out", logs / "generate.log")
    outcome.steps.append(gen)
    if gen.status != SUCCESS:
        outcome.steps += [StepResult("build", SKIPPED, kernel=k.name, detail="generation failed")
                          for k in rules.kernels]
        return outcome
    say(f"build on {len(rules.kernels)} kernel(s), {rules.build_jobs} at a time")
    outcome.steps += build.build_all(rules, sandbox, rules.kernels, workdir / "out", workdir, say)
    return outcome


def _finish(state: State, rules: Rules, version: dict, run_id: int, workdir: Path,
            outcome: report.RunOutcome) -> None:
    infra = outcome.verdict == report.INFRA_ERROR
    if infra and _infra_runs(state, version["id"]) < MAX_INFRA_RETRIES:
        # Not the series' fault: record the run, answer nothing, try again.
        with state.tx() as db:
            _record_steps(db, run_id, outcome)
            db.conn.execute("UPDATE runs SET state='infra-error', verdict=?, finished_at=?,"
                            " workdir=? WHERE id=?", (outcome.verdict, now(), str(workdir), run_id))
            db.conn.execute("UPDATE versions SET state='ready', state_reason=?, updated_at=?"
                            " WHERE id=?", ("retry after an infrastructure error", now(),
                                            version["id"]))
        return
    target = tracker.target_for(state, version)
    word = outcome.verdict.upper()
    body = report.render_run(rules, target, outcome)
    key = f"report:{version['id']}:{run_id}"
    msg, rcpts = report.compose(rules, target, body, key, word)
    with state.tx() as db:
        _record_steps(db, run_id, outcome)
        db.conn.execute("UPDATE runs SET state=?, verdict=?, base_ref=?, base_commit=?,"
                        " base_reason=?, finished_at=?, workdir=? WHERE id=?",
                        ("infra-error" if infra else "done", outcome.verdict, outcome.base_ref,
                         outcome.base_commit, outcome.base_reason, now(), str(workdir), run_id))
        db.conn.execute("UPDATE versions SET state=?, verdict=?, updated_at=? WHERE id=?",
                        ("done", outcome.verdict, now(), version["id"]))
        outbox.queue(db, key, "report", msg, rcpts, version_id=version["id"], run_id=run_id)


MAX_INFRA_RETRIES = 3


def _infra_runs(state: State, version_id: int) -> int:
    row = state.one("SELECT COUNT(*) AS n FROM runs WHERE version_id = ? AND state = 'infra-error'",
                    (version_id,))
    return row["n"] if row else 0


def _record_steps(db, run_id: int, outcome: report.RunOutcome) -> None:
    for s in outcome.steps:
        db.conn.execute(
            "INSERT INTO steps (run_id, name, kernel, status, detail, diagnostics, log_path,"
            " started_at, duration) VALUES (?,?,?,?,?,?,?,?,?)",
            (run_id, s.name, s.kernel, s.status, s.detail,
             dumps([d.to_dict() for d in s.diagnostics]), s.log_path, s.started_at or now(),
             s.duration))
