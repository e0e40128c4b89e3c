"""``bpbot check`` leaves no scratch dir behind (pass, fail, error, Ctrl-C,
SIGTERM), keeps it with ``--keep``, and reuses the base builds of an earlier
check of the same rules from its cache."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from bot import check_cache, cli
from bot.demo import layout
from bot.sandbox.limits import PidsCgroup
from bot.testrun import pipeline

SAMPLE = {p.name.split("-", 1)[0]: p for p in layout.sample_list()}
ROOT = Path(__file__).resolve().parent.parent
SLEEP_MARK = "4242"  # the slow build's `sleep`, to find it among the processes


@pytest.fixture
def tmpdir_env(tmp_path, monkeypatch, caplog) -> Path:
    """TMPDIR (where check makes its scratch dir) and XDG_CACHE_HOME in tmp_path;
    the INFO log (where check says what it did with the base) in caplog."""
    caplog.set_level(logging.INFO)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    return tmp


def leftovers(tmp: Path) -> list[str]:
    """Scratch dirs left: temporary ones in TMPDIR, and the cache's own (with the
    cache held, a check's scratch is <cache>/scratch), XDG_CACHE_HOME beside TMPDIR."""
    return sorted([p.name for p in tmp.glob("bpbot-check-*")] +
                  [str(p.relative_to(tmp.parent)) for p in
                   (tmp.parent / "cache").glob("bpbot/check/*/scratch")])


def mails(*numbers: str) -> list[str]:
    return [str(SAMPLE[n]) for n in numbers]


@pytest.mark.parametrize(("numbers", "code"), [(("01", "02", "03", "04", "05"), 0),
                                               (("06", "07"), 1), (("09",), 2), (("08",), 2)],
                         ids=["pass", "fail", "does-not-apply", "no-patch"])
@pytest.mark.parametrize("cache", [[], ["--no-cache"]], ids=["cache", "no-cache"])
def test_no_scratch_dir_is_left(tmpdir_env, capsys, numbers, code, cache):
    assert cli.main(["check", *cache, *mails(*numbers)]) == code
    assert leftovers(tmpdir_env) == []


def test_no_scratch_dir_is_left_after_a_config_error(tmpdir_env, tmp_path, capsys):
    rules = tmp_path / "broken.toml"
    rules.write_text(layout.config.DEMO_RULES.read_text().replace("jobs = 2", "jobs = 0"))
    assert cli.main(["check", "--rules", str(rules), *mails("06", "07")]) == 3
    assert leftovers(tmpdir_env) == []


def test_no_scratch_dir_is_left_after_an_error_in_the_bot(tmpdir_env, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("the bot broke")

    monkeypatch.setattr(pipeline, "run_version", broken)
    with pytest.raises(RuntimeError, match="the bot broke"):
        cli.main(["check", *mails("06", "07")])
    assert leftovers(tmpdir_env) == []


@pytest.mark.parametrize("cache", [[], ["--no-cache"]], ids=["cache", "no-cache"])
def test_keep_keeps_the_scratch_dir_and_says_where(tmpdir_env, capsys, cache):
    assert cli.main(["check", "--keep", *cache, *mails("08")]) == 2
    [kept] = leftovers(tmpdir_env)
    where = tmpdir_env.parent / kept if cache == [] else tmpdir_env / kept
    assert f"kept the scratch dir: {where}" in capsys.readouterr().err
    # The next check with the cache starts from an empty scratch dir, and removes it.
    assert cli.main(["check", *mails("08")]) == 2
    assert leftovers(tmpdir_env) == ([] if cache == [] else [kept])


# --- a signal during a build ---------------------------------------------

def slow_rules(tmp_path: Path) -> Path:
    """The sample tree, with a build that announces itself and then sleeps."""
    work = tmp_path / "work"
    layout.prepare(work, with_list=False)
    text = layout.config.DEMO_RULES.read_text()
    slow = f'command = ["sh", "-c", "touch {{build_dir}}/started; exec sleep {SLEEP_MARK}"]'
    old = 'command = ["make", "-s", "-C", "{output}", "KLIB_BUILD={kernel_path}", "O={build_dir}"]'
    assert old in text
    (work / "rules.toml").write_text(text.replace(old, slow))
    return work / "rules.toml"


def sleepers() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes() == \
                    b"sleep\0" + SLEEP_MARK.encode() + b"\0":
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_a_build_leaves_nothing_behind(tmp_path, sig):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "check", "--rules",
                             str(slow_rules(tmp_path)), *mails("06", "07")], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp.parent.glob("cache/bpbot/check/*/scratch/state/work/build/*/started")):
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "no build started within 120 s"
            time.sleep(0.1)
        assert sleepers(), "the slow build is not running"
        proc.send_signal(sig)
        out = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, out
    assert leftovers(tmp) == [], out
    deadline = time.monotonic() + 10  # a SIGKILLed process may take a moment to go
    while sleepers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sleepers() == [], "the build outlived the check"


