"""A UID the server lists but sends without its body (expunged meanwhile, a
server error) is never passed silently: the cursor waits for it, and a UID
given up is named in an error."""

from __future__ import annotations

import dataclasses
import logging

from bot.config import rules as config
from bot.demo import layout
from bot.ingest import sources, spool
from bot.state import State

SAMPLE = {p.name[:2]: p for p in layout.sample_list()}


class FakeImap:
    def __init__(self, bodies):
        self.bodies = bodies  # uid -> bytes, or None: "no body this time"

    def noop(self):
        pass

    def search(self, criteria):
        return sorted(self.bodies)

    def fetch(self, uids, what):
        return {u: ({b"BODY[]": self.bodies[u]} if self.bodies[u] is not None else {b"FLAGS": ()})
                for u in uids}


def _source(tmp_path, bodies):
    rules = config.load(config.DEMO_RULES, base_dir=tmp_path)
    rules = dataclasses.replace(rules, source=dataclasses.replace(rules.source, kind="imap"))
    state = State(tmp_path / "state.sqlite")
    src = sources.ImapSource(rules, state)
    src.client, src.uidvalidity = FakeImap(bodies), 7
    return src, state


def test_the_cursor_waits_for_a_uid_without_its_body(tmp_path, caplog):
    src, state = _source(tmp_path, {1: SAMPLE["09"].read_bytes(), 2: None,
                                    3: SAMPLE["10"].read_bytes()})
    src.poll()
    assert spool.get_cursor(state, src.name).last_uid == 1
    assert "UID 2 came without its body" in caplog.text
    src.client.bodies[2] = SAMPLE["08"].read_bytes()  # the server sends it now
    src.poll()
    assert spool.get_cursor(state, src.name).last_uid == 3
    assert len(state.query("SELECT msgid FROM messages")) == 3


def test_a_uid_that_never_comes_is_given_up_with_an_error(tmp_path, caplog):
    src, state = _source(tmp_path, {1: None, 2: SAMPLE["10"].read_bytes()})
    for _ in range(sources.MISSING_TRIES):
        src.poll()
    assert spool.get_cursor(state, src.name).last_uid == 2
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and "UID 1" in errors[0].getMessage()
