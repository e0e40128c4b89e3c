"""The status page and its JSON API (``bpbot web``, or ``[web] listen`` in ``serve``).

Standard library only: ``http.server`` (bounded: bot/web/server.py), reading
the same state as ``bpbot status`` through bot/status.py, opened read-only
(bot/status.py ``ReadOnlyState``): it never creates, migrates or writes it.

    /                   recent series with the kernel x step matrix, the queue, health
    /series/<id>        one series version (latest run): matrix and every step's log
    /runs/<id>          the same for one run (replies link here: web_url/runs/<id>)
    /log/<step id>      one step's log as text/plain
    /runs/<id>/base/<kernel>  the base build's log the run was compared with
    /api/series, /api/series/<id>, /api/queue, /api/health   the same data as JSON
    /api/quarantine     mail kept aside and never used, with why (newest 50)

Logs are read at the path the step recorded, and only when that path, with
every symlink resolved, lies under the state's work dir (``<state_dir>/work``).

Nothing served names a host path or a person the bot writes to privately: a
log's ``$ <command>`` lines lose the sandbox wrapper (cgroup shell, bwrap,
prlimit), host paths become placeholders (``<state>``, ``<venv>``, ...), the
JSON carries no log paths and the queue no recipients. A build is shown as a
contributor would type it (the reply's "To reproduce" form).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from bot import status
from bot.config.rules import Rules
from bot.errors import ConfigError
from bot.reply import report
from bot.state import State
from bot.store import views as store_views
from bot.web import html as web_html
from bot.web import server as web_server

log = logging.getLogger(__name__)
INLINE_LOG_CAP = 64 * 1024      # bytes of a log shown on a series page (head and tail)
RAW_LOG_CAP = 16 * 1024 * 1024  # bytes of a log served raw (the head; the rest is cut)
DEFAULT_LIMIT = 50              # series versions on the front page
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def log_file(root: Path, recorded: str) -> Path | None:
    """The log file at ``recorded`` if it is a regular file under ``root`` once every
    symlink and ``..`` is resolved; None otherwise (missing, outside, not a file)."""
    if not recorded:
        return None
    try:
        path = Path(recorded).resolve(strict=True)
        base = root.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not path.is_relative_to(base) or not path.is_file():
        return None
    return path


def read_log(path: Path, cap: int, head_and_tail: bool = True) -> str:
    """At most ``cap`` bytes of the log: its head and tail with a note between them
    (or only the head), decoded leniently. The final component is opened without
    following a symlink, so a swap after the check cannot point it elsewhere."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size <= cap:
            return fh.read(cap).decode("utf-8", errors="replace")
        if not head_and_tail:
            text = fh.read(cap).decode("utf-8", errors="replace")
            return text + f"\n[bpbot: log cut here: {size - cap} of {size} bytes not shown]\n"
        head = fh.read(cap // 2)
        fh.seek(size - cap // 2)
        tail = fh.read()
    note = f"\n\n[... {size - len(head) - len(tail)} bytes not shown: see the raw log ...]\n\n"
    return head.decode("utf-8", errors="replace") + note + tail.decode("utf-8", errors="replace")


WRAPPERS = ("bwrap", "prlimit")  # argv[0] of the sandbox's layers; each ends at a "--"


def user_command(argv: str) -> str:
    """The command of a log's ``$ <argv>`` line without the sandbox around it: the
    pids cgroup shell (``sh -c 'cg=$1; ...' sh <cgroup> <max>``), then bwrap and
    prlimit, each up to its ``--``."""
    words = argv.split(" ")
    if words[:3] == ["sh", "-c", "cg=$1;"]:
        end = next((i for i in range(len(words) - 1)
                    if words[i] == "exit" and words[i + 1] == "$rc"), None)
        if end is not None:
            words = words[end + 5:]  # "exit $rc" sh <cgroup> <max>
    while words and words[0].rsplit("/", 1)[-1] in WRAPPERS and "--" in words:
        words = words[words.index("--") + 1:]
    return " ".join(words)


class Redactor:
    """Host paths to placeholders, longest first, whole path components only."""

    def __init__(self, rules: Rules):
        places = [(rules.state_dir, "<state>"), (rules.tree_path, "<tree>"),
                  (rules.upstream, "<upstream>"), (Path(rules.file).parent, "<rules-dir>"),
                  (Path(sys.prefix), "<venv>"), (Path(sys.base_prefix), "<python>"),
                  (Path(sys.executable).resolve().parent.parent, "<python>"),
                  (Path.home(), "~")]
        self.names: dict[str, str] = {}
        for path, name in places:
            if path and str(path) not in ("", "/", "."):
                for form in {str(Path(path).absolute()), os.path.realpath(path)}:
                    self.names.setdefault(form, name)
        forms = sorted(self.names, key=len, reverse=True)
        self.pattern = re.compile("|".join(re.escape(f) for f in forms) + r"(?![\w.-])")

    def paths(self, text: str) -> str:
        return self.pattern.sub(lambda m: self.names[m.group(0)], text)

    def log(self, text: str) -> str:
        """A step's log as served: ``$`` lines unwrapped, host paths replaced."""
        lines = text.split("\n")
        for i, line in enumerate(lines):
            if line.startswith("$ "):
                lines[i] = "$ " + user_command(line[2:])
        return self.paths("\n".join(lines))

    def data(self, value):
        """Every string in a JSON-able value, paths replaced."""
        if isinstance(value, str):
            return self.paths(value)
        if isinstance(value, dict):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.data(v) for v in value]
        return value


NO_DATABASE = ("bpbot has not created its database yet: it does when the daemon (bpbot serve)"
               " first starts. This page shows the series once it exists.")


class StatusApp:
    """Routes a GET path to a Response; no HTTP in here, so tests can call it directly."""

    def __init__(self, rules: Rules, state: State, clock: Callable[[], float] = time.time):
        self.rules, self.state, self.clock = rules, state, clock
        self.log_root = rules.state_dir / "work"
        self.redact = Redactor(rules)
        self.routes: list[tuple[re.Pattern, Callable[..., Response]]] = [
            (re.compile(p), f) for p, f in (
                (r"/", self.index),
                (r"/series/(\d+)", self.series_page),
                (r"/runs/(\d+)", self.run_page),
                (r"/runs/(\d+)/base/([^/]+)", self.base_log),
                (r"/log/(\d+)", self.step_log),
                (r"/api/series", self.api_series),
                (r"/api/series/(\d+)", self.api_version),
                (r"/api/queue", self.api_queue),
                (r"/api/quarantine", self.api_quarantine),
                (r"/api/health", self.api_health),
            )]

    def handle(self, target: str) -> Response:
        url = urlsplit(target)
        path = unquote(url.path)
        for pattern, view in self.routes:
            match = pattern.fullmatch(path)
            if match:
                try:
                    return view(*match.groups(), query=parse_qs(url.query))
                except status.NoDatabase:
                    return _no_database(path)
        return _not_found(f"no page at {path}")

    def commands(self, step: dict) -> list[str]:
        """A generate or build step's commands as a contributor types them."""
        if step["name"] == "generate":
            lines = report.command_lines(self.rules)
        elif step["name"] == "build":
            kernel = next((k for k in self.rules.kernels if k.name == step["kernel"]), None)
            lines = report.command_lines(self.rules, kernel) if kernel else []
        else:
            return []
        return [self.redact.paths(line) for line in lines]

    # --- pages ------------------------------------------------------------

    def kernel_names(self, rows: list[dict]) -> list[str]:
        """The configured kernels in order, then any older run's kernels no longer configured."""
        names = [k.name for k in self.rules.kernels]
        for r in rows:
            names += [s["kernel"] for s in r["steps"]
                      if s["name"] == "kernel" and s["kernel"] not in names]
        return names

    def index(self, query: dict) -> Response:
        limit = _int(query, "limit", DEFAULT_LIMIT)
        rows = self.redact.data(status.rows(self.state))  # a reason may name a path
        recent = list(reversed(rows))[:limit]
        html = web_html.index(recent, self.kernel_names(recent),
                                   self.redact.data(status.queue(self.state)), self._health(),
                                   len(rows), self._quarantined())
        return Response(200, html.encode())

    def series_page(self, version_id: str, query: dict, run_id: int | None = None) -> Response:
        detail = status.version_detail(self.state, int(version_id), run_id)
        if detail is None:
            return _not_found(f"no series version {version_id}")
        logs = {}
        for s in detail["steps"]:
            path = log_file(self.log_root, s["log_path"])
            if path is not None:
                logs[s["id"]] = self.redact.log(read_log(path, INLINE_LOG_CAP))
            s["commands"] = self.commands(s)
        base_logs = {}
        for kernel, row in detail["baselines"].items():
            path = log_file(self.log_root, row["log_path"])
            if path is not None:
                base_logs[kernel] = self.redact.log(read_log(path, INLINE_LOG_CAP))
        html = web_html.version_page(self.redact.data(detail), logs, base_logs,
                                          self.clock())
        return Response(200, html.encode())

    def run_page(self, run_id: str, query: dict) -> Response:
        version_id = status.run_version_id(self.state, int(run_id))
        if version_id is None:
            return _not_found(f"no run {run_id}")
        return self.series_page(str(version_id), query, run_id=int(run_id))

    def step_log(self, step_id: str, query: dict) -> Response:
        return self._raw_log(store_views.step_log_path(self.state, int(step_id)), f"step {step_id}")

    def base_log(self, run_id: str, kernel: str, query: dict) -> Response:
        version_id = status.run_version_id(self.state, int(run_id))
        detail = status.version_detail(self.state, version_id, int(run_id)) if version_id else None
        row = (detail or {}).get("baselines", {}).get(kernel)
        return self._raw_log(row["log_path"] if row else "", f"base build {kernel} of run {run_id}")

    def _raw_log(self, recorded: str, what: str) -> Response:
        path = log_file(self.log_root, recorded)
        if path is None:
            if recorded:
                log.info("web: not serving the log of %s at %s (missing or outside %s)",
                         what, recorded, self.log_root)
            return _not_found(f"no log for {what} (old run dirs are removed after two weeks)",
                              "text/plain")
        text = self.redact.log(read_log(path, RAW_LOG_CAP, head_and_tail=False))
        return Response(200, text.encode("utf-8"), "text/plain; charset=utf-8")

    # --- JSON ------------------------------------------------------------

    def _health(self) -> dict:
        return self.redact.data(status.health(self.state, self.clock(),
                                              self.rules.source.poll_seconds))

    def api_series(self, query: dict) -> Response:
        return _json({"series": self.redact.data(status.rows(self.state))})

    def api_version(self, version_id: str, query: dict) -> Response:
        detail = status.version_detail(self.state, int(version_id))
        if detail is None:
            return _json({"error": f"no series version {version_id}"}, 404)
        for s in detail["steps"]:
            s["log_url"] = f"/log/{s['id']}" if log_file(self.log_root, s.pop("log_path")) else ""
            s["commands"] = self.commands(s)
        for kernel, row in detail["baselines"].items():
            found = log_file(self.log_root, row.pop("log_path"))
            row["log_url"] = f"/runs/{detail['run']['id']}/base/{kernel}" if found else ""
        return _json(self.redact.data(detail))

    def _quarantined(self) -> list[dict]:
        return self.redact.data(status.quarantined(self.state, DEFAULT_LIMIT, hide_addresses=True))

    def api_quarantine(self, query: dict) -> Response:
        return _json({"quarantined": self._quarantined()})

    def api_queue(self, query: dict) -> Response:
        return _json(self.redact.data(status.queue(self.state)))

    def api_health(self, query: dict) -> Response:
        data = self._health()
        return _json(data, 200 if data["ok"] else 503)  # so `curl -f` notices a stall


def _int(query: dict, key: str, default: int) -> int:
    try:
        return max(1, int(query.get(key, [default])[0]))
    except ValueError:
        return default


def _json(data: object, code: int = 200) -> Response:
    body = json.dumps(data, indent=2, sort_keys=True, default=str).encode()
    return Response(code, body, "application/json")


def _no_database(path: str) -> Response:
    if path.startswith("/api/"):
        return _json({"error": NO_DATABASE, "ok": False}, 503)
    return Response(503, web_html.message("No data yet", NO_DATABASE, time.time()).encode())


def _not_found(text: str, content_type: str = "text/html; charset=utf-8") -> Response:
    if content_type.startswith("text/html"):
        return Response(404, web_html.message("Not found", text, time.time()).encode())
    return Response(404, (text + "\n").encode(), content_type)


class Handler(web_server.RequestDeadline, BaseHTTPRequestHandler):
    server_version = "bpbot-web"
    app: StatusApp  # set on a subclass by make_server

    def do_GET(self) -> None:  # noqa: N802 - http.server's API
        self._answer(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's API
        self._answer(send_body=False)

    def _answer(self, send_body: bool) -> None:
        try:
            res = self.app.handle(self.path)
        except Exception:  # noqa: BLE001 - one bad page must not stop the server
            log.exception("web: %s failed", self.path)
            res = Response(500, b"internal error; see the bpbot log\n", "text/plain")
        finally:
            self.app.state.close()  # each request thread has its own SQLite connection
        self.send_response(res.status)
        for name, value in {**SECURITY_HEADERS, "Content-Type": res.content_type,
                            "Content-Length": str(len(res.body)), "Cache-Control": "no-cache",
                            **res.headers}.items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(res.body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's API
        log.debug("web: %s " + format, self.address_string(), *args)


def make_server(rules: Rules, state: State, host: str, port: int,
                clock: Callable[[], float] = time.time, timeout: float = web_server.TIMEOUT,
                max_workers: int = web_server.MAX_WORKERS,
                max_waiting: int = web_server.MAX_WAITING,
                app: StatusApp | None = None) -> web_server.BoundedServer:
    """A bound server (``server.server_address`` has the port when ``port`` is 0)."""
    handler = type("BoundHandler", (Handler,), {"app": app or StatusApp(rules, state, clock),
                                                 "timeout": timeout})
    server_class = web_server.BoundedServer6 if ":" in host else web_server.BoundedServer
    try:
        return server_class((host, port), handler, timeout=timeout, max_workers=max_workers,
                            max_waiting=max_waiting)
    except OSError as exc:  # port taken, address not local: say so, start nothing
        raise ConfigError(rules.file, "web.listen",
                          f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


def start(rules: Rules, state: State, host: str, port: int) -> web_server.BoundedServer:
    """Serve in a background thread; stop with ``server.shutdown()``."""
    server = make_server(rules, state, host, port)
    threading.Thread(target=server.serve_forever, name="bpbot-web", daemon=True).start()
    log.info("status page on http://%s:%d/", *server.server_address[:2])
    return server


def serve(rules: Rules, state: State, host: str, port: int) -> None:
    """``bpbot web``: serve in the foreground until interrupted."""
    server = make_server(rules, state, host, port)
    log.info("status page on http://%s:%d/ (state %s, read-only)", *server.server_address[:2],
             state.path)
    if not state.path.exists():
        log.warning("no database at %s yet: the page says so until bpbot serve creates it",
                    state.path)
    try:
        server.serve_forever()
    finally:
        server.server_close()
