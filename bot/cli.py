"""Command line: ``bpbot serve | check | demo | status | web | kernels``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

# Only what every command needs: each command imports its own modules, so that
# `bpbot check` does not pay for asyncio, the daemon or the web page.
from bot import __version__
from bot.config import rules as config

EXIT_OK, EXIT_BROKEN, EXIT_UNTESTED, EXIT_USAGE = 0, 1, 2, 3
EXIT_STATE = 2  # `bpbot status`: the state cannot be read (the host's problem, as in check)
log = logging.getLogger("bpbot")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bpbot", description="Patch bot for the backports list.")
    p.add_argument("--version", action="version", version=f"bpbot {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("serve", help="run the daemon")
    s.add_argument("--config", "--rules", dest="rules", type=Path, default=None,
                   help="rules file (default: the embedded demo rules)")

    c = sub.add_parser("check", help="test local mail (.eml, mbox or Maildir); send nothing")
    c.add_argument("--rules", type=Path, default=None,
                   help="rules file (default: the embedded sample tree)")
    c.add_argument("--json", action="store_true", help="print JSON instead of reply text")
    where = c.add_mutually_exclusive_group()
    where.add_argument("--cache", type=Path, default=None, metavar="DIR",
                       help="keep base builds here (default: $XDG_CACHE_HOME/bpbot/check/<hash"
                            " of the rules>, else ~/.cache/bpbot/check/<hash>)")
    where.add_argument("--no-cache", action="store_true",
                       help="build the base afresh in the scratch dir; keep nothing")
    c.add_argument("--keep", action="store_true",
                   help="keep the scratch dir (logs, worktrees) and print where it is")
    c.add_argument("paths", nargs="+", type=Path, metavar="PATH")

    d = sub.add_parser("demo", help="run the daemon on the bundled sample list")
    d.add_argument("--workdir", type=Path, default=None, help="where to lay it out (default: temp)")
    d.add_argument("--web", type=int, nargs="?", const=8080, default=None, metavar="PORT",
                   help="then serve the run's status page on 127.0.0.1:PORT (default 8080)")

    t = sub.add_parser("status", help="series seen, their state and verdicts")
    t.add_argument("--config", "--rules", dest="rules", type=Path, default=None)
    t.add_argument("--json", action="store_true")

    w = sub.add_parser("web", help="serve the status page and its JSON API")
    w.add_argument("--config", "--rules", dest="rules", type=Path, default=None)
    w.add_argument("--host", default=None, help="default: [web] listen, else 127.0.0.1")
    w.add_argument("--port", type=int, default=None, help="default: [web] listen, else 8080")

    from bot.kernels import add_parser as add_kernels_parser
    add_kernels_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors; our contract says 3
        return EXIT_USAGE if exc.code not in (0, None) else EXIT_OK
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
                         if args.command == "serve" else _TerminalFormatter("bpbot: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        handlers=[handler])
    if not args.verbose:
        for noisy in ("apscheduler", "mail.log", "aiosmtpd", "b4"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return _dispatch(args)
    except config.ConfigError as exc:
        for line in str(exc).splitlines():  # every problem of the file, one a line
            print(f"bpbot: configuration error: {line}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


class _TerminalFormatter(logging.Formatter):
    """Log lines for a terminal: a Message-ID or a reason may carry what mail
    wrote (ESC sequences, bidi overrides), escaped as the summaries escape it."""

    def format(self, record: logging.LogRecord) -> str:
        from bot.ingest.mailtext import for_terminal  # (not for `serve`: its log is the journal)
        return for_terminal(super().format(record), keep="\n\t")


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from bot.demo.session import run_demo
        return run_demo(args.workdir, sys.stdout, web_port=args.web)
    if args.command == "check":
        from bot.check import CheckOptions, run_check
        return run_check(args.rules, args.paths, CheckOptions(
            as_json=args.json, show_progress=sys.stderr.isatty(), keep=args.keep,
            cache=None if args.no_cache else (args.cache or "default")))
    if args.command == "kernels":
        from bot import kernels
        return kernels.run_command(args, _load)
    rules = _load(args.rules)
    database = rules.state_dir / "bpbot.sqlite"
    if args.command == "status":  # read-only: never creates nor migrates the state
        from bot import status
        try:
            print(status.report(database, args.json))
        except status.StateUnreadable as exc:
            print(f"bpbot: cannot read the state: {exc}", file=sys.stderr)
            return EXIT_STATE
        return EXIT_OK
    if args.command == "web":  # read-only: never creates nor migrates the database
        from bot import status
        from bot.web import page as web
        state = status.ReadOnlyState(database)
        try:  # a state that is there but unreadable stops the page at once, named
            state.verify()
        except status.NoDatabase:
            pass  # the page says "no state yet"
        except status.StateUnreadable as exc:
            print(f"bpbot: cannot read the state: {exc}", file=sys.stderr)
            return EXIT_STATE
        host, port = rules.web_listen or ("127.0.0.1", 8080)
        web.serve(rules, state, args.host or host, port if args.port is None else args.port)
        return EXIT_OK
    # The lock before the database is opened (and migrated): a second, newer
    # `serve` must not migrate the state under a running daemon.
    if args.command == "serve" and (refused := _only_daemon(rules.state_dir)):
        return refused
    import sqlite3

    from bot.state import State
    try:
        state = State(database)  # opened and migrated: a broken file stops here, named
    except sqlite3.DatabaseError as exc:
        print(f"bpbot: cannot open the state: {database}: {exc}", file=sys.stderr)
        return EXIT_STATE
    return _serve(rules, state)


def _serve(rules: config.Rules, state) -> int:
    import asyncio

    from bot import kernels
    from bot.daemon import Daemon
    from bot.sandbox import bwrap as sandbox
    kernels.require_present(rules)
    if rules.web_listen:  # `serve` also serves the status page when the rules say where
        from bot.status import ReadOnlyState
        from bot.web import page as web
        web.start(rules, ReadOnlyState(state.path), *rules.web_listen)
    daemon = Daemon(rules, state, sandbox.for_rules(rules))
    asyncio.run(daemon.run())
    return EXIT_OK


_LOCKS: list[int] = []  # held until the process ends (the kernel drops them then)


def _only_daemon(state_dir: Path) -> int | None:
    """One `bpbot serve` per state dir: two would run the same versions twice and
    race on every reply. A lock file, released by the kernel when we die. None
    when taken, else the exit code (another serve runs; the dir is unusable)."""
    import fcntl
    path = state_dir / "serve.lock"
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by children
    except OSError as exc:
        print(f"bpbot: cannot take the serve lock {path}: {exc.strerror or exc}",
              file=sys.stderr)
        return EXIT_STATE
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        print(f"bpbot: another `bpbot serve` (pid {owner}) is running on {state_dir}; "
              "stop it first", file=sys.stderr)
        return EXIT_USAGE
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _LOCKS.append(fd)
    return None


def _load(path: Path | None) -> config.Rules:
    if path is not None:
        return config.load(path)
    from bot.demo import layout
    workdir = Path(os.environ.get("BPBOT_DEMO_DIR", Path.home() / ".cache" / "bpbot" / "demo"))
    log.info("no --config given: using the embedded default in %s", workdir)
    return layout.prepare(workdir)


if __name__ == "__main__":
    sys.exit(main())
