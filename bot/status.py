"""``bpbot status``: the series seen, their state and verdicts."""

from __future__ import annotations

import json

from .state import State, loads


def rows(state: State) -> list[dict]:
    out = []
    for v in state.query(
            "SELECT v.*, s.author_addr, s.author_name FROM versions v JOIN series s"
            " ON s.id = v.series_id ORDER BY v.first_seen, v.id"):
        run = state.one("SELECT * FROM runs WHERE version_id = ? ORDER BY id DESC LIMIT 1",
                        (v["id"],))
        steps = state.query("SELECT name, kernel, status, detail, why, verdict, new_errors,"
                            " new_warnings FROM steps WHERE run_id = ? ORDER BY id",
                            (run["id"],)) if run else []
        out.append(dict(
            id=v["id"], subject=v["subject"], revision=v["revision"], author=v["author_addr"],
            expected=v["expected"], present=loads(v["present"], []), state=v["state"],
            state_reason=v["state_reason"], verdict=v["verdict"],
            base=(run or {}).get("base_ref", ""), base_commit=(run or {}).get("base_commit", ""),
            run=(run or {}).get("id"), steps=steps,
        ))
    return out


def summary(state: State) -> dict:
    counts = {r["kind"]: r["n"] for r in state.query(
        "SELECT kind, COUNT(*) AS n FROM messages GROUP BY kind")}
    outbox = {r["state"]: r["n"] for r in state.query(
        "SELECT state, COUNT(*) AS n FROM outbox GROUP BY state")}
    return dict(messages=counts, outbox=outbox, series=rows(state),
                last_poll_at=state.meta_get("last_poll_at"),
                last_sent_at=state.meta_get("last_sent_at"))


def _kernels(steps: list[dict]) -> str:
    """The version matrix in one line: 3.10:FAIL 4.19:ok 5.10:- 6.1:base-fails."""
    marks = {"pass": "ok", "fail": "FAIL", "not-built": "-", "base-fails": "base-fails",
             "infra-error": "INFRA"}
    return " ".join(f"{s['kernel']}:{marks.get(s['verdict'], s['verdict'])}"
                    for s in steps if s["name"] == "kernel")


def render_table(state: State) -> str:
    data = summary(state)
    lines = [f"{'series':<44} {'ver':<4} {'state':<11} {'verdict':<12} builds",
             "-" * 100]
    for r in data["series"]:
        subject = r["subject"] if len(r["subject"]) <= 44 else r["subject"][:41] + "..."
        lines.append(f"{subject:<44} v{r['revision']:<3} {r['state']:<11} "
                     f"{r['verdict'] or '-':<12} {_kernels(r['steps'])}")
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(data["messages"].items()))
    lines.append("")
    lines.append(f"messages: {kinds or 'none'}")
    lines.append("replies: " + (", ".join(f"{k} {n}" for k, n in sorted(data["outbox"].items()))
                                or "none"))
    return "\n".join(lines)


def render_json(state: State) -> str:
    return json.dumps(summary(state), indent=2, sort_keys=True)
