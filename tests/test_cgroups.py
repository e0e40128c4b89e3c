"""No leftover processes, ever: sandboxed commands are killed by their cgroup.

The leak these tests reproduce: bubblewrap's launcher (in the command's pids
cgroup) clones pid 1 of the sandbox, which waits on an eventfd until the
launcher has written its uid map, and only later asks for PR_SET_PDEATHSIG
(bubblewrap issue 633). A SIGKILL of the launcher in that window leaves the
clone waiting forever. The window is made as wide as we like here with
``--info-fd`` on a full pipe: the launcher blocks writing its info before it
lets the clone run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from proctools import running

from bot.sandbox import bwrap as sandbox
from bot.sandbox import cgroups, limits, proc
from bot.sandbox.limits import Limits

ROOT = Path(__file__).resolve().parent.parent
WAIT = 60.0  # generous: a busy 2-core machine


def wait_until(condition, what: str, seconds: float = WAIT):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


def ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.fixture
def group() -> limits.PidsCgroup:
    found = limits.PidsCgroup.detect()
    if found is None:
        if os.geteuid() == 0:
            pytest.fail("no usable pids cgroup although we are root", pytrace=False)
        pytest.skip("no pids cgroup for a user other than root")
    return found


def full_fifo(path: Path) -> tuple[int, int]:
    """A FIFO whose buffer is full: a writer blocks until someone reads."""
    os.mkfifo(path)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    writer = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    try:
        while True:
            os.write(writer, b"x" * 4096)
    except BlockingIOError:
        pass
    return reader, writer


# The "bot": wraps a sleep in the real sandbox, stalls bubblewrap's launcher on
# --info-fd (a full FIFO), prints the command's cgroup, runs it through proc.
STALLED_BOT = """
import sys
from bot.sandbox import proc
from bot.sandbox import bwrap as sandbox
fifo, marker = sys.argv[1], sys.argv[2]
box = sandbox.Sandbox.detect("bwrap", [])
argv, env = box.wrap(["sleep", marker], readonly=[], writable=[])
at = argv.index("bwrap")
argv[at:at + 1] = ["sh", "-c", 'exec 3>"$0" && exec bwrap --info-fd 3 "$@"', fifo]
print(argv[4], flush=True)
proc.run(argv, env=env, timeout=600)
"""


def test_startup_sweep_kills_a_sandbox_stuck_after_its_launcher_was_killed(group, tmp_path):
    reader, writer = full_fifo(tmp_path / "info")
    bot = subprocess.Popen([sys.executable, "-c", STALLED_BOT, str(tmp_path / "info"), "4343.21"],
                           cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        cg = Path(bot.stdout.readline().strip())
        # Launcher and clone both in the command's cgroup: the launcher blocked on
        # its info, the clone waiting for the launcher's go.
        pids = wait_until(lambda: len(cgroups.processes(cg)) >= 2 and cgroups.processes(cg),
                          "bubblewrap's launcher and clone in the cgroup")
        launcher = next(p for p in pids if ppid(p) not in pids)
        clone = next(p for p in pids if ppid(p) == launcher)
        chain = [bot.pid, ppid(launcher), launcher]  # the bot, the cgroup shell, the launcher
        for pid in chain:
            os.kill(pid, signal.SIGKILL)  # a crash: not the cgroup, not the clone
        bot.wait(timeout=WAIT)
        wait_until(lambda: not running(launcher), "the launcher to die")
        assert running(clone), "the clone died with its launcher: the leak is not reproduced"

        limits.PidsCgroup.detect()  # what the restarted daemon does first

        assert not running(clone), "the stuck sandbox survived the start-up sweep"
        assert not cg.exists(), f"the stale cgroup {cg} is still there"
    finally:
        os.close(writer)
        os.close(reader)
        for pid in cgroups.processes(cg):  # do not leave our own leak behind when the test fails
            os.kill(pid, signal.SIGKILL)


def test_timeout_kills_what_left_the_process_group(group):
    """sandbox = "none": a ``setsid`` child leaves the process group that a timeout
    kills; the command's cgroup still holds it."""
    box = sandbox.Sandbox("none", [], Limits(), group, limits.prlimit_binary())
    marker = "4343.37"
    argv, env = box.wrap(["sh", "-c", f"setsid sleep {marker} </dev/null >/dev/null 2>&1 & "
                                      f"exec sleep {marker}"], readonly=[], writable=[])
    cg = cgroups.child_of(argv)
    res = proc.run(argv, env=env, timeout=2)
    assert res.timed_out, res.output
    left = [p for p in _processes_with(f"sleep\0{marker}") if running(p)]
    assert left == [], f"processes left after the timeout: {left}"
    assert not cg.exists(), f"the command's cgroup {cg} is still there"


