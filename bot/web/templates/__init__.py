"""HTML for the status page (bot/web/page.py): server-rendered, no script.

Every value from the state is escaped here (``h``); a verdict is shown as a
word in a coloured cell, so the page reads the same without colour.
"""

from __future__ import annotations

import html
import time
from urllib.parse import quote

from bot import __version__
from bot.status import age

# The words `bpbot status` prints for the version matrix (bot/status.py).
VERDICT_LABELS = {"pass": "ok", "fail": "FAIL", "base-fails": "base-fails", "not-built": "-",
                  "infra-error": "INFRA"}
STATUS_LABELS = {"success": "ok", "failed": "FAILED", "skipped": "skipped", "timeout": "TIMEOUT",
                 "infra-error": "INFRA"}
OVERALL_LABELS = {"pass": "PASS", "fail": "FAIL", "not-applied": "does not apply",
                  "infra-error": "INFRA ERROR", "incomplete": "incomplete", "untestable": "untestable",
                  "not-tested": "NOT TESTED", "partial": "PARTIAL"}
# Colour class per word; the word itself carries the meaning.
CLASSES = {"pass": "good", "success": "good", "fail": "bad", "failed": "bad", "timeout": "bad",
           "not-applied": "bad", "base-fails": "warn", "infra-error": "infra", "incomplete": "warn",
           "untestable": "warn", "not-built": "none", "skipped": "none",
           "not-tested": "warn", "partial": "warn"}

