"""``bpbot demo``: the real daemon loop over the sample list, with an
in-process SMTP server on 127.0.0.1, then a summary and every reply sent."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import logging
import socket
import tempfile
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller

from bot import status
from bot.daemon import Daemon
from bot.demo import commands as demo_commands
from bot.demo import layout
from bot.sandbox import bwrap as sandboxes
from bot.state import State

log = logging.getLogger(__name__)


class Collector:
    """aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's API
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                  bytes(envelope.original_content or envelope.content)))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _feed_and_serve(daemon: Daemon, maildir: Path, collector: Collector) -> None:
    """Mail reaches the list one message at a time, as it would in real life:
    a v2 sent after the v1 reply is tested on its own, not superseding v1."""
    # Mail commands first: a reader asks for help and subscribes (then gets copies).
    first = await demo_commands.help_and_subscribe(
        daemon, maildir, lambda: [raw for *_, raw in collector.messages])
    for index, src in enumerate(layout.sample_list(), start=first):
        layout.deliver(maildir, src, index)
        log.info("list: delivered %s", src.name)
        await daemon.process()
    await daemon.run(until_idle=True, tick=0.5)


def run_demo(workdir: Path | None, out, web_port: int | None = None) -> int:
    started = time.monotonic()
    workdir = Path(workdir or tempfile.mkdtemp(prefix="bpbot-demo-"))
    rules = layout.prepare(workdir, with_list=False)
    collector = Collector()
    port = free_port()
    controller = Controller(collector, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        rules = dataclasses.replace(rules, smtp=dataclasses.replace(rules.smtp, port=port))
        state = State(rules.state_dir / "bpbot.sqlite")
        sandbox = sandboxes.for_rules(rules)
        daemon = Daemon(rules, state, sandbox, progress=lambda t: log.info("%s", t))
        asyncio.run(_feed_and_serve(daemon, rules.source.path, collector))
    finally:
        controller.stop()
    elapsed = time.monotonic() - started
    print(f"bpbot demo: working dir {workdir}", file=out)
    print(f"SMTP server on 127.0.0.1:{port} received {len(collector.messages)} replies "
          f"in {elapsed:.1f}s\n", file=out)
    print(status.render_table(state), file=out)
    for i, (sender, rcpts, raw) in enumerate(collector.messages, start=1):
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        print(f"\n{'=' * 72}\nReply {i} of {len(collector.messages)}  "
              f"(envelope: {sender} -> {', '.join(rcpts)})\n{'=' * 72}", file=out)
        for name in ("From", "To", "Cc", "Subject", "Message-ID", "In-Reply-To", "References",
                     "Auto-Submitted", "X-Loop", "X-bpbot-Verdict", "X-bpbot-Commands",
                     "X-bpbot-Copy-For"):
            if msg[name]:
                print(f"{name}: {msg[name]}", file=out)
        print("", file=out)
        body = msg.get_content().rstrip()
        if msg["X-bpbot-Copy-For"]:  # a subscriber's copy: the report above plus a footer
            body = "[the report above, then:]\n\n" + "\n\n".join(
                body.replace("\r\n", "\n").split("\n\n")[-2:])
        print(body, file=out)
    queued = state.one("SELECT COUNT(*) AS n FROM outbox WHERE state='queued'")["n"]
    if queued:
        print(f"\n{queued} replies are still queued", file=out)
        return 1
    print(f"\nThe status page of this run: BPBOT_DEMO_DIR={workdir} bpbot web "
          f"(then open http://127.0.0.1:8080/), or run the demo with --web", file=out)
    if web_port is not None:
        from bot.status import ReadOnlyState
        from bot.web import page as web
        out.flush()
        web.serve(rules, ReadOnlyState(state.path), "127.0.0.1", web_port)
    return 0
