"""``bpbot check``: the daemon's pipeline on local mail, sending nothing.

Exit 0: every configured kernel was built and passes (or only files that
need no build changed); 1: a series breaks something; 2: not (fully)
tested: no patch, incomplete, does not apply, already applied, nothing
built, only some kernels built (partial), an infrastructure error;
3: usage or configuration error.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import json
import logging
import mailbox
import sys
import tempfile
from pathlib import Path

from . import config, layout, pipeline, report, sandbox, spool, tracker
from .series import configure_b4
from .state import State, loads

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
    head = path.open("rb").read(5)
    if head == b"From ":
        box = mailbox.mbox(path, factory=None, create=False)
        return [box.get_bytes(k) for k in box.iterkeys()]
    return [path.read_bytes()]


def run_check(rules_path: Path | None, paths: list[Path], as_json: bool = False,
              show_progress: bool = False) -> int:
    try:
        raws = [raw for p in paths for raw in read_mail(p)]
    except (InputError, OSError) as exc:
        print(f"bpbot: {exc}", file=sys.stderr)
        return 3
    scratch = Path(tempfile.mkdtemp(prefix="bpbot-check-"))
    if rules_path is None:
        rules = layout.prepare(scratch / "sample", with_list=False)
    else:
        rules = config.load(rules_path)
    # Never touch the daemon's state: a scratch state, and no grace period.
    rules = dataclasses.replace(rules, state_dir=scratch / "state", grace_seconds=0)
    state = State(rules.state_dir / "bpbot.sqlite")
    configure_b4(rules.bot_name, rules.bot_address)
    spool.spool(state, "check", raws, bot_address=rules.bot_address, loop_id=rules.loop_id,
                max_bytes=rules.max_message_bytes)
    threaded = any(r["in_reply_to"] or r["refs"] != "[]" for r in state.query(
        "SELECT in_reply_to, refs FROM messages"))
    tracker.assemble(state, rules, one_thread=not threaded)
    tracker.expire(state, rules)
    progress = (lambda text: print(f"bpbot: {text}", file=sys.stderr, flush=True)) \
        if show_progress else None
    box = sandbox.for_rules(rules)
    while (version := pipeline.next_ready(state)) is not None:
        pipeline.run_version(state, rules, box, version, progress)
    tracker.expire(state, rules)  # answers versions b4 found untestable at run time
    replies = state.query("SELECT * FROM outbox ORDER BY id")
    verdicts = [r["verdict"] for r in state.query(
        "SELECT verdict FROM versions WHERE state NOT IN ('superseded')")]
    code = _exit_code(verdicts)
    if as_json:
        print(json.dumps(_as_json(state, replies, code), indent=2, sort_keys=True))
    else:
        if not replies:
            kinds = state.query("SELECT kind, reason, subject FROM messages")
            print("bpbot: no patch series found in the input:", file=sys.stderr)
            for k in kinds:
                print(f"  {k['kind']}: {k['subject'] or '(no subject)'} ({k['reason']})",
                      file=sys.stderr)
        for r in replies:
            msg = email.message_from_bytes(bytes(r["raw"]), policy=email.policy.default)
            print(f"Subject: {msg['Subject']}\nTo: {msg['To']}\nIn-Reply-To: {msg['In-Reply-To']}\n")
            print(msg.get_content())
    return code


# The exit code of one version's verdict. Anything not here (not-tested,
# partial, not-applied, infra-error, untestable, "" for unanswered) is 2:
# never a 0 for what was not tested.
EXIT_CODES = {report.PASS: 0, report.FAIL: 1}
NOT_TESTED_EXIT = 2


def _exit_code(verdicts: list[str]) -> int:
    codes = [EXIT_CODES.get(v, NOT_TESTED_EXIT) for v in verdicts]
    if 1 in codes:
        return 1
    return max(codes, default=NOT_TESTED_EXIT)


def _as_json(state: State, replies: list[dict], code: int) -> dict:
    from . import status
    return dict(
        exit_code=code,
        series=status.rows(state),
        replies=[dict(kind=r["kind"], recipients=loads(r["recipients"], []),
                      text=email.message_from_bytes(bytes(r["raw"]),
                                                    policy=email.policy.default).get_content())
                 for r in replies],
    )
