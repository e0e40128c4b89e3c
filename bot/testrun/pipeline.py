"""Pipeline: test one series version.

apply -> order the kernels (every one is built) -> baseline (cached) -> generate -> build
-> compare with the base -> outcome, handed to bot/reply/results.py, which
writes the run, its steps and the reply in one transaction at the end, so a crash mid-run leaves the version
``running`` and it is run again (in a child process, bot/isolate.py). A run
needs ``[limits] run_disk`` free and may write no more (bot/testrun/diskguard.py);
its out/ and build dirs go when it ends.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bot.config.rules import Rules
from bot.sandbox import git
from bot.sandbox.bwrap import Sandbox
from bot.series import diffinfo, tracker
from bot.state import State, loads, now
from bot.testrun import apply, baseline, coverage, diskguard, executor, generate, matrix, subset
from bot.testrun.outcome import RunOutcome
from bot.testrun.steps import FAILED, INFRA, SKIPPED, SUCCESS, StepResult

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
# (state, rules, version, run_id, run_dir, outcome): records the run, queues its reply.
Finish = Callable[..., None]


INFRA_RETRY_REASON = "retry after an infrastructure error"
INFRA_RETRY_SECONDS = 300


def next_ready(state: State, at: float | None = None) -> dict | None:
    """The oldest version to test; one that just hit an infra-error waits a while."""
    at = now() if at is None else at
    return state.one("SELECT * FROM versions WHERE state IN ('ready', 'running')"
                     " AND NOT (state_reason LIKE ? AND updated_at > ?)"
                     " ORDER BY first_seen, id LIMIT 1",
                     (INFRA_RETRY_REASON + "%", at - INFRA_RETRY_SECONDS))


def run_version(state: State, rules: Rules, sandbox: Sandbox, version: dict, finish: Finish,
                progress: Progress | None = None) -> RunOutcome:
    """Test one version and hand its outcome to ``finish`` (bot/reply/results.py:
    record the run and queue its reply). A failed write of the state
    (sqlite3.Error: disk full, locked) is raised: the caller backs off and the
    version is tried again."""
    say = progress or (lambda text: None)
    if shortage := diskguard.shortage(rules.state_dir, rules.run_disk):
        return _no_space(state, version, shortage)
    run_id = start_run(state, version)
    if run_id is None:
        log.info("version %d changed before its run started; not tested", version["id"])
        return RunOutcome("", "", "", [])
    run_dir = rules.state_dir / "work" / f"run-{run_id}"
    if not version["am_mbox"]:
        mbox, problem = tracker.am_ready(state, version)
        if problem:
            _untestable(state, version, run_id, problem)
            return RunOutcome("", "", "", [StepResult("apply", SKIPPED, detail=problem)])
        with state.tx() as db:
            db.conn.execute("UPDATE versions SET am_mbox=? WHERE id=?", (mbox, version["id"]))
        version = {**version, "am_mbox": mbox}
    paths = baseline.WorkPaths(rules.state_dir / "work")
    say(f"v{version['revision']} {version['subject']!r}: run {run_id}")
    try:
        outcome = _execute(state, rules, sandbox, version, run_dir, paths, run_id,
                           _StageMark(state, run_id, say))
    except sqlite3.Error:
        raise
    except Exception as exc:  # noqa: BLE001 - an infra failure is never the patch's fault
        log.exception("run %d failed inside the bot", run_id)
        outcome = RunOutcome("", "", "", [StepResult("apply", INFRA, detail=str(exc))],
                                    run_id=run_id)
    finally:
        clear_work(rules)
    _set_stage(state, run_id, "report")
    try:
        finish(state, rules, version, run_id, run_dir, outcome)
    except sqlite3.Error:
        raise
    except Exception as exc:  # noqa: BLE001 - never leave the version blocking the queue
        log.exception("run %d could not be reported", run_id)
        _untestable(state, version, run_id, f"the bot could not write its report: {exc}")
    say(f"run {run_id}: {outcome.verdict}")
    return outcome


def start_run(state: State, version: dict) -> int | None:
    """Claim the version and open its run; None when it is no longer to be tested
    (superseded by a new revision while the run was handed to the worker)."""
    with state.tx() as db:
        claimed = db.conn.execute("UPDATE versions SET state='running', updated_at=? WHERE id=?"
                                  " AND state IN ('ready', 'running')", (now(), version["id"]))
        if claimed.rowcount == 0:
            return None
        # A run left 'running' by this process (a failed state write) is closed; one
        # left by a crash was closed as 'abandoned' at start-up (close_crashed_runs),
        # and the version is then run in a child process (bot/isolate.py).
        db.conn.execute("UPDATE runs SET state='interrupted', finished_at=? WHERE version_id=?"
                        " AND state='running'", (now(), version["id"]))
        return db.conn.execute(
            "INSERT INTO runs (version_id, state, started_at, stage) VALUES (?, 'running', ?,"
            " 'prepare')", (version["id"], now())).lastrowid


def clear_work(rules: Rules) -> None:
    """Remove what a run leaves in the work dir: its worktrees (the series' and,
    after a stop during the baseline, the base's), and its out/ and build dirs
    (regenerated by every run: what a run wrote never fills the disk for the next)."""
    paths = baseline.WorkPaths(rules.state_dir / "work")
    if paths.base_src.exists():
        apply.remove_worktree(rules, paths.base_src)
    apply.remove_worktree(rules, paths.src)
    diskguard.clean((paths.out.parent, paths.build))


def mark_interrupted(state: State, version_id: int) -> None:
    """The bot stopped during a run of this version (a stop, not a crash): the run
    is 'interrupted' and the version is tested again at the next start."""
    with state.tx() as db:
        db.conn.execute("UPDATE runs SET state='interrupted', finished_at=? WHERE version_id=?"
                        " AND state='running'", (now(), version_id))
        db.conn.execute("UPDATE versions SET state='ready', updated_at=? WHERE id=?"
                        " AND state='running'", (now(), version_id))


def close_crashed_runs(state: State) -> int:
    """At start-up: a run still 'running' is one the daemon died in (a crash, or
    killed with it); it becomes 'abandoned' (bot/isolate.py)."""
    with state.tx() as db:
        return db.conn.execute("UPDATE runs SET state='abandoned', finished_at=?"
                               " WHERE state='running'", (now(),)).rowcount


class _StageMark:
    """The progress callback of a run that also records the step it is at (the
    first word of each message), so a crash is known by where it happened."""

    def __init__(self, state: State, run_id: int, say: Progress):
        self.state, self.run_id, self.say = state, run_id, say
        self.stage = "prepare"
        self._lock = threading.Lock()

    def __call__(self, text: str) -> None:
        stage = (text.split(maxsplit=1) or [""])[0].rstrip(":").lower()
        with self._lock:
            changed, self.stage = stage != self.stage, stage
        if changed:
            _set_stage(self.state, self.run_id, stage)
        self.say(text)


def _set_stage(state: State, run_id: int, stage: str) -> None:
    try:
        with state.tx() as db:
            db.conn.execute("UPDATE runs SET stage=? WHERE id=?", (stage, run_id))
    except sqlite3.Error as exc:  # bookkeeping only: the run goes on
        log.warning("run %d: cannot record its stage %r: %s", run_id, stage, exc)


def _no_space(state: State, version: dict, problem: str) -> RunOutcome:
    """Not enough disk for a run: no run is started; the version waits like after
    an infra-error (the reason on the status page) without using up its retries."""
    log.warning("version %d waits: %s", version["id"], problem)
    with state.tx() as db:
        db.conn.execute("UPDATE versions SET state='ready', state_reason=?, updated_at=?"
                        " WHERE id=?", (f"{INFRA_RETRY_REASON}: {problem}", now(), version["id"]))
    return RunOutcome("", "", "", [StepResult("apply", INFRA, detail=problem)])


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
    if result.refused:  # over a limit: not tried, or stopped
        step.detail = result.refused
        step.tail = [f"The series is not applied: {result.refused}.",
                     "The bot applies series within size limits; this one is over them."]
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
             paths: baseline.WorkPaths, run_id: int, say: Progress) -> RunOutcome:
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    mbox = bytes(version["am_mbox"] or b"")
    (run_dir / "series.mbox").write_bytes(mbox)
    base = apply.choose_base(rules, version["base_commit"], loads(version["tags"], []))
    outcome = RunOutcome(base.ref, base.commit, base.reason, [], run_id=run_id)
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

    choice = subset.choose(rules, diffinfo.changes(mbox), full=bool(version.get("force_full")),
                           read_new=functools.partial(git.read_file, paths.src))
    outcome.choice = choice
    if not choice.generate:
        outcome.steps.append(StepResult("generate", SKIPPED, detail="nothing to build"))
        outcome.kernels = [matrix.KernelResult(k, matrix.NOT_BUILT, choice.note)
                           for k in rules.kernels]
        return outcome
    return _test_kernels(state, rules, sandbox, base, choice, paths, logs, outcome, say)


ALREADY_APPLIED = "already applied in the base"
KERNEL_DIR_MISSING = "kernel dir missing"


def _already_applied(rules: Rules, outcome: RunOutcome) -> RunOutcome:
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
                  outcome: RunOutcome, say: Progress) -> RunOutcome:
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
              outcome: RunOutcome, builds: dict[str, StepResult]
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
                        paths: baseline.WorkPaths, logs: Path, outcome: RunOutcome,
                        say: Progress) -> dict[str, StepResult]:
    say("generate")
    # The generator writes anywhere in out's parent (its own dir).
    watch = diskguard.DiskWatch((paths.out.parent, paths.build), rules.run_disk)
    gen = generate.generate(rules, sandbox, paths.src, paths.out, logs / "generate.log", watch)
    outcome.timings["generate"] = gen.duration
    outcome.steps.append(gen)
    if gen.status != SUCCESS:
        return {k.name: StepResult("build", SKIPPED, kernel=k.name,
                                   detail=f"generation {gen.status}") for k in kernels}
    say(f"build on {len(kernels)} kernel(s), {rules.build_jobs} at a time")
    clock = time.monotonic()
    steps = executor.build_all(rules, sandbox, kernels, paths.out, paths.build, logs, say, watch=watch)
    outcome.timings["build"] = time.monotonic() - clock
    return {s.kernel: s for s in steps}


def _untestable(state: State, version: dict, run_id: int, problem: str) -> None:
    """b4 cannot make the am-ready patches: bot/reply/notices.py answers it as untestable."""
    log.warning("version %d is untestable: %s", version["id"], problem)
    with state.tx() as db:
        db.conn.execute("UPDATE runs SET state='untestable', verdict='untestable', finished_at=?"
                        " WHERE id=?", (now(), run_id))
        db.conn.execute("UPDATE versions SET state='untestable', state_reason=?, verdict='',"
                        " updated_at=? WHERE id=?", (problem, now(), version["id"]))