def test_timeout_of_a_stalled_bwrap_leaves_no_cgroup(group, tmp_path):
    reader, writer = full_fifo(tmp_path / "info")
    try:
        box = sandbox.Sandbox.detect("bwrap", [])
        argv, env = box.wrap(["sleep", "4343.41"], readonly=[], writable=[])
        at = argv.index("bwrap")
        argv[at:at + 1] = ["sh", "-c", 'exec 3>"$0" && exec bwrap --info-fd 3 "$@"',
                           str(tmp_path / "info")]
        cg = cgroups.child_of(argv)
        res = proc.run(argv, env=env, timeout=2)
        assert res.timed_out, res.output
        assert not cg.exists(), f"the command's cgroup {cg} is still there"
    finally:
        os.close(writer)
        os.close(reader)


def test_processes_left_by_a_finished_command_are_killed(group, caplog):
    box = sandbox.Sandbox("none", [], Limits(), group, limits.prlimit_binary())
    marker = "4343.53"
    argv, env = box.wrap(["sh", "-c", f"setsid sleep {marker} </dev/null >/dev/null 2>&1 &"],
                         readonly=[], writable=[])
    res = proc.run(argv, env=env, timeout=30)
    assert res.ok, res.output
    assert [p for p in _processes_with(f"sleep\0{marker}") if running(p)] == []
    assert "killed 1 processes left running" in caplog.text


def _processes_with(marker: str) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if marker.encode() in (d / "cmdline").read_bytes():
                    found.append(int(d.name))
            except OSError:
                pass
    return found


# --- whose cgroups a sweep may kill ----------------------------------------

def _busy_child(parent: Path, name: str) -> tuple[Path, subprocess.Popen]:
    child = parent / name
    child.mkdir()
    sleeper = subprocess.Popen(["sh", "-c", f'echo $$ > "{child}/cgroup.procs" && exec sleep 600'])
    wait_until(lambda: sleeper.pid in cgroups.processes(child), "the sleep in its cgroup")
    return child, sleeper


def test_sweep_never_kills_a_live_owners_command(group):
    child, sleeper = _busy_child(group.parent, f"{cgroups.owner_tag()}-999-live")
    try:
        os.utime(child, (0, 0))  # old, too: age alone never makes it stale
        group.sweep(force=True)
        assert sleeper.poll() is None, "the sweep killed a live owner's command"
        assert child.exists()
    finally:
        cgroups.kill_and_remove(child)
        sleeper.wait(timeout=WAIT)


def test_sweep_kills_a_cgroup_whose_owner_pid_was_reused(group):
    """Same pid as a running process, another start time: its owner is gone."""
    pid = os.getpid()
    start = cgroups.start_time(pid)
    child, sleeper = _busy_child(group.parent, f"{pid}-{start + 1}-999-reused")
    try:
        assert group.sweep(force=True) >= 1
        assert sleeper.wait(timeout=WAIT) == -signal.SIGKILL
        assert not child.exists()
    finally:
        if child.exists():
            cgroups.kill_and_remove(child)


@pytest.mark.parametrize("name, alive", [
    ("{tag}-3-abcdef12", True),       # this process
    ("{pid}-1-3-abcdef12", False),    # this pid, another start time: a reused pid
    ("{pid}-3-abcdef12", True),       # the older form: the pid alone
    ("0-0-leftover", False),
    ("4194305-1-2-abcdef12", False),  # above any pid_max
    ("not-ours", None),
    ("bpbot-daemon", None),
])
def test_owner_of_a_child_name(name, alive):
    name = name.format(tag=cgroups.owner_tag(), pid=os.getpid())
    assert cgroups.owner_alive(name) is alive


