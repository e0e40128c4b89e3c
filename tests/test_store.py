"""bot/store/: the transitions of a version and its runs, table by table;
migration 006 (retry_after); and whose fault a failure is (bot/errors.py):
a subject tag naming a branch the tree lacks is the configuration's, answered
NOT TESTED at once, never retried as an infra-error."""

import dataclasses
import email
import email.policy
import shutil
from types import SimpleNamespace

import pytest

from bot import errors, model, store
from bot import state as state_mod
from bot.config import rules as config
from bot.demo import layout
from bot.ingest import spool
from bot.model import RunState, Verdict, VersionState
from bot.reply import results
from bot.sandbox import bwrap as sandbox
from bot.sandbox import git
from bot.series import tracker
from bot.series.assembly import configure_b4
from bot.state import State, now

# --- a state with one series and its versions -------------------------------------


@pytest.fixture
def state(tmp_path):
    return State(tmp_path / "bpbot.sqlite")


def _version(state: State, revision: int = 1, vstate: str = VersionState.READY,
             first_seen: float = 1000.0, **fields) -> int:
    with state.tx() as db:
        row = db.conn.execute("SELECT id FROM series WHERE key = 'k'").fetchone()
        sid = row[0] if row else db.conn.execute(
            "INSERT INTO series (key, subject, first_seen) VALUES ('k', 'foo', 0)").lastrowid
        values = dict(series_id=sid, revision=revision, subject="foo", expected=1, reply_to="r",
                      thread_root="r", state=vstate, first_seen=first_seen, updated_at=first_seen,
                      **fields)
        cols = ",".join(values)
        return db.conn.execute(f"INSERT INTO versions ({cols}) VALUES"
                               f" ({','.join('?' * len(values))})", list(values.values())).lastrowid


def _get(state: State, version_id: int) -> dict:
    return store.version(state, version_id)


def _runs(state: State) -> list[str]:
    return [r["state"] for r in state.query("SELECT state FROM runs ORDER BY id")]


def _outcome(verdict: str, steps=(), kernels=()):
    return SimpleNamespace(verdict=verdict, steps=list(steps), kernels=list(kernels),
                           base_ref="main", base_commit="abc", base_reason="head of main")


# --- the enums are the stored strings ----------------------------------------------


def test_enum_members_are_the_stored_strings(state):
    vid = _version(state, vstate=VersionState.WAITING)
    assert _get(state, vid)["state"] == "waiting" == VersionState.WAITING
    assert state.one("SELECT typeof(state) AS t FROM versions")["t"] == "text"
    assert f"{Verdict.NOT_APPLIED}" == "not-applied"


@pytest.mark.parametrize("verdict, cell, header", [
    ("pass", "ok", "PASS"),
    ("fail", "FAIL", "FAIL"),
    ("base-fails", "base-fails", "BASE-FAILS"),
    ("not-built", "-", "NOT-BUILT"),
    ("infra-error", "INFRA", "INFRA-ERROR"),
    ("not-applied", "does not apply", "NOT-APPLIED"),
    ("not-tested", "NOT TESTED", "NOT-TESTED"),
    ("partial", "PARTIAL", "PARTIAL"),
    ("incomplete", "incomplete", "NOT TESTED (incomplete)"),
    ("untestable", "untestable", "NOT TESTED (untestable)"),
])
def test_one_label_table_has_every_verdict(verdict, cell, header):
    label = model.VERDICT_LABELS[verdict]
    assert (label.cell, model.verdict_header(verdict)) == (cell, header)
    assert label.css in ("good", "bad", "warn", "none", "infra")


def test_the_label_table_covers_the_enums():
    assert set(model.VERDICT_LABELS) == set(Verdict)
    assert set(model.STEP_LABELS) == set(model.StepStatus)


# --- transitions, table-driven -------------------------------------------------------


def _start(state, vid):
    with state.tx() as db:
        return store.start_run(db, vid)


