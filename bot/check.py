"""``bpbot check``: the daemon's pipeline on local mail, sending nothing.

Exit 0: every configured kernel was built and passes (or only files that
need no build changed); 1: a series breaks something; 2: not (fully)
tested: no patch, incomplete, does not apply, already applied, nothing
built, only some kernels built (partial), an infrastructure error;
3: usage or configuration error.

Everything happens in a scratch dir (``$TMPDIR/bpbot-check-*``), removed on
every way out unless ``--keep``; base builds are kept in a cache dir between
checks (bot/check_cache.py) unless ``--no-cache``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email
import email.policy
import json
import logging
import mailbox
import os
import signal
import sqlite3
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Only what reading and classifying the mail needs: the series, pipeline and
# report modules (and asyncio, which outbox pulls in) are imported when the
# input holds a patch (a no-patch check is mostly import time otherwise).
from bot import check_cache, store
from bot.check_cache import CheckCache
from bot.config import rules as config
from bot.demo import layout
from bot.ingest import classify, spool, tags
from bot.ingest.mailtext import for_terminal
from bot.sandbox import cleanup, git, proc
from bot.state import State, loads
from bot.store import views as store_views

log = logging.getLogger(__name__)


class InputError(ValueError):
    pass


def read_mail(path: Path) -> list[bytes]:
    """Messages from an .eml file, an mbox file or a Maildir folder."""
    if path.is_dir():
        if not (path / "cur").is_dir() and not (path / "new").is_dir():
            raise InputError(f"{path}: a folder, but not a Maildir (no cur/ or new/)")
        box = mailbox.Maildir(path, factory=None, create=False)
        return [box.get_bytes(k) for k in sorted(box.keys())]
    if not path.is_file():
        raise InputError(f"{path}: no such file or folder")
    from bot.ingest.sources import read_mbox  # imapclient: only when reading a file
    data = path.read_bytes()
    if not data.strip():  # spooled all the same: listed (quarantined), never skipped
        log.warning("%s: empty file: not a mail", path)
        return [data]
    return read_mbox(data) or [data]  # an mbox, or one mail


@dataclass
class CheckOptions:
    as_json: bool = False
    show_progress: bool = False
    keep: bool = False              # keep the scratch dir and say where
    cache: Path | str | None = "default"  # a dir, "default" (per rules) or None (scratch only)


def run_check(rules_path: Path | None, paths: list[Path],
              options: CheckOptions | None = None) -> int:
    """Test the mail in ``paths``; print the replies; return the exit code. The
    scratch dir goes on every way out (pass, fail, error, Ctrl-C, SIGTERM)
    unless ``options.keep``."""
    options = options or CheckOptions()
    try:
        raws = [raw for p in paths for raw in read_mail(p)]
    except (InputError, OSError) as exc:
        print(f"bpbot: {exc}", file=sys.stderr)
        return 3
    tree: list[Path] = []  # the tree whose worktree list a cut-off run may leave stale
    with _signals_interrupt(), contextlib.ExitStack() as stack:
        cache = _open_cache(rules_path, options.cache, stack)
        scratch = _scratch(cache)
        # Removed before the cache's lock goes (the next check reuses its path).
        stack.callback(_remove_quietly, scratch, options.keep, tree)
        rules = _rules(rules_path, scratch, cache)
        tree.append(rules.tree_path)
        return _check(rules, raws, scratch, cache, options)


def _scratch(cache: CheckCache | None) -> Path:
    """The run's scratch dir. With the cache held, always the same path in it: the
    series' build dirs then sit where the base's were built, so ccache hits (a
    compiler's preprocessed output names the paths it read) and no warm tree
    needs moving. Else a fresh temporary dir."""
    if cache is None:
        return Path(tempfile.mkdtemp(prefix="bpbot-check-"))
    scratch = cache.root / "scratch"
    # Processes a killed check left running (without bubblewrap's die-with-parent)
    # would go on writing into this same dir: the pids cgroups of owners that
    # are gone are emptied first.
    from bot.sandbox.limits import PidsCgroup
    PidsCgroup.detect()
    try:
        cleanup.remove_tree(scratch)  # left by --keep or a killed check
        scratch.mkdir()
    except OSError as exc:
        log.warning("cannot use %s (%s): scratch in a temporary dir", scratch, exc)
        return Path(tempfile.mkdtemp(prefix="bpbot-check-"))
    return scratch


def _remove_quietly(scratch: Path, keep: bool, trees: list[Path]) -> None:
    with _signals_ignored():  # a second Ctrl-C must not leave half a scratch dir
        _remove(scratch, keep, trees)


def _open_cache(rules_path: Path | None, where: Path | str | None,
                stack: contextlib.ExitStack) -> CheckCache | None:
    if where is None:
        return None
    root = check_cache.default_root(rules_path) if where == "default" else Path(where)
    try:
        return stack.enter_context(CheckCache(root).locked())
    except check_cache.CacheBusy as exc:
        log.info("%s; this check builds the base in its scratch dir", exc)
    except OSError as exc:
        log.warning("no cache (%s: %s); this check builds the base in its scratch dir",
                    root, exc.strerror or exc)
    return None


def _rules(rules_path: Path | None, scratch: Path, cache: CheckCache | None) -> config.Rules:
    if rules_path is None:  # the sample tree: in the cache, so its paths stay the same
        rules = cache.sample_rules() if cache else layout.prepare(scratch / "sample",
                                                                  with_list=False)
    else:
        rules = config.load(rules_path)
    # Never touch the daemon's state: a scratch state, and no grace period.
    return dataclasses.replace(rules, state_dir=scratch / "state", grace_seconds=0)


def _check(rules: config.Rules, raws: list[bytes], scratch: Path, cache: CheckCache | None,
           options: CheckOptions) -> int:
    if cache is not None:
        cache.link_shared(rules.state_dir)
    state = State(rules.state_dir / "bpbot.sqlite")
    known = cache.load_into(state) if cache is not None else set()
    spool.spool(state, "check", raws, bot_address=rules.bot_address, loop_id=rules.loop_id,
                max_bytes=rules.max_message_bytes, tree_tags=tags.allowed_tags(rules))
    if state.one("SELECT 1 FROM messages WHERE kind IN (?, ?)", (classify.PATCH, classify.COVER)):
        _test_series(state, rules, options.show_progress)
    _say_base(state, known, cache)
    if cache is not None:
        try:
            cache.save_from(state, rules.state_dir, known)
        except (OSError, sqlite3.Error) as exc:  # the verdict stands; only the reuse is lost
            log.warning("could not keep the base builds in the cache %s: %s", cache.root, exc)
    return _print(state, options.as_json)


def _test_series(state: State, rules: config.Rules, show_progress: bool) -> None:
    """Assemble the series and test each; the replies land in the scratch outbox."""
    from bot.reply import notices, results
    from bot.sandbox import bwrap as sandbox
    from bot.series import tracker
    from bot.series.assembly import configure_b4
    from bot.testrun import pipeline
    configure_b4(rules.bot_name, rules.bot_address)
    threaded = any(r["in_reply_to"] or r["refs"] != "[]" for r in state.query(
        "SELECT in_reply_to, refs FROM messages"))
    tracker.assemble(state, rules, one_thread=not threaded)
    notices.expire(state, rules)
    progress = (lambda text: print(f"bpbot: {text}", file=sys.stderr, flush=True)) \
        if show_progress else None
    if pipeline.next_ready(state) is not None:
        box = sandbox.for_rules(rules)
        if box.pids_cgroup is not None:
            _CGROUP_PARENTS.append(box.pids_cgroup.parent)
        while (version := pipeline.next_ready(state)) is not None:
            results.run_version(state, rules, box, version, progress)
    notices.expire(state, rules)  # answers versions b4 found untestable at run time


def _say_base(state: State, known: set[str], cache: CheckCache | None) -> None:
    """One line per base: reused from the cache, or built (and kept)."""
    for base_commit in store_views.base_commits(state):
        rows = state.query("SELECT key, kernel FROM baselines WHERE base_commit = ?",
                           (base_commit,))
        reused = sorted(r["kernel"] for r in rows if r["key"] in known)
        built = sorted(r["kernel"] for r in rows if r["key"] not in known)
        commit = base_commit[:12]
        if reused:
            log.info("base %s reused from the cache (%s): %s", commit, cache.root if cache else
                     "", ", ".join(reused))
        if built:
            log.info("base %s built on %s%s", commit, ", ".join(built),
                     f"; kept in the cache {cache.root}" if cache else "")


def _print(state: State, as_json: bool) -> int:
    replies = state.query("SELECT * FROM outbox ORDER BY id")
    code = _exit_code(store.verdicts(state))
    if as_json:
        print(json.dumps(_as_json(state, replies, code), indent=2, sort_keys=True))
        return code
    if not replies:
        kinds = state.query("SELECT kind, reason, subject FROM messages")
        print("bpbot: no patch series found in the input:", file=sys.stderr)
        for k in kinds:  # what mail wrote is escaped: ESC sequences, \r, bidi overrides
            print(f"  {k['kind']}: {for_terminal(k['subject']) or '(no subject)'}"
                  f" ({for_terminal(k['reason'])})", file=sys.stderr)
    for r in replies:
        msg = email.message_from_bytes(bytes(r["raw"]), policy=email.policy.default)
        for name in ("Subject", "To", "In-Reply-To"):
            print(f"{name}: {for_terminal(str(msg[name]))}")
        print()
        print(for_terminal(msg.get_content(), keep="\n\t"))
    return code


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM stop the check at once and unwind it (so the scratch
    dir goes). The commands run in sessions of their own, out of reach of a
    Ctrl-C, and the build pool would start the builds still queued while it
    unwinds: until the unwinding is done, every process below this one is
    killed as soon as it appears."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    unwound = threading.Event()

    def keep_killing() -> None:
        while not unwound.wait(0.05):
            _kill_descendants()

    def stop(signum, frame) -> None:
        if not unwound.is_set() and not any(t.name == "bpbot-check-stop"
                                            for t in threading.enumerate()):
            threading.Thread(target=keep_killing, name="bpbot-check-stop", daemon=True).start()
        _kill_descendants()
        raise KeyboardInterrupt(signal.Signals(signum).name)

    before = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        unwound.set()
        for sig, handler in before.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


# Where the sandbox makes a pids cgroup per command (bot/sandbox/limits.py), named
# "<our pid>-...": a bubblewrap whose launcher was killed is no longer below
# us (bubblewrap issue 633), but still in its cgroup.
_CGROUP_PARENTS: list[Path] = []


def _kill_descendants() -> None:
    """SIGKILL every process below this one (builds, bwrap, git) and in our
    commands' pids cgroups, a few rounds in case one forks meanwhile."""
    for _ in range(5):
        pids = _descendants(os.getpid()) + _in_our_cgroups()
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for pid in pids:  # reap our own children; the rest are reaped by theirs
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)


