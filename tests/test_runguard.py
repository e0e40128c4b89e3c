"""A hostile patch cannot stop the bot for good, and one run cannot break the next.

- the bot reads a series' files from git's objects, never through a symlink
  the series made (``/dev/zero`` made the daemon read until it died);
- a version that crashed the daemon twice at the same step is answered as an
  infra-error instead of being picked forever;
- ``[limits] run_disk``: a run starts only with that much free disk, a step
  that writes more is stopped, and out/ and the build dirs go after each run;
- a failed state write (disk full, locked) never stops the daemon's loop;
- ``git am`` runs under prlimit and refuses binary files over the limit;
- the RQ archive never packs a link's target nor unpacks a link out of its dir.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import os
import random
import signal
import sqlite3
import tarfile
from pathlib import Path

import pytest

from bot import daemon, isolate, store
from bot.daemon import Daemon
from bot.demo import layout
from bot.ingest import spool
from bot.reply import results
from bot.sandbox import bwrap as sandbox
from bot.sandbox import git
from bot.series import binpatch, tracker
from bot.series.assembly import configure_b4
from bot.state import State, now
from bot.testrun import apply, diskguard, pipeline, remote, subset

CLEAN = ("compat/main.c", "\nint bpbot_clean;\n")


def _setup(tmp_path, **changes):
    rules = layout.prepare(tmp_path / "work", with_list=False)
    rules = dataclasses.replace(rules, grace_seconds=0, **changes)
    configure_b4(rules.bot_name, rules.bot_address)
    return rules, State(rules.state_dir / "bpbot.sqlite")


def _series(rules, name: str, change) -> bytes:
    """A one-patch series made with format-patch; ``change(tree)`` edits the tree."""
    tree = rules.tree_path
    assert git.git(tree, "checkout", "-q", "-b", name, "main").ok
    change(tree)
    assert git.git(tree, "add", "-A").ok
    assert git.git(tree, "commit", "-qm", f"compat: {name}").ok
    res = git.git(tree, "format-patch", "--stdout", "--binary", "-1", "--thread",
                  f"--add-header=Message-ID: <{name}@example.org>")
    assert git.git(tree, "checkout", "-q", "main").ok
    return res.output.encode()


def _append(path: str, text: str):
    def change(tree: Path) -> None:
        target = tree / path
        target.write_text(target.read_text() + text)
    return change


def _queue(rules, state, *raws: bytes) -> None:
    spool.spool(state, "test", list(raws), bot_address=rules.bot_address, loop_id=rules.loop_id)
    tracker.assemble(state, rules)


def _run_next(rules, state):
    version = pipeline.next_ready(state)
    assert version is not None
    return results.run_version(state, rules, sandbox.for_rules(rules), version)


# --- files of the series' tree ---------------------------------------------------

def test_a_symlink_to_dev_zero_in_a_series_is_never_read(tmp_path):
    rules, state = _setup(tmp_path)

    def evil(tree: Path) -> None:
        (tree / "backport-include" / "linux" / "evil.h").symlink_to("/dev/zero")

    raw = _series(rules, "evil-symlink", evil)
    assert b"new file mode 120000" in raw
    _queue(rules, state, raw)
    outcome = _run_next(rules, state)
    # Answered as the series' own result, not a bot failure (MemoryError) nor a
    # hang: a symlink in a series is not tested (nothing follows it).
    assert outcome.verdict == "not-tested", outcome.steps
    assert outcome.assess().reason.startswith("symlinks in a series are not tested")
    assert outcome.step("apply").status == "success"


def test_files_of_the_series_tree_are_read_from_git_only_regular_and_small(tmp_path):
    rules, _ = _setup(tmp_path)
    outside = tmp_path / "outside.h"
    outside.write_text("#if LINUX_VERSION_IS_LESS(4,4,0)\n#endif\n")

    def change(tree: Path) -> None:
        inc = tree / "backport-include" / "linux"
        (inc / "plain.h").write_text("#define PLAIN 1\n")
        (inc / "outside.h").symlink_to(outside)
        (inc / "big.h").write_text("/* big */\n" * (git.READ_CAP // 10 + 1))
        os.mkfifo(tmp_path / "fifo")
        (inc / "fifo.h").symlink_to(tmp_path / "fifo")

    _series(rules, "reads", change)
    tree = rules.tree_path
    assert git.git(tree, "checkout", "-q", "reads").ok
    read = lambda path: git.read_file(tree, path)  # noqa: E731
    assert read("backport-include/linux/plain.h") == "#define PLAIN 1\n"
    assert read("backport-include/linux/outside.h") is None   # a symlink: never followed
    assert read("backport-include/linux/fifo.h") is None      # would block forever
    assert read("backport-include/linux/big.h") is None       # over READ_CAP
    assert read("backport-include/linux") is None             # a directory
    assert read("backport-include/linux/missing.h") is None
    assert read("../../etc/passwd") is None
    assert read("backport-include/linux/*.h") is None         # no pathspec magic


# --- a version that crashes the daemon -----------------------------------------

class Crash(BaseException):
    """Stands for the daemon dying mid-run (OOM killer, a segfault in a library)."""


def _crash_on_bitmap(real_choose):
    def choose(rules_, changes, **kw):
        if any(c.path.endswith("bitmap.h") for c in changes):
            raise Crash()
        return real_choose(rules_, changes, **kw)
    return choose


def child_that_dies_on_bitmap(*args) -> None:
    """isolate.CHILD in the test below: run_version in the child, but a series
    touching bitmap.h kills the process, as reading /dev/zero did."""
    def choose(rules_, changes, **kw):
        if any(c.path.endswith("bitmap.h") for c in changes):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(rules_, changes, **kw)
    real = subset.choose
    subset.choose = choose
    isolate.child_main(*args)


def test_a_version_the_daemon_died_in_runs_in_a_child_and_is_answered_when_it_kills_it(
        tmp_path, monkeypatch):
    rules, state = _setup(tmp_path)
    _queue(rules, state,
           _series(rules, "crasher", _append("backport-include/linux/bitmap.h", "\n/* x */\n")))
    _queue(rules, state, _series(rules, "after", _append(*CLEAN)))
    bot = Daemon(rules, state, sandbox.for_rules(rules), send=False)

    # The daemon dies in the run, is restarted (recover): the run is 'abandoned'.
    with monkeypatch.context() as patch:
        patch.setattr(subset, "choose", _crash_on_bitmap(subset.choose))
        with pytest.raises(Crash):
            _run_next(rules, state)
    bot.recover()
    assert state.query("SELECT state, stage FROM runs") == [{"state": "abandoned",
                                                             "stage": "apply"}]

    # The next pick runs it in a child; the child dies, the daemon goes on.
    monkeypatch.setattr(isolate, "CHILD", child_that_dies_on_bitmap)
    asyncio.run(bot.process())
    crasher = state.one("SELECT * FROM versions WHERE subject LIKE '%crasher%'")
    assert (crasher["state"], crasher["verdict"]) == ("done", "infra-error")
    assert crasher["state_reason"] == (
        "testing this version killed the process that ran it (killed by SIGKILL, e.g. by the "
        "OOM killer); the daemon had already stopped during run 1 (at its apply step); it is "
        "not tried again")
    assert [r["state"] for r in state.query("SELECT state FROM runs ORDER BY id")] == \
        ["abandoned", "crashed", "infra-error"]
    [reply] = state.query("SELECT raw FROM outbox WHERE version_id = ?", (crasher["id"],))
    assert b"NOT TESTED" in reply["raw"]
    assert not (rules.state_dir / "work" / "src").exists()

    # The next version, and never the crasher again.
    assert pipeline.next_ready(state)["subject"] != crasher["subject"]
    asyncio.run(bot.process())
    after = state.one("SELECT * FROM versions WHERE subject LIKE '%after%'")
    assert (after["state"], after["verdict"]) == ("done", "pass")
    assert pipeline.next_ready(state) is None


def test_a_version_killed_with_the_daemon_passes_in_its_child(tmp_path):
    """Killed from outside (a reboot): the run in the child simply passes."""
    rules, state = _setup(tmp_path)
    _queue(rules, state, _series(rules, "clean", _append(*CLEAN)))
    bot = Daemon(rules, state, sandbox.for_rules(rules), send=False)
    version = pipeline.next_ready(state)
    pipeline.start_run(state, version)  # the daemon was killed during this run
    bot.recover()
    assert isolate.suspect(state, version["id"])
    asyncio.run(bot.process())
    runs = [r["state"] for r in state.query("SELECT state FROM runs ORDER BY id")]
    assert runs == ["abandoned", "done"]
    assert state.one("SELECT verdict FROM versions")["verdict"] == "pass"


# --- [limits] run_disk ----------------------------------------------------------

FILLER = '''
import os as _os, sys as _sys, time as _time
if len(_sys.argv) > 2 and not _sys.argv[1].startswith("-"):
    _os.makedirs(_sys.argv[-1], exist_ok=True)
    for _i in range(48):
        with open(_os.path.join(_sys.argv[-1], "fill%d" % _i), "wb") as _f:
            _f.write(b"x" * 1048576)
    _time.sleep(3600)
'''


def test_a_generator_writing_more_than_run_disk_is_stopped_and_the_next_series_passes(
        tmp_path, monkeypatch):
    monkeypatch.setattr(diskguard, "WATCH_SECONDS", 0.2)
    rules, state = _setup(tmp_path, run_disk=8 * 1024 ** 2, generate_timeout=60)

    def filler(tree: Path) -> None:
        gen = tree / "gentree.py"
        text = gen.read_text()
        cut = text.index("TREE = ")
        gen.write_text(text[:cut] + FILLER + text[cut:])

    _queue(rules, state, _series(rules, "fills-the-disk", filler))
    _queue(rules, state, _series(rules, "clean", _append(*CLEAN)))
    work = rules.state_dir / "work"

    outcome = _run_next(rules, state)
    gen = outcome.step("generate")
    assert gen.status == "failed" and gen.detail.startswith("wrote more than run_disk"), gen
    assert gen.duration < 50  # stopped, not the timeout
    assert outcome.verdict == "fail"
    assert not (work / "out").exists() and not (work / "build").exists()

    outcome = _run_next(rules, state)
    assert outcome.verdict == "pass", outcome.steps
    assert not (work / "out").exists() and not (work / "build").exists()


def test_too_little_free_disk_is_an_infra_error_with_the_reason_and_waits(tmp_path,
                                                                         monkeypatch):
    rules, state = _setup(tmp_path, run_disk=256 * 1024 ** 2)
    _queue(rules, state, _series(rules, "clean", _append(*CLEAN)))
    real = diskguard.shutil.disk_usage
    monkeypatch.setattr(diskguard.shutil, "disk_usage",
                        lambda path: real(path)._replace(free=3 * 1024 ** 2))

    outcome = _run_next(rules, state)
    assert outcome.verdict == "infra-error"
    reason = outcome.step("apply").detail
    assert reason.startswith("only 3.0 MiB free on the filesystem of") and \
        "run_disk = 256.0 MiB" in reason
    version = state.one("SELECT * FROM versions")
    assert version["state"] == "ready" and reason in version["state_reason"]
    assert state.query("SELECT * FROM runs") == []  # nothing started, no retry used up
    assert pipeline.next_ready(state) is None        # it waits ...
    later = now() + pipeline.INFRA_RETRY_SECONDS + 1
    assert pipeline.next_ready(state, at=later)["id"] == version["id"]  # ... then is retried

    monkeypatch.setattr(diskguard.shutil, "disk_usage", real)
    assert results.run_version(state, rules, sandbox.for_rules(rules),
                                pipeline.next_ready(state, at=later)).verdict == "pass"


def test_disk_usage_never_follows_links_and_counts_blocks(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"x" * 100_000)
    os.link(tmp_path / "d" / "f", tmp_path / "d" / "hard")  # counted once
    (tmp_path / "d" / "up").symlink_to(tmp_path)            # never followed (a loop)
    (tmp_path / "d" / "zero").symlink_to("/dev/zero")
    with open(tmp_path / "d" / "sparse", "wb") as f:        # 1 GiB that holds nothing
        f.truncate(1024 ** 3)
    used = diskguard.usage([tmp_path / "d"])
    assert 100_000 <= used < 200_000


# --- state writes that fail -----------------------------------------------------

def test_a_failing_state_write_inside_a_run_does_not_stop_the_daemon(tmp_path, monkeypatch,
                                                                     caplog):
    monkeypatch.setattr(daemon, "BACKOFF_SECONDS", 0.05)
    rules, state = _setup(tmp_path)
    _queue(rules, state, _series(rules, "clean", _append(*CLEAN)))
    real, failures = store.record_steps, []

    def record(db, run_id, steps, kernels):
        if len(failures) < 2:
            failures.append(run_id)
            raise sqlite3.OperationalError("database or disk is full")
        return real(db, run_id, steps, kernels)

    monkeypatch.setattr(store, "record_steps", record)
    bot = Daemon(rules, state, sandbox.for_rules(rules), send=False)
    with caplog.at_level(logging.ERROR, logger="bot.daemon"):
        asyncio.run(asyncio.wait_for(bot.run(until_idle=True, tick=0.1), timeout=300))
    assert len(failures) == 2
    assert "a pass of the daemon failed (2 in a row)" in caplog.text
    version = state.one("SELECT * FROM versions")
    assert (version["state"], version["verdict"]) == ("done", "pass")  # not 'untestable'
    runs = [r["state"] for r in state.query("SELECT state FROM runs ORDER BY id")]
    assert runs == ["interrupted", "interrupted", "done"]  # never counted as crashes
    assert len(state.query("SELECT id FROM outbox")) == 1


# --- git am -----------------------------------------------------------------------

def _binary_series(rules, name: str, size: int = 4096) -> bytes:
    def change(tree: Path) -> None:
        (tree / "firmware.bin").write_bytes(random.Random(1).randbytes(size))
        _append(*CLEAN)(tree)  # a mail with only a binary diff is not read as a patch
    return _series(rules, name, change)


def test_a_binary_file_over_the_limit_is_refused_before_git_am(tmp_path):
    rules, state = _setup(tmp_path)
    raw = _binary_series(rules, "big-binary")
    assert b"literal 4096\n" in raw
    # 850 MB declared inside a small mail: the declaration is what counts.
    _queue(rules, state, raw.replace(b"literal 4096\n", b"literal 891289600\n"))
    outcome = _run_next(rules, state)
    apply_step = outcome.step("apply")
    expected = ("patch 1: a binary file of 850.0 MiB (firmware.bin) is over the limit "
                "of 10 MiB")
    assert (outcome.verdict, apply_step.status) == ("not-applied", "failed")
    assert apply_step.detail == expected
    reply = state.query("SELECT raw FROM outbox")[-1]["raw"].decode()
    assert expected in " ".join(reply.split())


def test_a_small_binary_file_applies(tmp_path):
    rules, state = _setup(tmp_path)
    _queue(rules, state, _binary_series(rules, "small-binary"))
    assert _run_next(rules, state).step("apply").status == "success"


def test_a_binary_delta_is_judged_by_the_size_it_expands_to(tmp_path):
    rules, _ = _setup(tmp_path)
    chunk = random.Random(2).randbytes(64 * 1024)
    (rules.tree_path / "blob.bin").write_bytes(chunk)
    assert git.git(rules.tree_path, "add", "blob.bin").ok
    assert git.git(rules.tree_path, "commit", "-qm", "blob").ok

    def grow(tree: Path) -> None:
        (tree / "blob.bin").write_bytes(chunk * 180)  # 11.25 MiB from copies of the old file

    raw = _series(rules, "delta", grow)
    assert b"\ndelta " in raw and len(raw) < 100_000
    [found] = binpatch.binaries(raw)
    assert found.size == len(chunk) * 180
    assert binpatch.over_limit(raw).startswith("patch 1: a binary file of 11.2 MiB (blob.bin)")


def test_git_am_runs_under_the_file_size_limit_and_fails_cleanly(tmp_path):
    rules, state = _setup(tmp_path, build_file_size=64 * 1024)

    def big_text(tree: Path) -> None:
        (tree / "compat" / "table.c").write_text("int table_entry;\n" * 20000)  # 340 KB

    _queue(rules, state, _series(rules, "big-text", big_text))
    outcome = _run_next(rules, state)
    apply_step = outcome.step("apply")
    assert (outcome.verdict, apply_step.status) == ("not-applied", "failed"), outcome.steps
    assert "git am was stopped writing a file over [limits] build_file_size (0.0625 MiB)" \
        in "\n".join(apply_step.tail)
    assert apply.g.git(rules.tree_path, "worktree", "list").output.count("\n") == 1


# --- the RQ archive of the generated package -------------------------------------------

def test_the_archive_packs_links_as_links_and_never_unpacks_one_out_of_its_dir(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("SECRET-MARKER")
    out = tmp_path / "out"
    (out / "include").mkdir(parents=True)
    (out / "include" / "a.h").write_text("#define A 1\n")
    (out / "b.h").symlink_to("include/a.h")
    (out / "shadow").symlink_to(secret)
    (out / "up").symlink_to("../secret")
    os.mkfifo(out / "fifo")

    data = remote.pack(out)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = {m.name.removeprefix("./"): m for m in tar.getmembers()}
        assert members["shadow"].issym() and members["shadow"].linkname == str(secret)
        assert "fifo" not in members
        assert not any(b"SECRET-MARKER" in (tar.extractfile(m).read() if m.isfile() else b"")
                       for m in members.values())

    dest = tmp_path / "unpacked"
    dest.mkdir()
    remote.unpack(data, dest)
    assert (dest / "include" / "a.h").read_text() == "#define A 1\n"
    assert (dest / "b.h").is_symlink()
    assert not (dest / "shadow").is_symlink() and not (dest / "up").is_symlink()


def test_a_delta_split_into_one_byte_lines_is_still_judged_by_its_result_size():
    """A 497-byte patch whose delta lines carry one byte each made git am write
    100 MiB: the size is read however the delta is cut into lines."""
    from bot.series import binpatch
    mbox = (Path(__file__).parent / "data" / "binary" / "delta-one-byte-lines.patch").read_bytes()
    assert [b.size for b in binpatch.binaries(mbox)] == [100 * 1024 * 1024]
    assert "over the limit" in binpatch.over_limit(mbox)