TRANSITIONS = [
    # (name, starting version state, transition, expected state, expected verdict)
    ("claim", VersionState.READY, lambda db, v, r: store.start_run(db, v),
     VersionState.RUNNING, ""),
    ("finish", VersionState.RUNNING,
     lambda db, v, r: store.finish(db, v, r, _outcome(Verdict.PASS), "/w"),
     VersionState.DONE, "pass"),
    ("answered infra-error", VersionState.RUNNING,
     lambda db, v, r: store.finish(db, v, r, _outcome(Verdict.INFRA_ERROR), "/w", "given up"),
     VersionState.DONE, "infra-error"),
    ("retry after", VersionState.RUNNING,
     lambda db, v, r: store.finish_for_retry(db, v, r, _outcome(Verdict.INFRA_ERROR), "/w",
                                             "retry", now() + 60),
     VersionState.READY, ""),
    ("untestable", VersionState.RUNNING,
     lambda db, v, r: store.mark_untestable(db, v, r, "b4 failed"), VersionState.UNTESTABLE, ""),
    ("untestable answered", VersionState.UNTESTABLE,
     lambda db, v, r: store.answer_untestable(db, v), VersionState.UNTESTABLE, "untestable"),
    ("incomplete", VersionState.WAITING, lambda db, v, r: store.answer_incomplete(db, v),
     VersionState.INCOMPLETE, "incomplete"),
    ("incomplete, but it moved on", VersionState.READY,
     lambda db, v, r: store.answer_incomplete(db, v), VersionState.READY, ""),
    ("retest", VersionState.DONE,
     lambda db, v, r: store.queue_retest(db, v, "retest asked by m", True, now()),
     VersionState.READY, ""),
    ("superseded", VersionState.WAITING, lambda db, v, r: store.supersede(db, v, "why"),
     VersionState.SUPERSEDED, ""),
]


@pytest.mark.parametrize("name, start, transition, end, verdict", TRANSITIONS,
                         ids=[t[0] for t in TRANSITIONS])
def test_transition(state, name, start, transition, end, verdict):
    vid = _version(state, vstate=start)
    run_id = None
    if start == VersionState.RUNNING:
        run_id = _start(state, vid)
    with state.tx() as db:
        transition(db, vid, run_id)
    v = _get(state, vid)
    assert (v["state"], v["verdict"]) == (end, verdict)


@pytest.mark.parametrize("transition, run_state, run_verdict", [
    (lambda db, v, r: store.finish(db, v, r, _outcome(Verdict.FAIL), "/w"), "done", "fail"),
    (lambda db, v, r: store.finish(db, v, r, _outcome(Verdict.INFRA_ERROR), "/w", "x"),
     "infra-error", "infra-error"),
    (lambda db, v, r: store.finish_for_retry(db, v, r, _outcome(Verdict.INFRA_ERROR), "/w",
                                             "retry", 0), "infra-error", "infra-error"),
    (lambda db, v, r: store.mark_untestable(db, v, r, "b4"), "untestable", "untestable"),
    (lambda db, v, r: store.mark_crashed(db, v), "crashed", ""),
    (lambda db, v, r: store.close_crashed_runs(db), "abandoned", ""),
])
def test_a_run_ends_in_one_state(state, transition, run_state, run_verdict):
    vid = _version(state)
    run_id = _start(state, vid)
    with state.tx() as db:
        transition(db, vid, run_id)
    run = state.one("SELECT * FROM runs WHERE id = ?", (run_id,))
    assert (run["state"], run["verdict"]) == (run_state, run_verdict)
    assert run["finished_at"] is not None
    assert run_state in set(RunState)


def test_claiming_again_closes_the_run_left_running_as_interrupted(state):
    vid = _version(state)
    _start(state, vid)
    _start(state, vid)
    assert _runs(state) == ["interrupted", "running"]


def test_finish_records_steps_and_matrix_and_resets_full(state):
    vid = _version(state, force_full=1)
    run_id = _start(state, vid)
    step = SimpleNamespace(name="apply", kernel="", status="success", detail="1 patch applied",
                           diagnostics=[], log_path="/l", started_at=1.0, duration=0.5)
    kernel = SimpleNamespace(kernel=SimpleNamespace(name="6.1"), verdict=Verdict.PASS, detail="",
                             why="default", new_errors=0, new_warnings=0)
    with state.tx() as db:
        store.finish(db, vid, run_id, _outcome(Verdict.PASS, [step], [kernel]), "/w")
    rows = state.query("SELECT name, kernel, status, verdict FROM steps ORDER BY id")
    assert rows == [{"name": "apply", "kernel": "", "status": "success", "verdict": ""},
                    {"name": "kernel", "kernel": "6.1", "status": "pass", "verdict": "pass"}]
    assert _get(state, vid)["force_full"] == 0
    assert state.one("SELECT base_ref FROM runs")["base_ref"] == "main"