def _in_our_cgroups() -> list[int]:
    pids: list[int] = []
    for parent in _CGROUP_PARENTS:
        for procs in parent.glob(f"{os.getpid()}-*/cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids += [int(line) for line in procs.read_text().split()]
    return pids


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _remove(scratch: Path, keep: bool, trees: list[Path]) -> None:
    if keep:
        print(f"bpbot: kept the scratch dir: {scratch}", file=sys.stderr)
        return
    try:  # whatever modes the series' build left inside (chmod 000 dirs)
        cleanup.remove_tree(scratch)
    except OSError as exc:
        log.warning("could not remove %s: %s", scratch, exc)
    for tree in trees:  # worktrees of a run that was cut off were in the scratch dir
        with contextlib.suppress(proc.ProcError):
            git.git(tree, "worktree", "prune")


# The exit code of one version's verdict. Anything not in the table (not-tested,
# partial, not-applied, infra-error, untestable, "" for unanswered) is 2:
# never a 0 for what was not tested.
NOT_TESTED_EXIT = 2


def _exit_code(verdicts: list[str]) -> int:
    from bot.testrun import outcome  # (with the pipeline's modules: not for a mail without a patch)
    exit_codes = {outcome.PASS: 0, outcome.FAIL: 1}
    codes = [exit_codes.get(v, NOT_TESTED_EXIT) for v in verdicts]
    if 1 in codes:
        return 1
    return max(codes, default=NOT_TESTED_EXIT)


def _as_json(state: State, replies: list[dict], code: int) -> dict:
    from bot import status
    return dict(
        exit_code=code,
        series=status.rows(state),
        # Every input mail, with what it was taken for and why (quarantined,
        # direct, pull-request, other...): why a mail was not used.
        messages=[dict(msgid=m["msgid"], subject=m["subject"], kind=m["kind"], reason=m["reason"])
                  for m in state.query("SELECT msgid, subject, kind, reason FROM messages"
                                       " ORDER BY received_at, rowid")],
        quarantined=status.quarantined(state),
        replies=[dict(kind=r["kind"], recipients=loads(r["recipients"], []),
                      text=email.message_from_bytes(bytes(r["raw"]),
                                                    policy=email.policy.default).get_content())
                 for r in replies],
    )
