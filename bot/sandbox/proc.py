"""The one subprocess wrapper: argument lists, cwd, a timeout nobody can skip,
output captured with a size cap, the command logged."""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bot.errors import InfraError
from bot.sandbox import cgroups

log = logging.getLogger(__name__)

DEFAULT_OUTPUT_CAP = 4 * 1024 * 1024


@dataclass
class ProcResult:
    args: list[str]
    returncode: int | None  # None when killed at its timeout
    output: str  # stdout and stderr interleaved, capped
    duration: float
    timed_out: bool = False
    truncated: bool = False
    stopped: str = ""  # why ``watch`` stopped it, when it did

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.stopped


class ProcError(InfraError, RuntimeError):
    """The command could not be started at all (missing binary, bad cwd)."""


class Interrupted(BaseException):
    """The bot is stopping: the command was killed (or not started) and the work it
    belongs to is given up. A BaseException, so that no ``except Exception`` turns
    it into a step's result."""


_STOPPING = threading.Event()


def interrupt() -> None:
    """Kill every command running now (within a second) and refuse new ones, until
    :func:`resume`: each ``run`` raises :class:`Interrupted`."""
    _STOPPING.set()


def resume() -> None:
    _STOPPING.clear()


def stopping() -> bool:
    return _STOPPING.is_set()


def run(
    args: list[str],
    *,
    cwd: str | Path | None = None,
    timeout: float,
    env: dict[str, str] | None = None,
    output_cap: int = DEFAULT_OUTPUT_CAP,
    input_bytes: bytes | None = None,
    log_file: Path | None = None,
    watch: Callable[[], str] | None = None,
) -> ProcResult:
    """Run ``args`` and wait at most ``timeout`` seconds.

    The child gets its own session so that a timeout kills the whole process
    group (make, gcc, anything it started). A sandboxed command (one with a
    per-command cgroup, bot/sandbox/limits.py) is killed by its cgroup too, which also
    reaches what left the process group (bubblewrap's ``--new-session``, a
    ``setsid``); whatever it leaves running when it ends is killed and its
    cgroup removed. Output beyond ``output_cap`` bytes
    is read and dropped, so a child printing gigabytes neither blocks on a full
    pipe nor fills memory. When ``log_file`` is given the captured output is
    written there too. ``watch`` is called while it runs (at least once a
    second); a non-empty answer stops the process group for that reason.
    After :func:`interrupt` it is killed the same way and :class:`Interrupted`
    is raised.
    """
    if _STOPPING.is_set():
        raise Interrupted(f"not started: {args[0]}")
    args = [str(a) for a in args]
    group = cgroups.child_of(args)
    log.debug("run %s (cwd=%s, timeout=%ss)", args, cwd, timeout)
    start = time.monotonic()
    child = _start(args, cwd, env, input_bytes)
    deadline = start + timeout
    out = _Output(output_cap)
    timed_out, stopped = out.read(child, deadline, watch)
    returncode, timed_out = _end(child, group, deadline, timed_out or bool(stopped), timed_out)
    if group is not None:
        _remove_cgroup(group, args, timed_out)
    output = out.text()
    if timed_out:
        # Rounded: run_all passes what is left of its budget (1.99995 s of 2 s).
        output += f"\n[killed after {round(timeout, 1):g}s timeout]\n"
    if stopped:
        output += f"\n[stopped: {stopped}]\n"
    duration = time.monotonic() - start
    result = ProcResult(args=args, returncode=None if timed_out else returncode, output=output,
                        duration=duration, timed_out=timed_out, truncated=out.truncated,
                        stopped=stopped)
    if _STOPPING.is_set():  # also one that ended by itself meanwhile: not trusted
        raise Interrupted(f"the bot is stopping: {args[0]}")
    if log_file is not None:
        _write_log(log_file, f"$ {' '.join(args)}\n{output}")
    log.debug("exit %s after %.2fs: %s", result.returncode, duration, args[0])
    return result


def _end(child: subprocess.Popen, group, deadline: float, kill: bool,
         timed_out: bool) -> tuple[int, bool]:
    """Wait for the child (killed first when ``kill``): (its exit code, timed out)."""
    if kill:
        _kill(child, group)
    child.stdout.close()
    try:
        return child.wait(timeout=max(1.0, deadline - time.monotonic())), timed_out
    except subprocess.TimeoutExpired:
        _kill(child, group)
        return child.wait(), True