def test_retry_after_is_a_time_not_a_reason(state):
    vid = _version(state)
    with state.tx() as db:
        store.retry_after(db, vid, "any words at all", 5000.0)
    assert store.next_ready(state, at=4999.0) is None
    assert store.next_ready(state, at=5000.0)["id"] == vid
    # A retest is ready at once, whatever the wait was.
    with state.tx() as db:
        store.queue_retest(db, vid, "retest asked by m", False, 1.0)
    assert store.next_ready(state, at=1.0)["id"] == vid


def test_next_ready_takes_the_oldest_ready_or_running(state):
    _version(state, revision=1, vstate=VersionState.DONE, first_seen=1)
    waiting = _version(state, revision=2, vstate=VersionState.WAITING, first_seen=2)
    ready = _version(state, revision=3, first_seen=4)
    running = _version(state, revision=4, vstate=VersionState.RUNNING, first_seen=3)
    assert store.next_ready(state)["id"] == running
    run_id = _start(state, running)
    with state.tx() as db:
        store.finish(db, running, run_id, _outcome(Verdict.PASS), "/w")
    assert store.next_ready(state)["id"] == ready
    assert waiting != ready


def test_supersede_older_spares_a_version_tested_before(state):
    tested = _version(state, revision=1, vstate=VersionState.READY)
    untested = _version(state, revision=2, vstate=VersionState.WAITING)
    latest = _version(state, revision=3, vstate=VersionState.WAITING)
    run_id = _start(state, tested)
    with state.tx() as db:
        store.finish(db, tested, run_id, _outcome(Verdict.PASS), "/w")
        store.queue_retest(db, tested, "retest", False, now())
        assert store.supersede_older(db) == 1
    assert _get(state, untested)["state"] == "superseded"
    assert _get(state, untested)["state_reason"] == "v3 arrived before this version was tested"
    assert _get(state, tested)["state"] == "ready"
    assert _get(state, latest)["state"] == "waiting"


def test_open_versions_counts_an_untestable_one_until_answered(state):
    vid = _version(state, vstate=VersionState.DONE)
    assert store.open_versions(state) == 0
    with state.tx() as db:
        store.mark_untestable(db, vid, None, "b4")
    assert store.open_versions(state) == 1
    assert [v["id"] for v in store.untestable_unanswered(state)] == [vid]
    with state.tx() as db:
        store.answer_untestable(db, vid)
    assert store.open_versions(state) == 0


def test_crash_suspects_and_infra_runs_count_since_the_last_answer(state):
    vid = _version(state)
    for end in (store.close_crashed_runs, None):
        run_id = _start(state, vid)
        with state.tx() as db:
            if end:
                end(db)
            else:
                store.finish_for_retry(db, vid, run_id, _outcome(Verdict.INFRA_ERROR), "/w",
                                       "retry", 0)
    assert store.infra_runs(state, vid) == 1
    assert store.crash_suspects(state, vid) == []  # the infra-error run ended a try
    run_id = _start(state, vid)
    with state.tx() as db:
        store.close_crashed_runs(db)
    assert [r["id"] for r in store.crash_suspects(state, vid)] == [run_id]
    run_id = _start(state, vid)
    with state.tx() as db:
        store.finish(db, vid, run_id, _outcome(Verdict.PASS), "/w")
    assert store.infra_runs(state, vid) == 0 and store.crash_suspects(state, vid) == []
    assert _runs(state) == ["abandoned", "infra-error", "abandoned", "done"]


def test_migration_006_keeps_the_wait_of_a_version_after_an_infra_error(tmp_path, monkeypatch):
    old = tmp_path / "migrations"
    old.mkdir()
    for script in state_mod.migrations():
        if script.name < "006":
            shutil.copy(script, old)
    monkeypatch.setattr(state_mod, "MIGRATIONS_DIR", old)
    before = State(tmp_path / "s.sqlite")
    waits = _version(before, revision=1, state_reason="retry after an infrastructure error: x",
                     first_seen=100.0)
    fresh = _version(before, revision=2, state_reason="retest asked by m", first_seen=100.0)
    before.close()
    monkeypatch.undo()
    after = State(tmp_path / "s.sqlite")
    assert _get(after, waits)["retry_after"] == 400.0
    assert _get(after, fresh)["retry_after"] == 0


# --- whose fault ----------------------------------------------------------------------