# --- cgroup v2: where the children go (a fake /sys/fs/cgroup) ---------------

def _v2(root: Path, service_controllers: str = "cpu memory pids") -> Path:
    (root / "cgroup.controllers").parent.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text("cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text("cpu memory pids\n")
    service = root / "system.slice" / "bpbot.service"
    service.mkdir(parents=True)
    (service / "cgroup.controllers").write_text(service_controllers + "\n")
    (service / "cgroup.subtree_control").write_text("\n")
    (service / "cgroup.procs").write_text("1234\n1240\n")
    return service


def test_v2_nests_under_the_services_own_cgroup(tmp_path):
    service = _v2(tmp_path)
    found = limits.pids_candidates("bpbot", fs=tmp_path,
                                   self_cgroup="0::/system.slice/bpbot.service\n")
    assert [(c.parent, c.v2, c.service) for c in found] == [
        (service / "bpbot", True, service), (tmp_path / "bpbot", True, None)]


def test_v2_after_the_move_to_the_daemon_leaf_still_nests_in_the_service(tmp_path):
    service = _v2(tmp_path)
    found = limits.pids_candidates(
        "bpbot", fs=tmp_path, self_cgroup=f"0::/system.slice/bpbot.service/{limits.V2_DAEMON_LEAF}\n")
    assert found[0].parent == service / "bpbot" and found[0].service == service


def test_v2_without_pids_in_the_service_uses_the_root(tmp_path):
    _v2(tmp_path, service_controllers="cpu memory")
    found = limits.pids_candidates("bpbot", fs=tmp_path,
                                   self_cgroup="0::/system.slice/bpbot.service\n")
    assert [c.parent for c in found] == [tmp_path / "bpbot"]


def test_v2_in_the_root_cgroup_and_v1(tmp_path):
    _v2(tmp_path)
    assert [c.parent for c in limits.pids_candidates("bpbot", fs=tmp_path, self_cgroup="0::/\n")] \
        == [tmp_path / "bpbot"]
    v1 = tmp_path / "v1"
    (v1 / "pids").mkdir(parents=True)
    (v1 / "pids" / "cgroup.procs").write_text("")
    assert [(c.parent, c.v2) for c in limits.pids_candidates("bpbot", fs=v1, self_cgroup="")] \
        == [(v1 / "pids" / "bpbot", False)]


def test_v2_prepare_moves_the_service_to_a_leaf_and_enables_pids(tmp_path, monkeypatch):
    service = _v2(tmp_path)
    candidate = limits.pids_candidates("bpbot", fs=tmp_path,
                                       self_cgroup="0::/system.slice/bpbot.service\n")[0]
    moved: list[str] = []
    real_write = Path.write_text

    def write(path: Path, text: str, *args, **kwargs):
        if path.name == "cgroup.procs":  # the kernel takes one pid per write
            moved.append(text)
        return real_write(path, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write)
    limits.prepare(candidate)
    monkeypatch.undo()
    assert moved == ["1234", "1240"]
    assert (service / limits.V2_DAEMON_LEAF).is_dir()
    assert (service / "cgroup.subtree_control").read_text() == "+pids"
    assert (service / "bpbot" / "cgroup.subtree_control").read_text() == "+pids"


def test_v2_kill_uses_cgroup_kill(tmp_path):
    (tmp_path / "cgroup.kill").write_text("")
    (tmp_path / "cgroup.procs").write_text("")
    assert cgroups.kill(tmp_path) == 0
    assert (tmp_path / "cgroup.kill").read_text() == "1"


def test_a_sandbox_ending_normally_is_not_reported_as_left_running(group, caplog):
    """bubblewrap's launcher returns while the sandbox's pid 1 may still be exiting;
    that is no leftover (it was reported as one in about one command in ten)."""
    box = sandbox.Sandbox.detect("bwrap", [])
    for _ in range(30):
        argv, env = box.wrap(["true"], readonly=[], writable=[])
        assert proc.run(argv, env=env, timeout=30).ok
        assert not cgroups.child_of(argv).exists()
    assert "left running" not in caplog.text
