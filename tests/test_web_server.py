"""The status page's HTTP server is bounded: idle sockets hold no thread and
are closed after the timeout, at most ``max_workers`` requests run at once,
and a real request is answered whatever idle connections are open."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from types import SimpleNamespace

import pytest

from bot.web import page as web

ANSWER_WITHIN = 5.0  # seconds a real request may take on a busy 2-core machine


class App:
    """A stand-in for StatusApp: answers "ok", or blocks until released."""

    def __init__(self, block: bool = False):
        self.block = block
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)
        self.state = SimpleNamespace(close=lambda: None)

    def handle(self, target: str) -> web.Response:
        if self.block and target == "/slow":
            self.entered.release()
            self.release.wait(60)
        return web.Response(200, b"ok\n", "text/plain")


@pytest.fixture
def serve():
    servers = []

    def start(app: App, **limits) -> int:
        server = web.make_server(SimpleNamespace(file="rules.toml"), None, "127.0.0.1", 0,
                                 app=app, **limits)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.server_address[1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def get(port: int, path: str = "/") -> tuple[int, bytes, float]:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        res = conn.getresponse()
        return res.status, res.read(), time.monotonic() - started
    finally:
        conn.close()


def idle(port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        socks.append(sock)
    return socks


def closed_by_server(sock: socket.socket, within: float) -> float | None:
    """Seconds until the server closed ``sock`` (read gives EOF), None if it did not."""
    started = time.monotonic()
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def test_idle_connections_hold_no_thread_and_a_real_request_is_answered(serve):
    port = serve(App(), timeout=30, max_workers=8)
    before = threading.active_count()
    socks = idle(port, 100)
    try:
        code, body, took = get(port)
        assert (code, body) == (200, b"ok\n") and took < ANSWER_WITHIN
        # The request was accepted after the 100 idle ones: none of them has a thread.
        assert threading.active_count() - before <= 2
    finally:
        for sock in socks:
            sock.close()


def test_an_idle_connection_is_closed_after_the_timeout(serve):
    port = serve(App(), timeout=0.5)
    [silent] = idle(port, 1)
    [partial] = idle(port, 1)
    partial.sendall(b"GET / HTTP/1.0\r\n")  # a request that never ends
    try:
        took = closed_by_server(silent, within=20)
        assert took is not None and took >= 0.3, "not closed, or closed before its timeout"
        assert closed_by_server(partial, within=20) is not None, "a stalled request kept open"
    finally:
        silent.close()
        partial.close()
    assert get(port)[0] == 200


def test_past_the_worker_cap_a_request_gets_503_at_once(serve):
    app = App(block=True)
    port = serve(app, timeout=30, max_workers=2)
    results: list[int] = []
    slow = [threading.Thread(target=lambda: results.append(get(port, "/slow")[0]))
            for _ in range(2)]
    for t in slow:
        t.start()
    try:
        for _ in slow:
            assert app.entered.acquire(timeout=30), "a slow request never reached the app"
        code, body, took = get(port)
        assert code == 503 and b"busy" in body and took < ANSWER_WITHIN
    finally:
        app.release.set()
        for t in slow:
            t.join(30)
    assert results == [200, 200]
    assert get(port)[0] == 200  # the workers are free again


def test_past_the_waiting_room_the_oldest_idle_connection_goes(serve):
    port = serve(App(), timeout=30, max_waiting=10)
    socks = idle(port, 20)
    try:
        assert get(port)[0] == 200
        assert closed_by_server(socks[0], within=20) is not None
        assert closed_by_server(socks[-1], within=0.5) is None  # the newest still waits
    finally:
        for sock in socks:
            sock.close()


def test_a_client_dripping_its_headers_cannot_hold_a_worker():
    """The socket timeout bounds each read; the request line and headers together
    must arrive within the timeout too, or dripping clients starve the page."""
    import http.client
    import socket
    import threading
    import time
    from types import SimpleNamespace

    from bot.web import page as web

    class App:
        state = SimpleNamespace(close=lambda: None)

        def handle(self, target):
            return web.Response(200, b"ok\n", "text/plain")

    timeout, workers = 1.0, 2
    server = web.make_server(SimpleNamespace(file="rules.toml"), None, "127.0.0.1", 0,
                             app=App(), timeout=timeout, max_workers=workers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    stop = threading.Event()
    socks = []
    try:
        for _ in range(workers):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET / HTTP/1.1\r\nX: ")
            socks.append(s)

        def drip():
            while not stop.wait(timeout / 3):
                for s in socks:
                    with contextlib.suppress(OSError):
                        s.sendall(b"a")
        threading.Thread(target=drip, daemon=True).start()
        deadline = time.monotonic() + 60
        while True:  # the dripping workers are cut off within about one timeout
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/")
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                break
            assert time.monotonic() < deadline, "dripping clients still hold every worker"
            time.sleep(0.2)
    finally:
        stop.set()
        for s in socks:
            s.close()
        server.shutdown()
        server.server_close()
