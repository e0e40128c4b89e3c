"""Notices about a version that is not tested: incomplete after the grace
period, untestable (with the reason), pull requests; and the reply target of a
version (its cover letter, else patch 1)."""

from __future__ import annotations

import logging

from bot import store
from bot.config.rules import Rules
from bot.ingest import classify as cls
from bot.model import Target, Verdict, verdict_header
from bot.reply import outbox, report
from bot.series import assembly as series
from bot.series.tracker import KINDS_SQL
from bot.state import State, loads, now

log = logging.getLogger(__name__)


def target_for(state: State, version: dict) -> Target:
    """What a reply to ``version`` answers: its cover letter, else patch 1."""
    msg = state.one("SELECT subject, refs FROM messages WHERE msgid = ?", (version["reply_to"],))
    ser = state.one("SELECT * FROM series WHERE id = ?", (version["series_id"],))
    return Target(
        msgid=version["reply_to"], subject=msg["subject"] if msg else version["subject"],
        references=loads(msg["refs"], []) if msg else [], author_name=ser["author_name"],
        author_addr=ser["author_addr"], series_subject=version["subject"],
        revision=version["revision"], expected=version["expected"],
        present=loads(version["present"], []), notes=_assembly_notes(state, version),
    )


def _assembly_notes(state: State, version: dict) -> list[str]:
    """What assembly left out of this version (duplicates, a 3/2, an unnumbered
    patch; quarantined answers to its mails), for the reply; read again from
    the thread (no b4)."""
    ids = loads(version["thread_msgids"], []) or loads(version["msgids"], [])
    if not ids:
        return []
    raws = [(r["msgid"], bytes(r["raw"])) for r in state.query(
        f"SELECT msgid, raw FROM messages WHERE msgid IN ({','.join('?' * len(ids))})"
        f" AND kind IN ({KINDS_SQL})", ids)]
    quarantined = [f"a mail of this thread was quarantined and not used: "
                   f"{r['subject'] or '(no subject)'} <{r['msgid']}>: {r['reason']}"
                   for r in state.query(
                       f"SELECT msgid, subject, reason FROM messages WHERE kind = ? AND in_reply_to"
                       f" IN ({','.join('?' * len(ids))}) ORDER BY msgid", [cls.QUARANTINE, *ids])]
    return series.assembly_notes(raws, version["revision"]) + quarantined


def expire(state: State, rules: Rules, at: float | None = None) -> int:
    """Answer versions still incomplete after the grace period; returns how many."""
    at = now() if at is None else at
    due = store.incomplete_due(state, at - rules.grace_seconds)
    for version in due:
        _answer(state, rules, version, Verdict.INCOMPLETE, store.answer_incomplete,
                lambda t: report.render_incomplete(rules, t, _human(rules.grace_seconds)))
    for version in store.untestable_unanswered(state):
        _answer(state, rules, version, Verdict.UNTESTABLE, store.answer_untestable,
                lambda t, v=version: report.render_untestable(rules, t, v["state_reason"]))
    answer_pull_requests(state, rules)
    return len(due)


def answer_pull_requests(state: State, rules: Rules) -> int:
    """With ``[series] answer_pull_requests``, one line to each pull request
    not answered yet (keyed per message in the outbox); returns how many."""
    if not rules.answer_pull_requests:
        return 0
    due = state.query("SELECT msgid, subject, from_addr, refs FROM messages m WHERE kind = ?"
                      " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.key = 'pull:' || m.msgid)",
                      (cls.PULL,))
    for row in due:
        target = Target(msgid=row["msgid"], subject=row["subject"],
                               references=loads(row["refs"], []), author_name="",
                               author_addr=row["from_addr"], series_subject=row["subject"],
                               revision=1, expected=0)
        key = f"pull:{row['msgid']}"
        try:
            msg, rcpts = report.reply(rules, target, report.render_pull_request(rules), key,
                                      "NOT TESTED (pull request)")
        except Exception:  # noqa: BLE001 - one bad mail must not stop the others
            log.exception("could not write the pull request notice for %s", row["msgid"])
            continue
        with state.tx() as db:
            outbox.queue(db, key, "pull-request", msg, rcpts)
    return len(due)


def _answer(state: State, rules: Rules, version: dict, kind: Verdict, transition,
            render) -> None:
    """Queue one notice and move the version on, in one transaction. A notice that
    cannot be written is logged and dropped, so the version never blocks the rest."""
    key = f"{kind}:{version['id']}"
    try:
        target = target_for(state, version)
        msg, rcpts = report.reply(rules, target, render(target), key, verdict_header(kind))
    except Exception:  # noqa: BLE001 - one bad version must not stop the others
        log.exception("could not write the %s notice for version %d", kind, version["id"])
        msg = None
    with state.tx() as db:
        transition(db, version["id"])
        if msg is not None:
            outbox.queue(db, key, kind, msg, rcpts, version_id=version["id"])


def _human(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"
