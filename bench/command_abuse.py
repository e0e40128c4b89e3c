"""Mail commands under abuse: reflection and a flood of forged senders.

Reflection: one ``status <9 MB word>`` mail under a forged From; prints the
size of the reply the victim would get. Flood: 120 forged-From
``subscribe`` mails ahead of a maintainer's ``status queue``, answered in
hourly passes with the default limits; prints after how many hours the
maintainer was answered, how many confirmation tokens went to the forged
addresses and how many mails were dropped. Last line:
``reflect_reply_bytes=<n> flood_maintainer_wait_hours=<n>
flood_tokens_to_strangers=<n> flood_dropped=<n>``.

    .venv/bin/python bench/command_abuse.py [--word-mb 9]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.commands import runner as command_runner
from bot.config import rules as config
from bot.ingest import spool  # noqa: E402
from bot.state import State  # noqa: E402

T0 = 1_768_000_000.0  # 2026-01-09 23:06 UTC
DATE = "Fri, 09 Jan 2026 23:00:00 +0000"


def _mail(rules: config.Rules, frm: str, msgid: str, text: str) -> bytes:
    return (f"From: {frm}\nTo: {rules.bot_address}\nSubject: commands\nMessage-ID: <{msgid}>\n"
            f"Date: {DATE}\n\n{text}").encode()


def _setup(tmp: Path) -> tuple[config.Rules, State]:
    rules = config.load(config.DEMO_RULES, base_dir=tmp)
    return rules, State(tmp / "state.sqlite")


def reflection(tmp: Path, word_mb: int) -> int:
    rules, state = _setup(tmp)
    raw = _mail(rules, "Victim <victim@example.org>", "r@x", f"status {'x' * word_mb * 10**6}\n")
    spool.spool(state, "bench", [raw], bot_address=rules.bot_address, loop_id=rules.loop_id)
    command_runner.process_pending(state, rules, clock=lambda: T0)
    return len(bytes(state.one("SELECT raw FROM outbox")["raw"]))


def flood(tmp: Path) -> tuple[int, int, int]:
    rules, state = _setup(tmp)
    raws = [_mail(rules, f"V{i} <victim{i}@example.net>", f"f{i}@x", "subscribe\n")
            for i in range(120)]
    raws.append(_mail(rules, "Luis <maintainer@backports.example.org>", "luis@x",
                      "status queue\n"))
    spool.spool(state, "bench", raws, bot_address=rules.bot_address, loop_id=rules.loop_id)
    waited = -1
    for hour in range(4):
        command_runner.process_pending(state, rules, clock=lambda h=hour: T0 + h * 3601)
        if waited < 0 and state.one("SELECT 1 FROM outbox WHERE key = 'command:luis@x'"):
            waited = hour
    tokens = state.one("SELECT COUNT(*) AS n FROM tokens")["n"]
    dropped = state.one("SELECT COUNT(*) AS n FROM command_mails WHERE outcome = 'dropped'")
    return waited, tokens, dropped["n"] if dropped else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--word-mb", type=int, default=9)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        reply = reflection(Path(tmp) / "reflect", args.word_mb)
        waited, tokens, dropped = flood(Path(tmp) / "flood")
    print(f"reflect_reply_bytes={reply} flood_maintainer_wait_hours={waited} "
          f"flood_tokens_to_strangers={tokens} flood_dropped={dropped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