def _start(args: list[str], cwd, env, input_bytes: bytes | None) -> subprocess.Popen:
    """The child in a session of its own (a timeout kills its whole group)."""
    try:
        child = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE if input_bytes is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        raise ProcError(f"cannot run {args[0]}: {exc}") from exc
    if input_bytes is not None:
        # Fed from a thread: a child that does not read its input must not block
        # us past the timeout (the kill ends the write with EPIPE).
        threading.Thread(target=_feed, args=(child.stdin, input_bytes), daemon=True,
                         name="proc-stdin").start()
    return child


class _Output:
    """A child's output, kept up to ``cap`` bytes; the rest is read and dropped,
    so a child printing gigabytes neither blocks on a full pipe nor fills memory."""

    def __init__(self, cap: int):
        self.cap, self.kept, self.truncated = cap, 0, False
        self.chunks: list[bytes] = []

    def read(self, child: subprocess.Popen, deadline: float,
             watch: Callable[[], str] | None) -> tuple[bool, str]:
        """Read until the child closes its output: (timed out, stopped reason)."""
        with selectors.DefaultSelector() as sel:
            sel.register(child.stdout, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return True, ""
                if watch is not None and (stopped := watch()):
                    return False, stopped
                if _STOPPING.is_set():
                    return False, "the bot is stopping"
                if not sel.select(min(remaining, 1.0)):
                    continue
                data = os.read(child.stdout.fileno(), 65536)
                if not data:
                    return False, ""
                self.add(data)

    def add(self, data: bytes) -> None:
        piece = data[: max(0, self.cap - self.kept)]
        if piece:
            self.chunks.append(piece)
            self.kept += len(piece)
        self.truncated = self.truncated or len(piece) < len(data)

    def text(self) -> str:
        output = b"".join(self.chunks).decode("utf-8", "replace")
        if self.truncated:
            output += f"\n[output truncated at {self.cap} bytes]\n"
        return output


def _feed(pipe, data: bytes) -> None:
    try:
        pipe.write(data)
    except (BrokenPipeError, ValueError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError):
            pipe.close()


def _write_log(log_file: Path, text: str) -> None:
    """A log that cannot be written (disk full) is the bot's problem, not the patch's:
    raise ProcError, which callers report as an infra-error."""
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ProcError(f"cannot write the log {log_file}: {exc.strerror or exc}") from exc


def _kill(child: subprocess.Popen, group: Path | None) -> None:
    """SIGKILL the command's cgroup (if any), then its process group."""
    if group is not None:
        try:
            cgroups.kill(group)
        except OSError as exc:
            log.error("cannot kill the processes of %s: %s", group, exc)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)


def _remove_cgroup(group: Path, args: list[str], timed_out: bool) -> None:
    """Kill what the command left in its cgroup and remove the cgroup. A failure
    is logged: the next sweep (bot/sandbox/limits.py) tries again."""
    if not group.exists():  # the usual case: removed by the command's own shell
        return
    try:
        if not timed_out:
            cgroups.wait_empty(group, cgroups.LINGER)
        killed = cgroups.kill_and_remove(group)
    except OSError as exc:
        log.error("cannot remove the cgroup %s: %s", group, exc)
        return
    if killed and not timed_out:
        log.warning("killed %d processes left running by: %s", killed, " ".join(args[6:])[-200:])


def run_all(commands: list[list[str]], **kwargs) -> ProcResult:
    """Run argument lists in order, stopping at the first failure; one combined result.

    The timeout covers all of them together; the output cap applies to each
    command's output on its own (the combined output may be up to one cap per
    command).
    """
    timeout = kwargs.pop("timeout")
    log_file = kwargs.pop("log_file", None)
    start = time.monotonic()
    outputs: list[str] = []
    result: ProcResult | None = None
    for args in commands:
        left = timeout - (time.monotonic() - start)
        result = run(args, timeout=max(left, 0.001), **kwargs)
        outputs.append(f"$ {' '.join(result.args)}\n{result.output}")
        if not result.ok:
            break
    assert result is not None, "no command to run"
    result.output = "\n".join(outputs)
    result.duration = time.monotonic() - start
    if log_file is not None:
        _write_log(log_file, result.output)
    return result
