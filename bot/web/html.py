"""HTML for the status page (bot/web/page.py): server-rendered, no script.

The pages are template files, bot/web/templates/*.html (Jinja2), rendered
with autoescape on: every value from the state is escaped by the engine. A
verdict is shown as a word in a coloured cell, so the page reads the same
without colour. The filters are the mail templates' (bot/reply/render.py)
plus a few for the page.
"""

from __future__ import annotations

import time
from urllib.parse import quote

import jinja2

from bot import __version__, model
from bot.model import Verdict, words
from bot.reply import render
from bot.status import age

# The words of bot/model.py's tables: a matrix cell as `bpbot status` prints it,
# a step's status, a version's verdict; the colour class of each.
VERDICT_LABELS = words(model.VERDICT_LABELS, "cell")
STATUS_LABELS = words(model.STEP_LABELS, "word")
OVERALL_LABELS = words(model.VERDICT_LABELS, "word")
CLASSES = {**words(model.STEP_LABELS, "css"), **words(model.VERDICT_LABELS, "css")}
REPLY_ABOUT = {"command": "a reply to a mail command", "copy": "a subscriber's copy"}
LEGEND = [(Verdict.PASS, "builds, no new errors"), (Verdict.FAIL, "new errors from the series"),
          (Verdict.BASE_FAILS, "the base already fails (not blamed)"),
          (Verdict.NOT_BUILT, "not built (the reason is on the version's page)"),
          (Verdict.INFRA_ERROR, "the bot failed, retried")]


def utc(stamp: float, seconds: bool = False) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC",
                         time.gmtime(stamp))


def step(steps: list[dict], name: str, kernel: str) -> dict | None:
    """The step called ``name`` (on ``kernel``) of a run; the last one recorded wins."""
    found = None
    for s in steps:
        if s["name"] == name and s["kernel"] == kernel:
            found = s
    return found


def kernel_title(s: dict) -> str:
    parts = [s.get("detail") or "", f"chosen: {s['why']}" if s.get("why") else ""]
    return " | ".join(p for p in parts if p)


def new_diagnostics(s: dict) -> list[dict]:
    """The diagnostics the base does not have; the same line from a header
    included twice counts once."""
    seen: set[tuple] = set()
    new = []
    for x in s["diagnostics"]:
        key = (x["file"], x["line"], x["text"])
        if x.get("new", True) and key not in seen:
            seen.add(key)
            new.append(x)
    return new


def _env() -> jinja2.Environment:
    env = render.add_filters(jinja2.Environment(
        loader=jinja2.PackageLoader("bot.web", "templates"),
        autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True))
    env.filters.update(age=age, utc=utc, step=step, kernel_title=kernel_title,
                       new_diagnostics=new_diagnostics, urlquote=quote)
    env.globals.update(verdict_labels=VERDICT_LABELS, status_labels=STATUS_LABELS,
                       overall_labels=OVERALL_LABELS, classes=CLASSES, reply_about=REPLY_ABOUT,
                       legend=LEGEND, version=__version__)
    return env


ENV = _env()


def _page(name: str, **view) -> str:
    return ENV.get_template(name).render(**view)


def index(rows: list[dict], kernels: list[str], queue: dict, health: dict, total: int,
          quarantined: list[dict] | None = None) -> str:
    """The front page. ``quarantined``: mail kept unread, each as
    {msgid, subject, reason, received_at}; the section shows when there is any."""
    shown = f"the {len(rows)} most recent of {total}" if total > len(rows) else f"{total}"
    return _page("index.html", title="bpbot status", now=health["now"], refresh=60, rows=rows,
                 kernels=kernels, queue=queue, health=health, shown=shown,
                 quarantined=quarantined or [])


def version_page(d: dict, logs: dict[int, str], base_logs: dict[str, str], now: float) -> str:
    """One series version: facts, the kernel x step matrix, then every step's log.

    ``logs`` maps a step id to its log excerpt (already capped, not yet escaped);
    ``base_logs`` a kernel name to the base build's log excerpt."""
    run = d["run"]
    facts = [("Author", f"{d['author_name']} <{d['author']}>" if d["author_name"] else d["author"]),
             ("State", d["state"] + (f" ({d['state_reason']})" if d["state_reason"] else "")),
             ("Patches", f"{len(d['present'])} of {d['expected']}"),
             ("Reply to", f"<{d['reply_to']}>")]
    if run:
        facts += [("Base", f"{run['base_ref']} at {run['base_commit'][:12]}"
                           + (f" ({run['base_reason']})" if run["base_reason"] else "")),
                  ("Run", f"{run['id']}: {run['state']}")]
    return _page("version.html", title=f"{d['subject']} (v{d['revision']})", now=now, refresh=0,
                 d=d, facts=facts, logs=logs, base_logs=base_logs)


def message(title: str, text: str, now: float) -> str:
    """A page that only says ``text`` (not found, no data yet)."""
    return _page("message.html", title=title, text=text, now=now, refresh=0)


def compile_all() -> list[str]:
    """Compile every page template (a syntax error raises); returns their names."""
    names = sorted(ENV.list_templates(extensions=["html"]))
    for name in names:
        ENV.get_template(name)
    return names
