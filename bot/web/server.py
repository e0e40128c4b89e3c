"""The HTTP side of the status page: bounded in threads, in time and in idle sockets.

``http.server`` alone starts a thread per connection and waits forever for a
request line, so a thousand idle connections held a thousand threads and,
under a task limit, a real request got no answer. Here:

- an accepted connection first waits in a *waiting room*: one thread watching
  every idle socket with a selector; it costs a file descriptor, not a thread.
  A connection that sends nothing within ``timeout`` seconds is closed, and
  past ``max_waiting`` idle connections the oldest one is closed;
- only a connection with bytes to read gets a worker thread, at most
  ``max_workers`` at once; past that, the newcomer gets a short 503 and is
  closed at once;
- a worker's socket has the same ``timeout`` for every read and write.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections import OrderedDict
from http.server import ThreadingHTTPServer

log = logging.getLogger(__name__)

TIMEOUT = 10.0       # seconds a connection may stay silent (idle, or within a request)
MAX_WORKERS = 64     # requests handled at once
MAX_WAITING = 512    # idle connections kept open at once (each a file descriptor)
BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
        b"Retry-After: 5\r\nConnection: close\r\nContent-Length: 33\r\n\r\n"
        b"busy: too many requests at once\r\n")


class BoundedServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer with a waiting room and a cap on worker threads."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, handler, timeout: float = TIMEOUT,
                 max_workers: int = MAX_WORKERS, max_waiting: int = MAX_WAITING):
        self.idle_timeout = timeout
        self.max_waiting = max_waiting
        self.workers = threading.BoundedSemaphore(max_workers)
        self.rejected = 0  # requests answered 503 so far
        self.max_workers = max_workers
        # Only the waiting room's thread touches _waiting; arrivals reach it through
        # _arrivals and a wake-up byte.
        self._waiting: OrderedDict[socket.socket, tuple[object, float]] = OrderedDict()
        self._arrivals: list[tuple[socket.socket, object]] = []
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)  # a full pipe already means "wake up"
        self._closing = threading.Event()
        self._room = threading.Thread(target=self._watch, name="bpbot-web-wait", daemon=True)
        super().__init__(address, handler)  # on a bind error it calls server_close()
        self._room.start()

    # --- accept: into the waiting room ------------------------------------

    def process_request(self, request, client_address) -> None:
        """Called by the accept loop: hand the socket to the waiting room's thread,
        which alone registers, dispatches and closes waiting sockets (a file
        descriptor is closed only once unregistered, so a reused number never
        meets a stale registration)."""
        request.setblocking(False)
        with self._lock:
            self._arrivals.append((request, client_address))
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _watch(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self._closing.is_set():
                try:
                    self._pass(sel)
                except Exception:  # noqa: BLE001 - this thread stopping would stop the page
                    log.exception("web: waiting room")
                    time.sleep(0.1)
            for sock in list(self._waiting):
                self._leave(sel, sock)
                self._drop(sock)

    def _pass(self, sel: selectors.BaseSelector) -> None:
        self._admit(sel)
        deadlines = [d for _, d in self._waiting.values()]
        wait = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        for key, _ in sel.select(wait):
            if key.fileobj is self._wake_r:
                with contextlib.suppress(OSError):
                    self._wake_r.recv(4096)
            elif key.fileobj in self._waiting:
                self._ready(sel, key.fileobj)
        self._expire(sel)

    def _admit(self, sel: selectors.BaseSelector) -> None:
        with self._lock:
            arrivals, self._arrivals = self._arrivals, []
        for sock, address in arrivals:
            self._waiting[sock] = (address, time.monotonic() + self.idle_timeout)
            sel.register(sock, selectors.EVENT_READ)
        while len(self._waiting) > self.max_waiting:  # the oldest idle one goes
            oldest = next(iter(self._waiting))
            self._leave(sel, oldest)
            self._drop(oldest)

    def _leave(self, sel: selectors.BaseSelector, sock: socket.socket):
        sel.unregister(sock)
        return self._waiting.pop(sock)

    def _ready(self, sel: selectors.BaseSelector, sock: socket.socket) -> None:
        """Bytes to read (or the peer closed): a worker, or 503 when all are busy."""
        address, _ = self._leave(sel, sock)
        if not self.workers.acquire(blocking=False):
            self.rejected += 1
            log.warning("web: %d requests at once; answering 503 to %s", self.max_workers,
                        address)
            with contextlib.suppress(OSError):
                sock.send(BUSY)
            self._drop(sock)
            return
        sock.setblocking(True)
        threading.Thread(target=self._work, args=(sock, address), name="bpbot-web",
                         daemon=True).start()

    def _work(self, sock: socket.socket, address) -> None:
        try:
            self.process_request_thread(sock, address)  # reads, answers, closes
        finally:
            self.workers.release()

    def _expire(self, sel: selectors.BaseSelector) -> None:
        now = time.monotonic()
        for sock in [s for s, (_, deadline) in self._waiting.items() if deadline <= now]:
            self._leave(sel, sock)
            self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.close()

    def server_close(self) -> None:
        self._closing.set()
        self._wake()
        if self._room.is_alive():
            self._room.join(timeout=5)
        with self._lock:
            left, self._arrivals = self._arrivals, []
        for sock, _ in left:
            self._drop(sock)
        self._wake_r.close()
        self._wake_w.close()
        super().server_close()


class BoundedServer6(BoundedServer):
    address_family = socket.AF_INET6


class RequestDeadline:
    """A mixin for the request handler. The socket timeout bounds each read; this
    bounds the request line and headers together, so a client dripping a byte now
    and then cannot hold a worker."""

    def setup(self) -> None:
        super().setup()
        limit = getattr(self.server, "idle_timeout", TIMEOUT)
        self._deadline = threading.Timer(limit, self._too_slow)
        self._deadline.daemon = True
        self._deadline.start()

    def _too_slow(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def parse_request(self) -> bool:
        ok = super().parse_request()  # reads the headers too
        self._deadline.cancel()
        return ok

    def finish(self) -> None:
        self._deadline.cancel()
        super().finish()
