"""Build workers over RQ: a real redis-server on 127.0.0.1 and two `rq worker`
processes build one series, with the same verdict as the local executor."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.demo import layout
from bot.ingest import spool
from bot.reply import results
from bot.sandbox import bwrap as sandbox
from bot.sandbox import git
from bot.series import tracker
from bot.series.assembly import configure_b4
from bot.state import State
from bot.testrun import pipeline

pytestmark = pytest.mark.integration
VENV_BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_url(tmp_path):
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed: run deploy/setup.sh", pytrace=False)
    port = _free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("redis-server did not start")
    yield f"redis://127.0.0.1:{port}/0"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture
def workers(redis_url, tmp_path):
    procs = []
    for i in range(2):
        env = dict(os.environ, BPBOT_WORKER_DIR=str(tmp_path / f"worker-host-{i}"))
        procs.append(subprocess.Popen(
            [str(VENV_BIN / "rq"), "worker", "--url", redis_url, "--name", f"w{i}",
             "bpbot-builds"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True))
    yield procs
    for p in procs:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def _series(rules) -> bytes:
    tree = rules.tree_path
    assert git.git(tree, "checkout", "-q", "-b", "breaks-4.19").ok
    target = tree / "compat" / "main.c"
    target.write_text(target.read_text() +
                      "\n#if LINUX_VERSION_IN_RANGE(4,19,0, 5,0,0)\nint x = undefined;\n#endif\n")
    assert git.git(tree, "commit", "-qam", "compat: break 4.19").ok
    res = git.git(tree, "format-patch", "--stdout", "-1", "--add-header=Message-ID: <rq@x.org>")
    assert git.git(tree, "checkout", "-q", "main").ok
    return res.output.encode()


def _run(rules, raw):
    state = State(rules.state_dir / "bpbot.sqlite")
    spool.spool(state, "test", [raw], bot_address=rules.bot_address, loop_id=rules.loop_id)
    tracker.assemble(state, rules)
    return results.run_version(state, rules, sandbox.for_rules(rules), pipeline.next_ready(state))


def test_series_built_across_two_rq_workers_matches_local(tmp_path, redis_url, workers):
    rules = layout.prepare(tmp_path / "work", with_list=False)
    rules = dataclasses.replace(rules, grace_seconds=0, subset_full=True)
    configure_b4(rules.bot_name, rules.bot_address)
    raw = _series(rules)
    local = _run(dataclasses.replace(rules, state_dir=tmp_path / "state-local"), raw)
    remote = _run(dataclasses.replace(rules, state_dir=tmp_path / "state-rq", executor="rq",
                                      rq_url=redis_url), raw)
    verdicts = {k.kernel.name: (k.verdict, k.new_errors) for k in remote.kernels}
    assert verdicts == {k.kernel.name: (k.verdict, k.new_errors) for k in local.kernels}
    assert verdicts["4.19"] == ("fail", 1) and remote.verdict == local.verdict == "fail"
    builders = set()
    for step in remote.steps:
        if step.name == "build":
            first = Path(step.log_path).read_text().splitlines()[0]
            assert first.startswith("# built on ")
            builders.add(first.split(":")[-1])
    # Base and series builds: 8 jobs over two workers; both took some.
    assert len(builders) == 2, builders


def test_a_job_that_fails_on_the_workers_is_an_infra_error_not_a_wait(tmp_path, redis_url,
                                                                       workers, monkeypatch):
    from bot.testrun import remote

    rules = layout.prepare(tmp_path / "work", with_list=False)
    rules = dataclasses.replace(rules, executor="rq", rq_url=redis_url)
    monkeypatch.setattr(remote, "pack", lambda directory: b"not a tar archive")
    start = time.monotonic()
    steps = remote.build_all(rules, rules.kernels[:2], tmp_path, tmp_path / "logs")
    assert [s.status for s in steps] == ["infra-error", "infra-error"]
    assert all(s.detail.startswith("worker job") for s in steps), [s.detail for s in steps]
    assert time.monotonic() - start < 60  # retried twice, then given up: no deadline wait