def test_a_build_left_by_a_killed_check_is_stopped_before_its_dir_is_reused(tmp_path):
    """Without bubblewrap nothing ends a build with its (SIGKILLed) check, and the
    next check with the cache builds in the same scratch dir: its processes,
    found by their pids cgroup, are killed first."""
    if PidsCgroup.detect() is None:
        pytest.skip("no pids cgroup here: builds are not tracked")
    rules = slow_rules(tmp_path)
    rules.write_text(rules.read_text().replace('sandbox = "bwrap"', 'sandbox = "none"'))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    check = [sys.executable, "-m", "bot.cli", "check", "--rules", str(rules)]
    proc = subprocess.Popen([*check, *mails("06", "07")], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob("cache/bpbot/check/*/scratch/state/work/build/*/started")):
            assert proc.poll() is None and time.monotonic() < deadline, "no build started"
            time.sleep(0.1)
        proc.kill()
        proc.wait()
        assert sleepers(), "the build ended with its check: nothing to test"
        assert subprocess.run([*check, *mails("08")], cwd=ROOT, env=env, capture_output=True,
                              timeout=300).returncode == 2
        deadline = time.monotonic() + 10  # a killed process may take a moment to go
        while sleepers() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sleepers() == []
    finally:
        for pid in sleepers():
            os.kill(pid, signal.SIGKILL)


# --- the cache -------------------------------------------------------------

def test_the_second_check_reuses_the_base(tmpdir_env, tmp_path, capsys, caplog):
    cache = tmp_path / "mine"
    args = ["check", "--json", "--cache", str(cache), *mails("06", "07")]
    assert cli.main(args) == 1
    first = capsys.readouterr().out
    built = re.search(r"base (\w{12}) built on ([\w., ]+); kept in the cache", caplog.text)
    assert built, caplog.text
    commit, kernels = built.groups()
    assert "3.10" in kernels.split(", ")  # the kernel the series breaks
    caplog.clear()
    assert cli.main(args) == 1
    second = capsys.readouterr().out
    assert f"base {commit} reused from the cache ({cache}): {kernels}" in caplog.text
    assert "built on" not in caplog.text
    # The series is built from the base's warm trees, kept in the cache.
    assert "incremental, from the base's build tree" in caplog.text
    assert len(list(cache.glob("state/warm/build-*/build"))) == len(kernels.split(", "))
    # ... built where the series' builds run (the cache's fixed scratch dir): the
    # compiler reads the same paths, so ccache can hit, and no tree is moved.
    places = {json.loads(p.read_text())["built_at"]
              for p in cache.glob("state/warm/build-*/meta.json")}
    assert places == {str(cache / "scratch" / "state" / "work" / "build" / k)
                      for k in kernels.split(", ")}
    strip = [(s["name"], s["kernel"], s["status"], s["verdict"])
             for s in json.loads(second)["series"][0]["steps"]]
    assert strip == [(s["name"], s["kernel"], s["status"], s["verdict"])
                     for s in json.loads(first)["series"][0]["steps"]]
    assert json.loads(second)["replies"][0]["text"] == json.loads(first)["replies"][0]["text"]
    assert leftovers(tmpdir_env) == []
    # The logs of the base builds are kept with their rows.
    assert sorted(p.name for p in cache.glob("state/work/baselines/*/*.log")) == \
        sorted([f"build-{k}.log" for k in kernels.split(", ")] + ["generate.log"])


def test_the_default_cache_is_per_rules_under_xdg_cache_home(tmpdir_env, tmp_path, caplog,
                                                             capsys):
    assert cli.main(["check", *mails("13", "14")]) == 0
    root = tmp_path / "cache" / "bpbot" / "check" / check_cache.rules_hash(None)
    assert (root / "state" / "bpbot.sqlite").exists() and (root / "sample" / "tree").is_dir()
    assert not (root / "sample.new").exists()
    caplog.clear()
    assert cli.main(["check", *mails("13", "14")]) == 0
    assert "reused from the cache" in caplog.text


def test_a_check_while_another_holds_the_cache_builds_in_scratch(tmpdir_env, tmp_path, caplog,
                                                                 capsys):
    cache = tmp_path / "busy"
    with check_cache.CheckCache(cache).locked():
        assert cli.main(["check", "--cache", str(cache), *mails("06", "07")]) == 1
    assert "is in use by another bpbot check; this check builds the base in its scratch dir" \
        in caplog.text
    assert "kept in the cache" not in caplog.text
    assert not (cache / "state").exists() and leftovers(tmpdir_env) == []
    caplog.clear()
    assert cli.main(["check", "--cache", str(cache), *mails("06", "07")]) == 1
    assert "kept in the cache" in caplog.text  # free again: used


def test_no_cache_keeps_nothing(tmpdir_env, tmp_path, caplog, capsys):
    assert cli.main(["check", "--no-cache", *mails("06", "07")]) == 1
    assert not (tmp_path / "cache").exists()
    assert re.search(r"base \w{12} built on 3\.10", caplog.text), caplog.text
    assert "the cache" not in caplog.text