def test_errors_say_whose_fault():
    assert issubclass(errors.ConfigError, ValueError)  # as before
    assert config.ConfigError is errors.ConfigError  # the old import path still works
    for kind in (errors.PatchError, errors.ConfigError, errors.InfraError):
        assert issubclass(kind, errors.BotError)
    err = errors.ConfigError("rules.toml", "tree.branch", "is missing")
    assert str(err) == "rules.toml: tree.branch: is missing"


def _tagged_series(rules, tag: str) -> bytes:
    tree = rules.tree_path
    assert git.git(tree, "checkout", "-q", "-b", "tagged", "main").ok
    target = tree / "compat" / "main.c"
    target.write_text(target.read_text() + "\nint bpbot_tagged;\n")
    assert git.git(tree, "commit", "-qam", "compat: tagged").ok
    res = git.git(tree, "format-patch", "--stdout", "-1", "--thread", f"--subject-prefix=PATCH {tag}",
                  "--add-header=Message-ID: <tagged@example.org>")
    assert git.git(tree, "checkout", "-q", "main").ok
    return res.output.encode()


def test_a_subject_tag_branch_missing_from_the_tree_is_not_tested_at_once(tmp_path):
    """The configuration's fault: NOT TESTED with the reason, one run, no retry,
    never an infra-error."""
    rules = layout.prepare(tmp_path / "work", with_list=False)
    rules = dataclasses.replace(rules, grace_seconds=0,
                                tag_branches={**rules.tag_branches, "6.1": "linux-6.1.y"})
    configure_b4(rules.bot_name, rules.bot_address)
    state = State(rules.state_dir / "bpbot.sqlite")
    spool.spool(state, "test", [_tagged_series(rules, "6.1")], bot_address=rules.bot_address,
                loop_id=rules.loop_id)
    tracker.assemble(state, rules)
    version = store.next_ready(state)
    assert version is not None and "6.1" in version["tags"]

    outcome = results.run_version(state, rules, sandbox.for_rules(rules), version)

    assert outcome.verdict == Verdict.NOT_TESTED
    assert "tree.tag_branches.6.1" in outcome.assess().reason
    v = _get(state, version["id"])
    assert (v["state"], v["verdict"]) == ("done", "not-tested")
    assert _runs(state) == ["done"]
    assert store.next_ready(state, at=now() + 3600) is None  # not retried
    [reply] = state.query("SELECT raw FROM outbox WHERE kind = 'report'")
    msg = email.message_from_bytes(bytes(reply["raw"]), policy=email.policy.default)
    assert msg["X-bpbot-Verdict"] == "NOT-TESTED"
    body = msg.get_content()
    assert "linux-6.1.y" in body and "infrastructure" not in body


@pytest.mark.parametrize("old, new, complete, fingerprint, expected", [
    ("waiting", "ready", True, "a", "ready"),           # the last patch arrived
    ("ready", "waiting", False, "a", "waiting"),
    ("incomplete", "ready", True, "a", "ready"),         # completed after its notice
    ("untestable", "ready", True, "a", "ready"),
    ("untestable", "untestable", True, "a", "untestable"),
    ("running", "ready", True, "b", "running"),         # a run is never disturbed
    ("done", "ready", True, "a", "done"),               # a resend of the same patches
    ("done", "ready", True, "b", "ready"),              # the patches changed
    ("superseded", "ready", True, "b", "superseded"),
])
def test_assembly_moves_a_known_version_only_where_allowed(state, old, new, complete,
                                                          fingerprint, expected):
    vid = _version(state, vstate=old, fingerprint="a")
    sid = _get(state, vid)["series_id"]
    with state.tx() as db:
        fresh = store.assembled(db, sid, 1, {"subject": "foo", "updated_at": 2000.0}, new, "",
                                complete=complete, fingerprint=fingerprint)
    assert not fresh
    assert _get(state, vid)["state"] == expected


def test_assembly_stores_a_new_version_in_its_state(state):
    _version(state)
    sid = state.one("SELECT id FROM series")["id"]
    values = dict(subject="foo", expected=2, reply_to="r2", thread_root="r2", updated_at=3000.0)
    with state.tx() as db:
        assert store.assembled(db, sid, 2, values, VersionState.WAITING, "missing 2 of 2",
                               complete=False, fingerprint="")
    v = state.one("SELECT * FROM versions WHERE revision = 2")
    assert (v["state"], v["state_reason"], v["first_seen"]) == ("waiting", "missing 2 of 2", 3000.0)
