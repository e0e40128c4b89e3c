"""The build sandbox, tried for real: bubblewrap, prlimit and the pids cgroup.

Each test runs a small shell or Python program in ``Sandbox.wrap`` the way
generate.py and build.py do, and checks from outside what it could and
could not do.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bot import cli
from bot.config import rules as config
from bot.demo import layout
from bot.sandbox import bwrap as sandbox
from bot.sandbox import limits, proc
from bot.sandbox.limits import Limits

BWRAP = shutil.which("bwrap") is not None
needs_bwrap = pytest.mark.skipif(not BWRAP, reason="bubblewrap not installed (deploy/setup.sh)")
PY = sys.executable


@pytest.fixture
def box(tmp_path) -> sandbox.Sandbox:
    if not BWRAP:
        pytest.fail("bubblewrap is not installed: run deploy/setup.sh; sandbox tests are not "
                    "skipped on purpose", pytrace=False)
    state = tmp_path / "state"
    state.mkdir()
    (state / "bpbot.sqlite").write_text("SQLite format 3 SECRET-DB")
    secret = tmp_path / "imap-password"
    secret.write_text("SECRET-PASSWORD")
    return sandbox.Sandbox.detect("bwrap", [state, secret])


def run(box: sandbox.Sandbox, script: str, *, readonly=(), writable=(), cwd=None,
        timeout: float = 30, shell: str = "sh") -> proc.ProcResult:
    argv, env = box.wrap([shell, "-c", script] if shell == "sh" else [PY, "-c", script],
                         readonly=list(readonly), writable=list(writable), cwd=cwd)
    return proc.run(argv, env=env, timeout=timeout)


def test_wrap_has_every_hardening_flag(box):
    argv, env = box.wrap(["true"], readonly=[], writable=[])
    joined = " ".join(argv)
    for flag in ("--unshare-all", "--unshare-user", "--uid 1000", "--gid 1000", "--cap-drop ALL",
                 "--die-with-parent", "--new-session", "--tmpfs /tmp", "--proc /proc",
                 "--dev /dev"):
        assert flag in joined
    assert "--ro-bind / /" not in joined  # a minimal root, not the host's
    assert argv[argv.index("--") + 1].endswith("prlimit")


def test_clean_environment(box, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SECRET-ENV")
    monkeypatch.setenv("PATH", "/root/evil/bin:" + os.environ["PATH"])
    res = run(box, "env")
    assert res.ok, res.output
    assert "SECRET-ENV" not in res.output and "/root/evil" not in res.output
    env = dict(line.split("=", 1) for line in res.output.splitlines() if "=" in line)
    assert env["PATH"] == sandbox.CLEAN_PATH and env["HOME"] == "/tmp" and env["LC_ALL"] == "C"


def test_source_read_only_and_only_its_own_dir_writable(box, tmp_path):
    src, out, other = tmp_path / "src", tmp_path / "out", tmp_path / "other"
    for d in (src, other):
        d.mkdir()
    (src / "file").write_text("original")
    res = run(box, f"""
        echo x > {out}/made && echo OUT-OK
        echo x > {src}/file || echo SRC-RO
        rm -f {src}/file || echo RM-RO
        echo x > {other}/new || echo OTHER-NOT-THERE
        mount -o remount,rw {src} 2>/dev/null || echo REMOUNT-DENIED
        echo x > /usr/bin/bpbot-test 2>/dev/null || echo USR-RO
        id -u
    """, readonly=[src], writable=[out], cwd=src)
    for word in ("OUT-OK", "SRC-RO", "RM-RO", "OTHER-NOT-THERE", "REMOUNT-DENIED", "USR-RO"):
        assert word in res.output, res.output
    assert res.output.split()[-1] == "1000"
    assert (out / "made").exists()
    assert (src / "file").read_text() == "original"
    assert not (other / "new").exists() and not Path("/usr/bin/bpbot-test").exists()


def test_memory_backed_mounts_are_read_only(box):
    # /, /etc and /dev are tmpfs made by bwrap: writable, they would let a
    # build fill the host's memory.
    res = run(box, "for f in /x /etc/x /dev/x; do echo x > $f 2>/dev/null "
                   "&& echo WROTE $f; done; echo x > /dev/null && echo NULL-OK")
    assert "WROTE" not in res.output and "NULL-OK" in res.output, res.output


def test_dev_shm_is_private_and_size_limited_like_tmp(box):
    # Python's multiprocessing (coccinelle's pycocci) needs a writable /dev/shm;
    # it is a private tmpfs with the /tmp size limit, not the host's.
    res = run(box, "echo x > /dev/shm/x && echo WROTE; df -B1 --output=size /dev/shm | tail -n 1")
    assert "WROTE" in res.output, res.output
    if box.limits.tmp_size:
        assert int(res.output.split()[-1]) <= box.limits.tmp_size, res.output


def test_no_capabilities_and_no_new_user_namespace(box):
    res = run(box, "grep ^CapEff /proc/self/status; unshare -U true 2>&1 || echo NO-USERNS")
    assert "CapEff:\t0000000000000000" in res.output
    if box.disable_userns:
        assert "NO-USERNS" in res.output


def test_state_rules_and_password_files_hidden_even_inside_a_bound_dir(box, tmp_path):
    # The whole tmp dir is bound read-only: the state dir and the password
    # file inside it must still be hidden.
    res = run(box, f"cat {tmp_path}/state/bpbot.sqlite {tmp_path}/imap-password; "
                   f"ls -a {tmp_path}/state", readonly=[tmp_path])
    assert "SECRET" not in res.output, res.output
    assert (tmp_path / "state" / "bpbot.sqlite").exists()


def test_host_files_outside_the_minimal_root_are_invisible(box):
    # uid 1000 inside is root outside: any root-owned file it could see it could read.
    home_secret = Path.home() / f".bpbot-sandbox-test-{os.getpid()}"
    home_secret.write_text("SECRET-HOME")
    try:
        res = run(box, f"cat /etc/shadow {home_secret}; ls /home /srv /var /sys 2>&1; echo END")
    finally:
        home_secret.unlink()
    assert "root:" not in res.output and "SECRET" not in res.output, res.output
    assert res.output.count("No such file or directory") == 6, res.output


def test_private_tmp(box):
    marker = f"/tmp/bpbot-sandbox-{os.getpid()}"
    res = run(box, f"echo x > {marker} && cat {marker}")
    assert res.ok and res.output.strip() == "x"
    assert not Path(marker).exists()


def test_no_network(box):
    # A listener on the host's loopback: the sandbox has its own (empty) one.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted: list = []

    def accept() -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                accepted.append(listener.accept())
            except OSError:
                continue

    t = threading.Thread(target=accept)
    t.start()
    res = run(box, f"""
