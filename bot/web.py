"""The status page and its JSON API (``bpbot web``, or ``[web] listen`` in ``serve``).

Standard library only: ``http.server`` in threads, reading the same state as
``bpbot status`` through bot/status.py, never writing to it.

    /                   recent series with the kernel x step matrix, the queue, health
    /series/<id>        one series version (latest run): matrix and every step's log
    /runs/<id>          the same for one run (replies link here: web_url/runs/<id>)
    /log/<step id>      one step's log as text/plain
    /runs/<id>/base/<kernel>  the base build's log the run was compared with
    /api/series, /api/series/<id>, /api/queue, /api/health   the same data as JSON

Logs are read at the path the step recorded, and only when that path, with
every symlink resolved, lies under the state's work dir (``<state_dir>/work``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from . import status, web_templates
from .config import ConfigError, Rules
from .state import State

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


class StatusApp:
    """Routes a GET path to a Response; no HTTP in here, so tests can call it directly."""

    def __init__(self, rules: Rules, state: State, clock: Callable[[], float] = time.time):
        self.rules, self.state, self.clock = rules, state, clock
        self.log_root = rules.state_dir / "work"
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
                (r"/api/health", self.api_health),
            )]

    def handle(self, target: str) -> Response:
        url = urlsplit(target)
        path = unquote(url.path)
        for pattern, view in self.routes:
            match = pattern.fullmatch(path)
            if match:
                return view(*match.groups(), query=parse_qs(url.query))
        return _not_found(f"no page at {path}")

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
        rows = status.rows(self.state)
        recent = list(reversed(rows))[:limit]
        html = web_templates.index(recent, self.kernel_names(recent), status.queue(self.state),
                                   self._health(), len(rows))
        return Response(200, html.encode())

    def series_page(self, version_id: str, query: dict, run_id: int | None = None) -> Response:
        detail = status.version_detail(self.state, int(version_id), run_id)
        if detail is None:
            return _not_found(f"no series version {version_id}")
        logs = {}
        for s in detail["steps"]:
            path = log_file(self.log_root, s["log_path"])
            if path is not None:
                logs[s["id"]] = read_log(path, INLINE_LOG_CAP)
        base_logs = {}
        for kernel, row in detail["baselines"].items():
            path = log_file(self.log_root, row["log_path"])
            if path is not None:
                base_logs[kernel] = read_log(path, INLINE_LOG_CAP)
        html = web_templates.version_page(detail, logs, base_logs, self.clock())
        return Response(200, html.encode())

    def run_page(self, run_id: str, query: dict) -> Response:
        version_id = status.run_version_id(self.state, int(run_id))
        if version_id is None:
            return _not_found(f"no run {run_id}")
        return self.series_page(str(version_id), query, run_id=int(run_id))

    def step_log(self, step_id: str, query: dict) -> Response:
        row = self.state.one("SELECT log_path FROM steps WHERE id = ?", (int(step_id),))
        return self._raw_log(row["log_path"] if row else "", f"step {step_id}")

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
        text = read_log(path, RAW_LOG_CAP, head_and_tail=False)
        return Response(200, text.encode("utf-8"), "text/plain; charset=utf-8")

    # --- JSON ------------------------------------------------------------

    def _health(self) -> dict:
        return status.health(self.state, self.clock(), self.rules.source.poll_seconds)

    def api_series(self, query: dict) -> Response:
        return _json({"series": status.rows(self.state)})

    def api_version(self, version_id: str, query: dict) -> Response:
        detail = status.version_detail(self.state, int(version_id))
        if detail is None:
            return _json({"error": f"no series version {version_id}"}, 404)
        for s in detail["steps"]:
            s["log_url"] = f"/log/{s['id']}" if log_file(self.log_root, s["log_path"]) else ""
        return _json(detail)

    def api_queue(self, query: dict) -> Response:
        return _json(status.queue(self.state))

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


def _not_found(text: str, content_type: str = "text/html; charset=utf-8") -> Response:
    if content_type.startswith("text/html"):
        return Response(404, web_templates.page("Not found", f"<h1>Not found</h1><p>"
                                                f"{web_templates.h(text)}</p>", time.time()).encode())
    return Response(404, (text + "\n").encode(), content_type)


class Handler(BaseHTTPRequestHandler):
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
                clock: Callable[[], float] = time.time) -> ThreadingHTTPServer:
    """A bound server (``server.server_address`` has the port when ``port`` is 0)."""
    handler = type("BoundHandler", (Handler,), {"app": StatusApp(rules, state, clock)})
    server_class = _Server6 if ":" in host else _Server
    try:
        return server_class((host, port), handler)
    except OSError as exc:  # port taken, address not local: say so, start nothing
        raise ConfigError(rules.file, "web.listen",
                          f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


def start(rules: Rules, state: State, host: str, port: int) -> ThreadingHTTPServer:
    """Serve in a background thread; stop with ``server.shutdown()``."""
    server = make_server(rules, state, host, port)
    threading.Thread(target=server.serve_forever, name="bpbot-web", daemon=True).start()
    log.info("status page on http://%s:%d/", *server.server_address[:2])
    return server


def serve(rules: Rules, state: State, host: str, port: int) -> None:
    """``bpbot web``: serve in the foreground until interrupted."""
    server = make_server(rules, state, host, port)
    log.info("status page on http://%s:%d/ (state %s)", *server.server_address[:2], state.path)
    try:
        server.serve_forever()
    finally:
        server.server_close()
