"""Report: the reply text and headers. Pure: data in, a message out."""

from __future__ import annotations

import email.utils
import hashlib
import textwrap
from dataclasses import dataclass, field
from email.message import EmailMessage

from .config import Rules, expand
from .steps import FAILED, INFRA, SKIPPED, SUCCESS, TIMEOUT, StepResult

WIDTH = 72
PASS, FAIL, NOT_APPLIED, INFRA_ERROR = "pass", "fail", "not-applied", "infra-error"
INCOMPLETE, UNTESTABLE = "incomplete", "untestable"


@dataclass
class Target:
    """The mail we answer and who gets the answer."""

    msgid: str
    subject: str
    references: list[str]
    author_name: str
    author_addr: str
    series_subject: str
    revision: int
    expected: int
    present: list[int] = field(default_factory=list)


@dataclass
class RunOutcome:
    base_ref: str
    base_commit: str
    base_reason: str
    steps: list[StepResult]
    mbox_name: str = "series.mbox"
    run_id: int = 0

    @property
    def verdict(self) -> str:
        return verdict(self.steps)


def verdict(steps: list[StepResult]) -> str:
    apply = next((s for s in steps if s.name == "apply"), None)
    if apply is not None and apply.status == FAILED:
        return NOT_APPLIED
    if any(s.broken for s in steps):
        return FAIL
    if any(s.status == INFRA for s in steps):
        return INFRA_ERROR
    return PASS


def _wrap(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False) or [""]


def _code(line: str, indent: str = "  ") -> list[str]:
    """A compiler line or a command, verbatim: wrapping would break grep and copy-paste,
    so these are the only lines allowed past 72 columns."""
    return [indent + line.rstrip()]


def _headline(target: Target, outcome: RunOutcome) -> str:
    builds = [s for s in outcome.steps if s.name == "build"]
    broken = [s.kernel for s in builds if s.broken]
    v = outcome.verdict
    if v == PASS:
        return f"PASS: applies, generates and builds on all {len(builds)} kernels tested"
    if v == NOT_APPLIED:
        return "NOT TESTED: the series does not apply to the base"
    if v == INFRA_ERROR:
        return "NOT TESTED: the bot hit an infrastructure error (not the series' fault)"
    gen = next((s for s in outcome.steps if s.name == "generate"), None)
    if gen is not None and gen.broken:
        return "FAIL: generation of the package fails"
    return f"FAIL: builds break on {', '.join(broken)} ({len(broken)} of {len(builds)} kernels)"


def _table(rules: Rules, steps: list[StepResult]) -> list[str]:
    versions = {k.name: k.version for k in rules.kernels}
    lines = [f"  {'step':<10}{'kernel':<12}{'result':<10}detail", "  " + "-" * (WIDTH - 4)]
    for s in steps:
        kernel = versions.get(s.kernel, s.kernel) if s.kernel else "-"
        result = {SUCCESS: "ok", FAILED: "FAILED", SKIPPED: "skipped", TIMEOUT: "TIMEOUT",
                  INFRA: "INFRA"}.get(s.status, s.status)
        lines.extend(_code(f"{s.name:<10}{kernel:<12}{result:<10}{s.detail}", indent="  "))
    return lines


def _failures(steps: list[StepResult], max_diags: int = 3) -> list[str]:
    out: list[str] = []
    for s in steps:
        if not s.broken:
            continue
        where = f"{s.name} on {s.kernel}" if s.kernel else s.name
        errors = s.errors or s.diagnostics
        out.append("")
        out.append(f"{where}: {s.detail}")
        unique = list({(d.location(), d.text): d for d in errors}.values())
        for d in unique[:max_diags]:
            out.extend(_code(f"{d.location()}: {d.severity}: {d.text}"))
            for ctx in d.context[:3]:
                out.extend(_code(ctx, indent="    "))
        if not errors:
            for line in s.tail:
                out.extend(_code(line))
    return out