import socket
for host, port in (("127.0.0.1", {port}), ("1.1.1.1", 80), ("deb.debian.org", 80)):
    try:
        socket.create_connection((host, port), timeout=2)
        print("CONNECTED", host)
    except OSError as exc:
        print("refused", host, type(exc).__name__)
""", shell="python")
    t.join()
    listener.close()
    assert "CONNECTED" not in res.output, res.output
    assert res.output.count("refused") == 3
    assert accepted == []


def test_address_space_limit(tmp_path):
    small = sandbox.Sandbox.detect("bwrap", [], Limits(address_space=512 * 1024 ** 2))
    res = run(small, "b = bytearray(2 * 1024 ** 3); print('ALLOCATED')", shell="python")
    assert "MemoryError" in res.output and "ALLOCATED" not in res.output


def test_cpu_time_limit():
    small = sandbox.Sandbox.detect("bwrap", [], Limits(cpu_seconds=1))
    started = time.monotonic()
    res = run(small, "while True: pass", shell="python", timeout=20)
    assert not res.timed_out and not res.ok
    assert time.monotonic() - started < 10  # SIGXCPU at 1 s of CPU, not the wall timeout


def test_file_size_limit(tmp_path):
    small = sandbox.Sandbox.detect("bwrap", [], Limits(file_size=1024 ** 2))
    out = tmp_path / "out"
    res = run(small, f"head -c 5000000 /dev/zero > {out}/big; echo rc=$?", writable=[out])
    assert "File size limit exceeded" in res.output or "rc=153" in res.output, res.output
    assert (out / "big").stat().st_size <= 1024 ** 2


def test_private_tmp_is_size_limited():
    small = sandbox.Sandbox.detect("bwrap", [], Limits(tmp_size=8 * 1024 ** 2, file_size=0))
    res = run(small, "head -c 50000000 /dev/zero > /tmp/big; echo rc=$?; du -k /tmp/big")
    assert "No space left on device" in res.output, res.output
    assert int(res.output.split()[-2]) <= 8 * 1024


def _processes_with(marker: str) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if marker.encode() in (d / "cmdline").read_bytes():
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


def test_fork_bomb_is_contained_and_killed_at_the_timeout():
    small = sandbox.Sandbox.detect("bwrap", [], Limits(pids=40))
    assert small.pids_cgroup is not None or os.geteuid() != 0, small.describe()
    marker = str(600000 + os.getpid() % 100000)
    started = time.monotonic()
    res = run(small, f"b() {{ b | b & }}; b; exec sleep {marker}", timeout=4)
    assert res.timed_out
    assert time.monotonic() - started < 15
    time.sleep(0.3)
    assert _processes_with(f"sleep\0{marker}") == []
    # The bot can still start processes at once.
    assert proc.run(["true"], timeout=5).ok


def test_processes_die_with_the_sandbox(box):
    marker = "987654"
    res = run(box, f"setsid nohup sleep {marker} >/dev/null 2>&1 & sleep {marker}", timeout=2)
    assert res.timed_out
    time.sleep(0.3)
    assert _processes_with(f"sleep\0{marker}") == []


def test_output_is_capped(box):
    argv, env = box.wrap(["sh", "-c", "head -c 200000000 /dev/zero | tr '\\0' x"],
                         readonly=[], writable=[])
    res = proc.run(argv, env=env, timeout=60, output_cap=10_000)
    assert res.truncated and len(res.output) < 11_000


@pytest.mark.skipif(os.geteuid() != 0, reason="about root only")
def test_rlimit_nproc_is_not_enforced_for_root_hence_the_cgroup(tmp_path):
    """Why a pids cgroup: as root, prlimit --nproc does not stop a fork bomb."""
    argv = ["prlimit", "--nproc=5", "--", "bwrap", "--unshare-all", "--unshare-user", "--uid",
            "1000", "--cap-drop", "ALL", "--ro-bind", "/", "/", "--proc", "/proc", "--dev",
            "/dev", "--", "sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 1 & done; "
            "echo STARTED"]
    res = proc.run(argv, timeout=20)
    assert "STARTED" in res.output and "fork" not in res.output.lower()


def test_pids_cgroup_leftovers_are_swept(monkeypatch):
    group = limits.PidsCgroup.detect()
    if group is None:
        pytest.skip("no pids cgroup here")
    leftover = group.parent / "0-0-leftover"
    leftover.mkdir(exist_ok=True)
    monkeypatch.setattr(limits, "SWEEP_AGE", 0.0)
    assert group.sweep(force=True) >= 1
    assert not leftover.exists()


def test_sandbox_none_still_limits_and_cleans_env(monkeypatch, caplog):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SECRET-ENV")
    with caplog.at_level(logging.WARNING):
        none = sandbox.Sandbox.detect("none", [], Limits(address_space=512 * 1024 ** 2))
    assert "WITHOUT a sandbox" in caplog.text
    argv, env = none.wrap([PY, "-c", "import os; b = bytearray(2 * 1024 ** 3)"],
                          readonly=[], writable=[])
    assert "bwrap" not in argv and "AWS_SECRET_ACCESS_KEY" not in env
    res = proc.run(argv, env=env, timeout=30)
    assert "MemoryError" in res.output


def test_missing_bwrap_refuses_unless_rules_say_none(monkeypatch, tmp_path):
    real_which = shutil.which
    monkeypatch.setattr(sandbox.shutil, "which",
                        lambda name, *a, **k: None if name == "bwrap" else real_which(name, *a, **k))
    with pytest.raises(sandbox.SandboxError) as err:
        sandbox.Sandbox.detect("bwrap", [], file="rules/x.toml")
    assert isinstance(err.value, config.ConfigError)
    assert "rules/x.toml: build.sandbox: bubblewrap (bwrap) is not installed" in str(err.value)
    assert sandbox.Sandbox.detect("none", []).mode == "none"


def test_serve_without_bwrap_says_so_and_does_not_start(monkeypatch, tmp_path, capsys):
    rules = layout.prepare(tmp_path / "work", with_list=False)
    real_which = shutil.which
    monkeypatch.setattr(sandbox.shutil, "which",
                        lambda name, *a, **k: None if name == "bwrap" else real_which(name, *a, **k))
    monkeypatch.setenv("BPBOT_DEMO_DIR", str(tmp_path / "work"))
    assert rules.sandbox == "bwrap"
    assert cli.main(["serve"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "configuration error" in err and "build.sandbox" in err and "bubblewrap" in err


def test_generator_of_the_sample_tree_runs_in_the_sandbox(box, tmp_path):
    """The real generator and one real build, as the pipeline runs them."""
    rules = layout.prepare(tmp_path / "work", with_list=False)
    out, build_dir = tmp_path / "pkg", tmp_path / "build"
    argv, env = box.wrap([PY, str(rules.tree_path / "gentree.py"), str(rules.upstream), str(out)],
                         readonly=[rules.tree_path, rules.upstream], writable=[out],
                         cwd=rules.tree_path)
    res = proc.run(argv, env=env, timeout=60)
    assert res.ok, res.output
    kernel = rules.kernels[-1]
    argv, env = box.wrap(["make", "-s", "-C", str(out), f"KLIB_BUILD={kernel.path}",
                          f"O={build_dir}"], readonly=[out, kernel.path], writable=[build_dir],
                         cwd=out)
    res = proc.run(argv, env=env, timeout=120)
    assert res.ok, res.output
    assert list(build_dir.rglob("*.o"))


def test_bench_prints_the_overhead():
    bench = Path(__file__).resolve().parent.parent / "bench" / "sandbox.py"
    res = subprocess.run([PY if not (p := Path(".venv/bin/python")).exists() else str(p),
                          str(bench), "--runs", "3"], capture_output=True, text=True, timeout=120,
                         cwd=bench.parent.parent)
    assert res.returncode == 0, res.stderr
    last = res.stdout.strip().splitlines()[-1]
    assert last.startswith("sandbox_overhead_ms=") and float(last.split("=")[1]) >= 0
