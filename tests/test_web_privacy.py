"""What the status page and its API show, over a state filled by the real
pipeline: no recipient of a private reply, no host path (state dir, venv,
the Python it was made from), no sandbox wrapper; the build command as a
contributor types it. And the page opens the database read-only."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace

import pytest
from servers import free_port

from bot import status
from bot.demo import layout
from bot.ingest import spool
from bot.reply import outbox, results
from bot.sandbox import bwrap as sandbox
from bot.series import tracker
from bot.series.assembly import configure_b4
from bot.state import State
from bot.testrun import pipeline
from bot.web import page as web

SAMPLE = {p.name[:2]: p for p in layout.sample_list()}
PRIVATE = ("subscriber@private.example.net", "asker@private.example.net")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tested(tmp_path_factory):
    """The series that breaks 3.10, tested; a command reply and a subscriber's
    copy queued for private addresses, one with an SMTP error naming it."""
    work = tmp_path_factory.mktemp("privacy") / "work"
    rules = dataclasses.replace(layout.prepare(work, with_list=False), grace_seconds=0)
    configure_b4(rules.bot_name, rules.bot_address)
    state = State(rules.state_dir / "bpbot.sqlite")
    spool.spool(state, "test", [SAMPLE[n].read_bytes() for n in ("06", "07")],
                bot_address=rules.bot_address, loop_id=rules.loop_id)
    tracker.assemble(state, rules)
    box = sandbox.for_rules(rules)
    while (version := pipeline.next_ready(state)) is not None:
        results.run_version(state, rules, box, version)
    version_id = state.one("SELECT id FROM versions")["id"]
    with state.tx() as db:
        for key, kind, rcpt, vid in ((f"command:<q1@{PRIVATE[1].split('@')[1]}>", "command",
                                      PRIVATE[1], None),
                                     (f"copy:{version_id}:1:{PRIVATE[0]}", "copy", PRIVATE[0],
                                      version_id)):
            msg = EmailMessage()
            msg["Message-ID"] = f"<{kind}@bpbot.example.org>"
            msg.set_content("text")
            outbox.queue(db, key, kind, msg, [rcpt], version_id=vid)
        db.conn.execute("UPDATE outbox SET last_error = ? WHERE kind = 'command'",
                        (f"550 5.1.1 <{PRIVATE[1]}>: mailbox unavailable",))
    return SimpleNamespace(rules=rules, state=state, app=web.StatusApp(rules, state),
                           version=version_id)


def served(app: web.StatusApp, state: State, version: int) -> dict[str, str]:
    """Every page and API answer there is for this state."""
    run = state.one("SELECT id FROM runs")["id"]
    paths = ["/", f"/series/{version}", f"/runs/{run}", "/api/series", f"/api/series/{version}",
             "/api/queue", "/api/health"]
    paths += [f"/log/{r['id']}" for r in state.query("SELECT id FROM steps WHERE log_path != ''")]
    paths += [f"/runs/{run}/base/{r['kernel']}" for r in state.query(
        "SELECT kernel FROM steps WHERE name = 'kernel' AND verdict = 'base-fails'")]
    out = {}
    for path in paths:
        res = app.handle(path)
        assert res.status in (200, 503), path
        out[path] = res.body.decode()
    return out


def host_paths(rules) -> list[str]:
    places = {str(rules.state_dir), os.path.realpath(rules.state_dir), sys.prefix,
              sys.base_prefix}
    return sorted(p for p in places if p not in ("/", "/usr"))


def test_nothing_served_names_a_recipient_a_host_path_or_the_sandbox(tested):
    pages = served(tested.app, tested.state, tested.version)
    logs = [p for p in pages if p.startswith("/log/")]
    assert len(logs) >= 5  # apply, generate, builds
    on_disk = "".join(Path(r["log_path"]).read_text() for r in tested.state.query(
        "SELECT log_path FROM steps WHERE log_path != ''"))
    assert "bwrap" in on_disk and str(tested.rules.state_dir) in on_disk  # what is hidden
    for path, body in pages.items():
        for address in PRIVATE:
            assert address not in body, f"{path} names {address}"
            assert address.split("@")[1] not in body, f"{path} names {address}'s domain"
        for place in host_paths(tested.rules):
            assert place not in body, f"{path} shows the host path {place}"
        for word in ("bwrap", "prlimit", "cgroup.procs", "--ro-bind"):
            assert word not in body, f"{path} shows the sandbox ({word})"


def test_the_queue_still_says_what_waits(tested):
    queue = json.loads(tested.app.handle("/api/queue").body)
    kinds = sorted(r["kind"] for r in queue["outbox"])
    assert kinds == ["command", "copy", "report"]
    assert all("recipients" not in r and "key" not in r for r in queue["outbox"])
    command = next(r for r in queue["outbox"] if r["kind"] == "command")
    assert command["last_error"] == "550 5.1.1 <<address>>: mailbox unavailable"
    page = tested.app.handle("/").body.decode()
    assert "a reply to a mail command" in page


def test_logs_show_the_command_without_the_wrapper(tested):
    build = tested.state.one("SELECT id, log_path FROM steps WHERE name = 'build'"
                             " AND kernel = '3.10'")
    text = tested.app.handle(f"/log/{build['id']}").body.decode()
    first = text.splitlines()[0]
    assert re.fullmatch(r"\$ make -s -C <state>/work/gen/out KLIB_BUILD=\S+/kernels/3\.10"
                        r" O=<state>/work/build/3\.10", first), first
    assert "implicit declaration of function" in text  # the compiler's output stays


def test_the_build_command_is_shown_as_a_contributor_types_it(tested):
    detail = json.loads(tested.app.handle(f"/api/series/{tested.version}").body)
    build = next(s for s in detail["steps"] if s["name"] == "build" and s["kernel"] == "3.10")
    assert "log_path" not in build and build["log_url"] == f"/log/{build['id']}"
    kernel = next(k for k in tested.rules.kernels if k.name == "3.10")
    assert build["commands"] == [f"make -s -C ../out KLIB_BUILD={kernel.path} O=../build-3.10"]
    generate = next(s for s in detail["steps"] if s["name"] == "generate")
    assert generate["commands"] == ["python3 ./gentree.py <upstream> ../out"]
    page = tested.app.handle(f"/series/{tested.version}").body.decode()
    assert "$ make -s -C ../out KLIB_BUILD=" in page and "To reproduce" in page


@pytest.mark.parametrize(("argv", "command"), [
    ("sh -c cg=$1; max=$2; shift 2; mkdir \"$cg\" && echo; rc=$?; rmdir \"$cg\" 2>/dev/null;"
     " exit $rc sh /sys/fs/cgroup/pids/bpbot/1-2-3 512 bwrap --unshare-all --ro-bind /usr /usr"
     " -- /usr/bin/prlimit --core=0 --as=1 -- make -s -C out -- x", "make -s -C out -- x"),
    ("bwrap --dev /dev -- make all", "make all"),
    ("/usr/bin/prlimit --cpu=1 -- python3 gentree.py up out", "python3 gentree.py up out"),
    ("git -C /srv/tree am -3", "git -C /srv/tree am -3"),
])
def test_user_command_strips_each_sandbox_layer(argv, command):
    assert web.user_command(argv) == command


# --- the database: read-only, never created -------------------------------

def copy_db(source: Path, dest: Path) -> None:
    """A consistent copy in WAL mode, closed (so no -wal or -shm file is left)."""
    src, dst = sqlite3.connect(source), sqlite3.connect(dest)
    src.backup(dst)
    dst.execute("PRAGMA journal_mode=WAL")
    src.close()
    dst.close()


def test_the_page_never_writes_the_database(tested, tmp_path):
    """`State()` migrates (a write) on every open; the page's state does not."""
    db = tmp_path / "bpbot.sqlite"
    copy_db(tested.state.path, db)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value = 'from an older bpbot' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    app = web.StatusApp(tested.rules, status.ReadOnlyState(db))  # the logs stay where they are
    assert served(app, app.state, tested.version)["/api/queue"]
    app.state.close()
    assert db.read_bytes() == before
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == \
        ("from an older bpbot",)
    conn.close()