def _reproduce(rules: Rules, outcome: RunOutcome) -> list[str]:
    broken = [s for s in outcome.steps if s.name == "build" and s.broken]
    kernels = [rules.kernel(s.kernel) for s in broken] or rules.kernels[:1]
    applied = outcome.verdict != NOT_APPLIED
    tree = rules.tree_url or str(rules.tree_path)
    lines = [f"git clone {tree} backports && cd backports",
             f"git checkout {outcome.base_commit[:12]}",
             f"git am -3 {outcome.mbox_name}   # this series, e.g. from: b4 mbox <message-id>"]
    for command in rules.generate_commands if applied else []:
        lines.append(" ".join(expand(command, dict(
            tree=".", output="../out", upstream=rules.upstream or "<upstream-src>",
            jobs=rules.build_jobs, python="python3"))))
    for k in kernels if applied else []:
        for command in rules.build_commands:
            lines.append(" ".join(expand(command, dict(
                output="../out", tree="../out", upstream=rules.upstream or "", kernel_path=k.path,
                kernel_version=k.version, kernel_name=k.name, build_dir=f"../build-{k.name}",
                jobs=rules.build_jobs, python="python3"))))
    out = []
    for line in lines:
        out.extend(_code(line))
    return out


def _greeting(target: Target) -> list[str]:
    first = (target.author_name or "").split()[0] if target.author_name else ""
    return [f"Hi {first}," if first else "Hi,", ""]


def _series_line(target: Target) -> str:
    n = target.expected
    return (f'bpbot tested "{target.series_subject}" (v{target.revision}, '
            f'{n} patch{"es" if n != 1 else ""}).')


def render_run(rules: Rules, target: Target, outcome: RunOutcome) -> list[str]:
    lines = _greeting(target) + _wrap(_series_line(target)) + [""]
    lines += _wrap("Verdict: " + _headline(target, outcome))
    lines += _wrap(f"Base: {outcome.base_ref} at {outcome.base_commit[:12]} "
                   f"({outcome.base_reason})")
    lines += ["", *_table(rules, outcome.steps)]
    apply = next((s for s in outcome.steps if s.name == "apply"), None)
    if apply is not None and apply.status == FAILED and apply.tail:
        lines += [""] + _wrap(apply.tail[0]) + [""] + _wrap(apply.tail[1])
        for line in apply.tail[2:]:
            lines.extend(_code(line))
    fails = _failures([s for s in outcome.steps if s.name != "apply"])
    if fails:
        lines += ["", "First errors:"] + fails
    lines += ["", "To reproduce:"] + _reproduce(rules, outcome)
    if rules.web_url and outcome.run_id:
        lines += ["", f"Full logs: {rules.web_url.rstrip('/')}/runs/{outcome.run_id}"]
    return lines


def render_incomplete(rules: Rules, target: Target, grace: str) -> list[str]:
    got = ", ".join(str(n) for n in target.present) or "none"
    lines = _greeting(target) + _wrap(_series_line(target)) + [""]
    lines += _wrap(f"Verdict: NOT TESTED: incomplete series: got {got} of {target.expected}.")
    lines += [""] + _wrap(
        f"The missing patches did not arrive within {grace}. If they were lost, "
        "please resend the whole series (with a new version number if it changed); "
        "the bot tests it as soon as every patch is there.")
    return lines


def render_untestable(rules: Rules, target: Target, problem: str) -> list[str]:
    lines = _greeting(target) + _wrap(_series_line(target)) + [""]
    lines += _wrap("Verdict: NOT TESTED: the series could not be prepared for git am.")
    lines += [""] + _wrap(problem)
    return lines


def compose(rules: Rules, target: Target, body: list[str], key: str,
            verdict_word: str) -> tuple[EmailMessage, list[str]]:
    """The reply as a message, and its envelope recipients."""
    footer = ["", "-- ", *_wrap(f"{rules.bot_name}, the backports patch bot. Testing is done by "
                                 "a robot and is best-effort only.")]
    msg = EmailMessage()
    subject = target.subject
    msg["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    msg["From"] = email.utils.formataddr((rules.bot_name, rules.bot_address))
    to, cc = [], []
    if rules.reply_to_author and target.author_addr:
        to.append(email.utils.formataddr((target.author_name, target.author_addr)))
    if rules.reply_cc_list and rules.list_address:
        (cc if to else to).append(rules.list_address)
    if to:
        msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Date"] = email.utils.formatdate(localtime=False)
    domain = rules.bot_address.split("@", 1)[1]
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    msg["Message-ID"] = f"<bpbot-{digest}@{domain}>"
    msg["In-Reply-To"] = f"<{target.msgid}>"
    refs = [r for r in target.references if r != target.msgid] + [target.msgid]
    msg["References"] = " ".join(f"<{r}>" for r in refs[-20:])
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Loop"] = rules.loop_id
    msg["X-bpbot-Verdict"] = verdict_word
    msg.set_content("\n".join(body + footer) + "\n")
    recipients = [a for _, a in email.utils.getaddresses(to + cc) if a]
    return msg, recipients
