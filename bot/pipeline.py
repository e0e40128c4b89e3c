"""Pipeline: test one series version.

apply -> choose the kernel subset -> baseline (cached) -> generate -> build
-> compare with the base -> report. The run, its steps and the reply are
written in one transaction at the end, so a crash mid-run leaves the version
``running`` and it is simply run again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from . import (
    apply,
    baseline,
    build,
    coverage,
    diffinfo,
    generate,
    matrix,
    outbox,
    report,
    subscriptions,
    subset,
    tracker,
)
from .config import Rules
from .sandbox import Sandbox
from .state import State, dumps, loads, now
from .steps import FAILED, INFRA, SKIPPED, SUCCESS, StepResult

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
MAX_INFRA_RETRIES = 3


INFRA_RETRY_REASON = "retry after an infrastructure error"
INFRA_RETRY_SECONDS = 300


def next_ready(state: State, at: float | None = None) -> dict | None:
    """The oldest version to test; one that just hit an infra-error waits a while."""
    at = now() if at is None else at
    return state.one("SELECT * FROM versions WHERE state IN ('ready', 'running')"
                     " AND NOT (state_reason = ? AND updated_at > ?)"
                     " ORDER BY first_seen, id LIMIT 1",
                     (INFRA_RETRY_REASON, at - INFRA_RETRY_SECONDS))


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
    if not version["am_mbox"]:
        mbox, problem = tracker.am_ready(state, version)
        if problem:
            _untestable(state, version, run_id, problem)
            return report.RunOutcome("", "", "", [StepResult("apply", SKIPPED, detail=problem)])
        with state.tx() as db:
            db.conn.execute("UPDATE versions SET am_mbox=? WHERE id=?", (mbox, version["id"]))
        version = {**version, "am_mbox": mbox}
    run_dir = rules.state_dir / "work" / f"run-{run_id}"
    paths = baseline.WorkPaths(rules.state_dir / "work")
    say(f"v{version['revision']} {version['subject']!r}: run {run_id}")
    try:
        outcome = _execute(state, rules, sandbox, version, run_dir, paths, run_id, say)
    except Exception as exc:  # noqa: BLE001 - an infra failure is never the patch's fault
        log.exception("run %d failed inside the bot", run_id)
        outcome = report.RunOutcome("", "", "", [StepResult("apply", INFRA, detail=str(exc))],
                                    run_id=run_id)
    finally:
        apply.remove_worktree(rules, paths.src)
    try:
        _finish(state, rules, version, run_id, run_dir, outcome)
    except Exception as exc:  # noqa: BLE001 - never leave the version blocking the queue
        log.exception("run %d could not be reported", run_id)
        _untestable(state, version, run_id, f"the bot could not write its report: {exc}")
    say(f"run {run_id}: {outcome.verdict}")
    return outcome


def _apply_step(rules: Rules, base: apply.Base, src: Path, mbox: bytes, logs: Path) -> StepResult:
    started = time.time()
    result = apply.am(rules, src, mbox, logs / "apply.log")
    step = StepResult("apply", SUCCESS if result.ok else FAILED, started_at=started,
                      duration=time.time() - started, log_path=str(logs / "apply.log"))
    if result.ok and result.nothing_new(src, base.commit):
        # git am -3 succeeds on a series the base already has: nothing to test.
        step.status, step.detail = SKIPPED, ALREADY_APPLIED
        step.tail = [f"already in the base: {s}" for s in result.already_applied]
        return step
    if result.ok:
        step.detail = f"{result.applied} patch{'es' if result.applied != 1 else ''} applied"
        if result.already_applied:
            step.detail += f" ({len(result.already_applied)} already in the base)"
        return step
    step.detail = f"patch {result.failed_patch.split()[0]} failed" if result.failed_patch \
        else "failed"
    where = f"Patch {result.failed_patch}" if result.failed_patch else "The series"
    explain = [f"{where} does not apply to {base.ref} at {base.commit[:12]}."]
    if result.conflicts:
        explain.append("Conflicting files: " + ", ".join(result.conflicts) + ".")
    step.tail = [" ".join(explain), "git am said:"] + result.message.splitlines()[:8]
    return step


def _execute(state: State, rules: Rules, sandbox: Sandbox, version: dict, run_dir: Path,
             paths: baseline.WorkPaths, run_id: int, say: Progress) -> report.RunOutcome:
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    mbox = bytes(version["am_mbox"] or b"")
    (run_dir / "series.mbox").write_bytes(mbox)
    base = apply.choose_base(rules, version["base_commit"], loads(version["tags"], []))
    outcome = report.RunOutcome(base.ref, base.commit, base.reason, [], run_id=run_id)
    apply.add_worktree(rules, base, paths.src)
    say(f"apply {len(loads(version['present'], []))} patch(es) on {base.ref} {base.commit[:12]}")
    step = _apply_step(rules, base, paths.src, mbox, logs)
    outcome.steps.append(step)
    if step.status == SKIPPED:
        return _already_applied(rules, outcome)
    if step.status != SUCCESS:
        outcome.steps.append(StepResult("generate", SKIPPED, detail="not applied"))
        outcome.kernels = [matrix.KernelResult(k, matrix.NOT_BUILT, "does not apply")
                           for k in rules.kernels]
        return outcome

    def read_new(path: str) -> str | None:
        try:
            return (paths.src / path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    choice = subset.choose(rules, diffinfo.changes(mbox), full=bool(version.get("force_full")),
                           read_new=read_new)
    outcome.choice = choice
    if not choice.generate:
        outcome.steps.append(StepResult("generate", SKIPPED, detail="nothing to build"))
        outcome.kernels = [matrix.KernelResult(k, matrix.NOT_BUILT, choice.note)
                           for k in rules.kernels]
        return outcome
    return _test_kernels(state, rules, sandbox, base, choice, paths, logs, outcome, say)


ALREADY_APPLIED = "already applied in the base"
KERNEL_DIR_MISSING = "kernel dir missing"


def _already_applied(rules: Rules, outcome: report.RunOutcome) -> report.RunOutcome:
    outcome.untested = (f"{ALREADY_APPLIED} ({outcome.base_ref} at {outcome.base_commit[:12]} "
                        "already has every patch of the series: git am changed nothing)")
    outcome.steps.append(StepResult("generate", SKIPPED, detail=ALREADY_APPLIED))
    outcome.kernels = [matrix.KernelResult(k, matrix.NOT_BUILT, ALREADY_APPLIED)
                       for k in rules.kernels]
    return outcome


def _present(rules: Rules, kernels: list) -> tuple[list, list]:
    """Kernels whose dir exists here, and the others (a configuration problem, not
    the series'). RQ workers have their own dirs: they are not checked here."""
    if rules.executor != "local":
        return list(kernels), []
    missing = [k for k in kernels if not k.path.is_dir()]
    for k in missing:
        log.warning("kernel %s: dir %s is missing; not built", k.name, k.path)
    return [k for k in kernels if k not in missing], missing


def _test_kernels(state: State, rules: Rules, sandbox: Sandbox, base: apply.Base,
                  choice: subset.Choice, paths: baseline.WorkPaths, logs: Path,
                  outcome: report.RunOutcome, say: Progress) -> report.RunOutcome:
    """Base, generate and build on every chosen kernel (in the choice's order);
    every configured kernel ends with a verdict."""
    present, missing = _present(rules, choice.kernels)
    builds: dict[str, StepResult] = {
        k.name: StepResult("build", SKIPPED, kernel=k.name, detail=KERNEL_DIR_MISSING)
        for k in missing}
    for k in choice.cut:
        builds[k.name] = StepResult("build", SKIPPED, kernel=k.name,
                                    detail=f"past [subset] max_kernels = {len(choice.kernels)}")
    base_results: dict[str, baseline.BaseResult] = {}
    if not present:
        outcome.steps.append(StepResult("generate", SKIPPED, detail="no kernel to build on"))
    else:
        say(f"kernels, in build order: {', '.join(k.name for k in present)}")
        clock = time.monotonic()
        base_results = baseline.ensure(state, rules, sandbox, base, present, paths, say)
        outcome.timings["baseline"] = time.monotonic() - clock
        outcome.base_generate_broken = any(r.stage == "generate" and r.broken
                                           for r in base_results.values())
        builds.update(_generate_and_build(rules, sandbox, present, paths, logs, outcome, say))
        outcome.file_coverage = _coverage(rules, choice, paths, outcome, builds)
    outcome.steps += [builds[k.name] for k in rules.kernels if k.name in builds]
    outcome.kernels = [matrix.judge(k, choice.why(k.name), builds.get(k.name),
                                    base_results.get(k.name)) for k in rules.kernels]
    return outcome


def _coverage(rules: Rules, choice: subset.Choice, paths: baseline.WorkPaths,
              outcome: report.RunOutcome, builds: dict[str, StepResult]
              ) -> list[coverage.FileCoverage] | None:
    """Which changed files each kernel compiled (local builds leave their objects'
    dependency files in the build dirs; RQ workers' builds stay on the workers)."""
    gen = outcome.step("generate")
    if rules.executor != "local" or gen is None or gen.status != SUCCESS:
        return None
    dirs = {k.name: paths.build / k.name for k in rules.kernels
            if k.name in builds and builds[k.name].status in (SUCCESS, FAILED)}
    return coverage.measure(paths.src, paths.out, choice.paths, dirs)


def _generate_and_build(rules: Rules, sandbox: Sandbox, kernels: list,
                        paths: baseline.WorkPaths, logs: Path, outcome: report.RunOutcome,
                        say: Progress) -> dict[str, StepResult]:
    say("generate")
    gen = generate.generate(rules, sandbox, paths.src, paths.out, logs / "generate.log")
    outcome.timings["generate"] = gen.duration
    outcome.steps.append(gen)
    if gen.status != SUCCESS:
        return {k.name: StepResult("build", SKIPPED, kernel=k.name,
                                   detail=f"generation {gen.status}") for k in kernels}
    say(f"build on {len(kernels)} kernel(s), {rules.build_jobs} at a time")
    clock = time.monotonic()
    steps = build.build_all(rules, sandbox, kernels, paths.out, paths.build, logs, say)
    outcome.timings["build"] = time.monotonic() - clock
    return {s.kernel: s for s in steps}


def _finish(state: State, rules: Rules, version: dict, run_id: int, run_dir: Path,
            outcome: report.RunOutcome) -> None:
    infra = outcome.verdict == report.INFRA_ERROR
    if infra and _infra_runs(state, version["id"]) < MAX_INFRA_RETRIES:
        # Not the series' fault: record the run, answer nothing, try again.
        with state.tx() as db:
            _record_steps(db, run_id, outcome)
            db.conn.execute("UPDATE runs SET state='infra-error', verdict=?, finished_at=?,"
                            " workdir=? WHERE id=?", (outcome.verdict, now(), str(run_dir), run_id))
            db.conn.execute("UPDATE versions SET state='ready', state_reason=?, updated_at=?"
                            " WHERE id=?", (INFRA_RETRY_REASON, now(), version["id"]))
        return
    outcome.since_previous = _since_previous(state, version, outcome)
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
                         outcome.base_commit, outcome.base_reason, now(), str(run_dir), run_id))
        # A `retest ... full` asks for one full run, not for every later one.
        db.conn.execute("UPDATE versions SET state=?, verdict=?, force_full=0, updated_at=?"
                        " WHERE id=?", ("done", outcome.verdict, now(), version["id"]))
        outbox.queue(db, key, "report", msg, rcpts, version_id=version["id"], run_id=run_id)
        # Subscribers' copies (mail commands): queued with the report, so exactly once each.
        subscriptions.queue_copies(db, rules, version, msg,
                                   diffinfo.touched_paths(bytes(version["am_mbox"] or b"")), run_id)