def test_a_missing_database_is_said_clearly_and_not_created(tested, tmp_path):
    rules = dataclasses.replace(tested.rules, state_dir=tmp_path / "state")
    app = web.StatusApp(rules, status.ReadOnlyState(rules.state_dir / "bpbot.sqlite"))
    page = app.handle("/")
    assert page.status == 503 and b"has not created its database yet" in page.body
    health = app.handle("/api/health")
    assert health.status == 503 and json.loads(health.body)["ok"] is False
    assert not rules.state_dir.exists()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and unshare(1) to mount the state read-only")
def test_bpbot_web_serves_a_read_only_state(tested, tmp_path):
    """As deploy/bpbot-web.service runs it: the state dir read-only, the daemon
    stopped (no -wal/-shm files), so SQLite cannot make its WAL index."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    copy_db(tested.state.path, state_dir / "bpbot.sqlite")
    rules_file = tmp_path / "rules.toml"
    text = layout.config.DEMO_RULES.read_text().replace('state_dir = "state"',
                                                        f'state_dir = "{state_dir}"')
    rules_file.write_text(text)
    port = free_port()
    script = (f"mount --bind {state_dir} {state_dir} && mount -o remount,ro,bind {state_dir}"
              f" && exec {sys.executable} -m bot.cli web --config {rules_file} --port {port}")
    proc = subprocess.Popen(["unshare", "-m", "sh", "-c", script], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        body = _wait_for_json(f"http://127.0.0.1:{port}/api/series", proc)
        assert [r["verdict"] for r in body["series"]] == ["fail"]
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert sorted(p.name for p in state_dir.iterdir()) == ["bpbot.sqlite"], out


def _wait_for_json(url: str, proc: subprocess.Popen, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            with urllib.request.urlopen(url, timeout=10) as res:
                return json.loads(res.read())
        except urllib.error.HTTPError as err:
            raise AssertionError(f"{url}: {err.code} {err.read()[:500]!r}") from err
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer in {timeout}s")


def test_a_reason_naming_a_host_path_is_shown_with_the_placeholder(tested):
    reason = f"the bot could not write its report: {tested.rules.state_dir}/work/run-9/x: full"
    with tested.state.tx() as db:
        db.conn.execute("UPDATE versions SET state_reason = ? WHERE id = ?",
                        (reason, tested.version))
    try:
        for path in ("/", "/api/series", f"/api/series/{tested.version}",
                     f"/series/{tested.version}"):
            body = tested.app.handle(path).body.decode()
            assert "<state>/work/run-9/x" in body.replace("&lt;", "<").replace("&gt;", ">"), path
            assert str(tested.rules.state_dir) not in body, path
    finally:
        with tested.state.tx() as db:
            db.conn.execute("UPDATE versions SET state_reason = '' WHERE id = ?",
                            (tested.version,))