REPLY_ABOUT = {"command": "a reply to a mail command", "copy": "a subscriber's copy"}

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.2em 2em; color: #1b1b1b; }
h1 { font-size: 1.5em; margin: 0 0 .3em; } h2 { font-size: 1.15em; margin: 1.4em 0 .4em; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; margin: .3em 0 1em; }
th, td { border: 1px solid #c8c8c8; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; font-weight: 600; }
td.c { text-align: center; font-weight: 600; white-space: nowrap; padding: 3px 5px; }
.wide { overflow-x: auto; } .author { font-size: 12px; }
.good { background: #d5f0d8; color: #14532d; } .bad { background: #fbd5d5; color: #7f1d1d; }
.warn { background: #fdf0c4; color: #713f12; } .infra { background: #e6dcf5; color: #4c1d95; }
.none { background: #f3f3f3; color: #555; font-weight: normal !important; }
.health { padding: .5em .8em; border: 2px solid; margin: .6em 0 1em; }
.health.ok { border-color: #2f855a; background: #f0faf2; }
.health.bad { border-color: #c53030; background: #fff0f0; }
.muted { color: #666; } code, pre { font: 12px/1.35 ui-monospace, monospace; }
pre.log { background: #f7f7f7; border: 1px solid #ddd; padding: .6em; overflow-x: auto;
  max-height: 40em; white-space: pre-wrap; word-break: break-all; }
details { margin: .4em 0; } summary { cursor: pointer; font-weight: 600; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 2px 1em; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; }
footer { margin-top: 2em; color: #666; font-size: 12px; }
"""


def h(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def when(stamp: float | None, now: float) -> str:
    if not stamp:
        return "never"
    text = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(stamp))
    return f'<span title="{h(text)}">{h(age(now - stamp))} ago</span>'


def cell(word: str, labels: dict[str, str], title: str = "", href: str = "") -> str:
    label = h(labels.get(word, word or "-"))
    if href:
        label = f'<a href="{h(href)}">{label}</a>'
    return f'<td class="c {CLASSES.get(word, "none")}" title="{h(title)}">{label}</td>'


def overall(row: dict) -> str:
    """The verdict, or the state while there is none."""
    word = row["verdict"] or row["state"]
    return cell(word, OVERALL_LABELS, row.get("state_reason") or "")


def page(title: str, body: str, now: float, refresh: int = 0) -> str:
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">{meta}
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{h(title)}</title><style>{CSS}</style></head><body>
<nav><a href="/">Series</a><a href="/#queue">Queue</a><a href="/api/series">JSON</a></nav>
{body}
<footer>bpbot {h(__version__)} &middot; page generated {h(stamp)} &middot; JSON:
<a href="/api/series">/api/series</a> <a href="/api/queue">/api/queue</a>
<a href="/api/health">/api/health</a></footer>
</body></html>
"""


def health_line(data: dict) -> str:
    now = data["now"]
    parts = [f"last successful poll {when(data['last_poll_at'], now)}",
             f"last reply sent {when(data['last_sent_at'], now)}",
             f"last mail spooled {when(data['last_ingest_at'], now)}"]
    if data["oldest_pending_at"]:
        parts.append(f"oldest pending: {h(data['oldest_pending'])}, since "
                     f"{when(data['oldest_pending_at'], now)}")
    else:
        parts.append("nothing pending")
    if data["ok"]:
        head = "<strong>Health: OK</strong>"
    else:
        head = "<strong>Health: ATTENTION</strong> &mdash; " + "; ".join(
            h(p) for p in data["problems"])
    kind = "ok" if data["ok"] else "bad"
    return f'<p class="health {kind}" id="health">{head}<br>{" &middot; ".join(parts)}</p>'


def series_table(rows: list[dict], kernels: list[str]) -> str:
    if not rows:
        return "<p>No series seen yet.</p>"
    head = "".join(f"<th>{h(k)}</th>" for k in kernels)
    out = ['<div class="wide"><table id="series"><thead><tr><th>Series, author</th><th>Ver</th>'
           f"<th>State</th><th>Verdict</th><th>apply</th><th>generate</th>{head}</tr></thead>"
           "<tbody>"]
    for r in rows:
        steps = {(s["name"], s["kernel"]): s for s in r["steps"]}
        link = f"/series/{r['id']}"
        tds = [f'<td><a href="{h(link)}">{h(r["subject"])}</a><br>'
               f'<span class="author muted">{h(r["author"])}</span></td>',
               f"<td>v{h(r['revision'])}</td>",
               f'<td title="{h(r["state_reason"])}">{h(r["state"])}</td>', overall(r)]
        for name in ("apply", "generate"):
            s = steps.get((name, ""))
            tds.append(cell(s["status"], STATUS_LABELS, s["detail"]) if s
                       else '<td class="c none">-</td>')
        for k in kernels:
            s = steps.get(("kernel", k))
            tds.append(cell(s["verdict"], VERDICT_LABELS, _kernel_title(s),
                            f"{link}#kernel-{quote(k)}") if s else '<td class="c none">-</td>')
        out.append(f'<tr class="series-row" data-version="{h(r["id"])}">{"".join(tds)}</tr>')
    out.append("</tbody></table></div>")
    return "\n".join(out)


def _kernel_title(step: dict) -> str:
    parts = [step.get("detail") or "", f"chosen: {step['why']}" if step.get("why") else ""]
    return " | ".join(p for p in parts if p)


def legend() -> str:
    words = [("pass", "builds, no new errors"), ("fail", "new errors from the series"),
             ("base-fails", "the base already fails (not blamed)"),
             ("not-built", "not built (not in the subset)"),
             ("infra-error", "the bot failed, retried")]
    items = " ".join(f'<span class="c {CLASSES[w]}">&nbsp;{h(VERDICT_LABELS[w])}&nbsp;</span> '
                     f"{h(text)} &nbsp;" for w, text in words)
    return f'<p class="muted">Kernel cells: {items}</p>'


def queue_section(data: dict, now: float) -> str:
    out = ['<h2 id="queue">Queue</h2>']
    if data["versions"]:
        out.append("<table><thead><tr><th>Series</th><th>Ver</th><th>State</th><th>Why</th>"
                   "<th>Seen</th></tr></thead><tbody>")
        for v in data["versions"]:
            out.append(f'<tr><td><a href="/series/{h(v["id"])}">{h(v["subject"])}</a></td>'
                       f"<td>v{h(v['revision'])}</td><td>{h(v['state'])}</td>"
                       f"<td>{h(v['state_reason'])}</td><td>{when(v['first_seen'], now)}</td></tr>")
        out.append("</tbody></table>")
    else:
        out.append("<p>No series waiting or being tested.</p>")
    if data["outbox"]:
        # Who a reply goes to is not shown: command replies and subscribers' copies
        # go to people who wrote to the bot, not to the list.
        out.append("<table><thead><tr><th>Reply</th><th>About</th><th>Attempts</th>"
                   "<th>Next attempt</th><th>Last error</th><th>Queued</th></tr></thead><tbody>")
        for r in data["outbox"]:
            nxt = "now" if r["next_attempt_at"] <= now else f"in {age(r['next_attempt_at'] - now)}"
            about = r["subject"] or REPLY_ABOUT.get(r["kind"], "")
            out.append(f"<tr><td>{h(r['kind'])}</td><td>{h(about)}</td><td>{h(r['attempts'])}</td>"
                       f"<td>{h(nxt)}</td><td>{h(r['last_error'])}</td>"
                       f"<td>{when(r['created_at'], now)}</td></tr>")
        out.append("</tbody></table>")
    else:
        out.append("<p>No replies queued.</p>")
    return "\n".join(out)


def quarantine_section(items: list[dict], now: float) -> str:
    """Mail kept aside and never used (bot/status.py ``quarantined``), with why."""
    out = ['<h2 id="quarantine">Quarantined mail</h2>']
    if not items:
        return out[0] + "<p>None.</p>"
    out.append("<table><thead><tr><th>Message-ID</th><th>Subject</th><th>Why</th>"
               "<th>Arrived</th></tr></thead><tbody>")
    for q in items:
        out.append(f"<tr><td>&lt;{h(q['msgid'])}&gt;</td><td>{h(q['subject'])}</td>"
                   f"<td>{h(q['reason'])}</td><td>{when(q['received_at'], now)}</td></tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def index(rows: list[dict], kernels: list[str], queue: dict, health: dict, total: int,
          quarantined: list[dict] | None = None) -> str:
    now = health["now"]
    shown = f"the {len(rows)} most recent of {total}" if total > len(rows) else f"{total}"
    body = (f"<h1>bpbot status</h1>{health_line(health)}"
            f"<h2>Series ({h(shown)}, newest first)</h2>{series_table(rows, kernels)}{legend()}"
            f"{queue_section(queue, now)}{quarantine_section(quarantined or [], now)}")
    return page("bpbot status", body, now, refresh=60)


def version_page(d: dict, logs: dict[int, str], base_logs: dict[str, str], now: float) -> str:
    """One series version: facts, the kernel x step matrix, then every step's log.

    ``logs`` maps a step id to its log excerpt (already capped, not yet escaped);
    ``base_logs`` a kernel name to the base build's log excerpt."""
    run = d["run"]
    title = f"{d['subject']} (v{d['revision']})"
    facts = [("Author", f"{d['author_name']} <{d['author']}>" if d["author_name"] else d["author"]),
             ("State", d["state"] + (f" ({d['state_reason']})" if d["state_reason"] else "")),
             ("Patches", f"{len(d['present'])} of {d['expected']}"),
             ("Reply to", f"<{d['reply_to']}>")]
    if run:
        facts += [("Base", f"{run['base_ref']} at {run['base_commit'][:12]}"
                           + (f" ({run['base_reason']})" if run["base_reason"] else "")),
                  ("Run", f"{run['id']}: {run['state']}")]
    dl = "".join(f"<dt>{h(k)}</dt><dd>{h(v)}</dd>" for k, v in facts)
    verdict = (f'<table><tr><th>Verdict</th>{overall(d)}<td>first seen '
               f"{when(d['first_seen'], now)}"
               + (f", tested {when(run['finished_at'], now)}" if run and run["finished_at"] else "")
               + "</td></tr></table>")
    body = [f"<h1>{h(title)}</h1>", verdict, f'<dl class="facts">{dl}</dl>', _others(d)]
    if not run:
        body.append("<p>Not tested yet.</p>")
        return page(title, "\n".join(body), now)
    body += [_steps_table(d), _matrix_table(d), "<h2>Logs</h2>"]
    for s in d["steps"]:
        if s["name"] == "kernel":
            continue
        label = s["name"] + (f" {s['kernel']}" if s["kernel"] else "")
        status = STATUS_LABELS.get(s["status"], s["status"])
        anchor = f"step-{s['id']}"
        raw = f'<p><a href="/log/{s["id"]}">raw log</a></p>' if s["id"] in logs else ""
        text = logs.get(s["id"])
        opened = " open" if s["status"] not in ("success", "skipped") else ""
        took = f"{s['duration']:.1f}s"
        took = "" if s["detail"] == took else f' <span class="muted">({took})</span>'
        body.append(f'<details id="{anchor}"{opened}><summary>{h(label)}: {h(status)}'
                    f"{h(' - ' + s['detail']) if s['detail'] else ''}{took}</summary>{raw}"
                    f"{_commands(s)}{_diagnostics(s)}"
                    + (f'<pre class="log">{h(text)}</pre>' if text is not None
                       else '<p class="muted">No log.</p>') + "</details>")
    for kernel, text in base_logs.items():
        body.append(f'<details id="base-{h(kernel)}"><summary>base build {h(kernel)}'
                    f" (compared with)</summary>"
                    f'<p><a href="/runs/{h(run["id"])}/base/{quote(kernel)}">raw log</a></p>'
                    f'<pre class="log">{h(text)}</pre></details>')
    return page(title, "\n".join(body), now)


def _others(d: dict) -> str:
    links = []
    for v in d["versions"]:
        word = v["verdict"] or v["state"]
        text = f"v{v['revision']} {OVERALL_LABELS.get(word, word)}"
        links.append(f"<strong>{h(text)}</strong>" if v["id"] == d["id"]
                     else f'<a href="/series/{h(v["id"])}">{h(text)}</a>')
    runs = [f'<a href="/runs/{h(r["id"])}">run {h(r["id"])}</a> ({h(r["verdict"] or r["state"])})'
            for r in d["runs"]]
    out = f"<p>Versions: {' &middot; '.join(links)}</p>"
    return out + (f"<p>Runs: {' &middot; '.join(runs)}</p>" if len(runs) > 1 else "")


def _steps_table(d: dict) -> str:
    rows = []
    for s in d["steps"]:
        if s["name"] in ("apply", "generate"):
            rows.append(f'<tr><th><a href="#step-{h(s["id"])}">{h(s["name"])}</a></th>'
                        f"{cell(s['status'], STATUS_LABELS)}<td>{h(s['detail'])}</td></tr>")
    return "<h2>Steps</h2><table><tbody>" + "".join(rows) + "</tbody></table>"


def _matrix_table(d: dict) -> str:
    builds = {s["kernel"]: s for s in d["steps"] if s["name"] == "build"}
    out = ['<h2>Kernels</h2><table id="matrix"><thead><tr><th>Kernel</th><th>Chosen because</th>'
           "<th>build</th><th>Verdict</th><th>Detail</th><th>New errors</th><th>New warnings</th>"
           "</tr></thead><tbody>"]
    for k in (s for s in d["steps"] if s["name"] == "kernel"):
        b = builds.get(k["kernel"])
        build = (cell(b["status"], STATUS_LABELS, b["detail"], f"#step-{b['id']}") if b
                 else '<td class="c none">-</td>')
        out.append(f'<tr id="kernel-{h(k["kernel"])}"><th>{h(k["kernel"])}</th>'
                   f"<td>{h(k['why'])}</td>{build}{cell(k['verdict'], VERDICT_LABELS)}"
                   f"<td>{h(k['detail'])}</td><td>{h(k['new_errors'])}</td>"
                   f"<td>{h(k['new_warnings'])}</td></tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _commands(step: dict) -> str:
    if not step.get("commands"):
        return ""
    text = "\n".join("$ " + line for line in step["commands"])
    return (f'<p class="muted">As you would run it in a clone of the tree (see the reply\'s'
            f' "To reproduce"):</p><pre class="command">{h(text)}</pre>')


def _diagnostics(step: dict, limit: int = 10) -> str:
    seen: set[tuple] = set()
    new = []
    for x in step["diagnostics"]:  # the same line from a header included twice counts once
        key = (x["file"], x["line"], x["text"])
        if x.get("new", True) and key not in seen:
            seen.add(key)
            new.append(x)
    if not new:
        return ""
    items = "".join(f"<li><code>{h(x['file'])}:{h(x['line'])}: {h(x['severity'])}: "
                    f"{h(x['text'])}</code></li>" for x in new[:limit])
    more = f"<li>and {len(new) - limit} more</li>" if len(new) > limit else ""
    return f"<p>New diagnostics (the base does not have them):</p><ul>{items}{more}</ul>"