def _since_previous(state: State, version: dict, outcome: report.RunOutcome) -> list[str]:
    prev = state.one(
        "SELECT v.revision, r.id AS run_id FROM versions v JOIN runs r ON r.version_id = v.id"
        " WHERE v.series_id = ? AND v.revision < ? AND r.state = 'done'"
        " ORDER BY v.revision DESC, r.id DESC LIMIT 1", (version["series_id"], version["revision"]))
    if prev is None or not outcome.kernels:
        return []
    before = {r["kernel"]: r["verdict"] for r in state.query(
        "SELECT kernel, verdict FROM steps WHERE run_id = ? AND name = 'kernel'", (prev["run_id"],))}
    return matrix.since_previous(outcome.kernels, before, prev["revision"], version["revision"])


def _untestable(state: State, version: dict, run_id: int, problem: str) -> None:
    """b4 cannot make the am-ready patches: tracker.expire answers it as untestable."""
    log.warning("version %d is untestable: %s", version["id"], problem)
    with state.tx() as db:
        db.conn.execute("UPDATE runs SET state='untestable', verdict='untestable', finished_at=?"
                        " WHERE id=?", (now(), run_id))
        db.conn.execute("UPDATE versions SET state='untestable', state_reason=?, verdict='',"
                        " updated_at=? WHERE id=?", (problem, now(), version["id"]))


def _infra_runs(state: State, version_id: int) -> int:
    # Since the last finished run: a later retest starts counting afresh.
    row = state.one("SELECT COUNT(*) AS n FROM runs WHERE version_id = ? AND state = 'infra-error'"
                    " AND id > COALESCE((SELECT MAX(id) FROM runs WHERE version_id = ?"
                    " AND state = 'done'), 0)", (version_id, version_id))
    return row["n"] if row else 0


def _record_steps(db, run_id: int, outcome: report.RunOutcome) -> None:
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
