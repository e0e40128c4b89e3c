"""Report: the reply text and headers. Pure: data in, a message out."""

from __future__ import annotations

import email.utils
import hashlib
import textwrap
from email.message import EmailMessage

from bot.config.rules import Kernel, Rules, expand
from bot.model import STEP_LABELS, Target, words
from bot.testrun import coverage, matrix
from bot.testrun.build import make_jobs
from bot.testrun.outcome import FAIL, INFRA_ERROR, NOT_APPLIED, NOT_TESTED, PARTIAL, RunOutcome
from bot.testrun.steps import FAILED, INFRA, SKIPPED, SUCCESS

WIDTH = 72
def _wrap(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False) or [""]


def _code(line: str, indent: str = "  ") -> list[str]:
    """A compiler line or a command, verbatim: wrapping would break grep and copy-paste,
    so these are the only lines allowed past 72 columns."""
    return [indent + line.rstrip()]


def _headline(outcome: RunOutcome) -> str:
    overall = outcome.assess()
    v = overall.verdict
    built = [k for k in outcome.kernels if k.verdict not in (matrix.NOT_BUILT,
                                                             matrix.INFRA_ERROR)]
    if v == NOT_APPLIED:
        return "NOT TESTED: the series does not apply to the base"
    if v == NOT_TESTED:
        return f"NOT TESTED: {overall.reason}"
    if v == INFRA_ERROR:
        infra = [s.detail for s in outcome.steps if s.status == INFRA and s.detail]
        cause = f": {infra[0]}" if infra else ""
        return f"NOT TESTED: the bot hit an infrastructure error (not the series' fault){cause}"
    gen = outcome.step("generate")
    if v == FAIL and gen is not None and gen.broken:
        said = f": {gen.tail[-1].strip()}" if gen.tail else f" ({gen.detail})"
        return f"FAIL: generation of the package fails (the base generates fine){said}"
    if v == FAIL:
        broken = [f"{k.kernel.name} ({k.detail})" for k in outcome.kernels
                  if k.verdict == matrix.FAIL]
        return f"FAIL: breaks {', '.join(broken)}"
    if not built:
        note = outcome.choice.note if outcome.choice else ""
        return f"PASS: applies; nothing to build ({note})" if note else "PASS: applies"
    base_fails = [k.kernel.name for k in outcome.kernels if k.verdict == matrix.BASE_FAILS]
    if v == PARTIAL:
        text = (f"PARTIAL: no new errors on the {len(built)} of {len(outcome.kernels)} kernels "
                f"built; {overall.reason}")
    else:
        text = f"PASS: no new errors on all {len(built)} kernels"
    if base_fails:
        text += f" (the base already fails on {', '.join(base_fails)})"
    return text


_MARK = words(STEP_LABELS, "cell")


def _table(rules: Rules, outcome: RunOutcome) -> list[str]:
    """The kernel x step table with each kernel's verdict."""
    apply = outcome.step("apply")
    gen = outcome.step("generate")
    builds = {s.kernel: s for s in outcome.steps if s.name == "build"}
    lines = [f"  {'kernel':<11}{'apply':<7}{'generate':<10}{'build':<9}verdict",
             "  " + "-" * (WIDTH - 4)]
    for k in outcome.kernels:
        b = builds.get(k.kernel.name)
        a_mark = _MARK.get(apply.status, apply.status) if apply else "-"
        g_mark = _MARK.get(gen.status, gen.status) if gen and b is not None else "-"
        b_mark = _MARK.get(b.status, b.status) if b else "-"
        lines.append(f"  {k.kernel.version:<11}{a_mark:<7}{g_mark:<10}{b_mark:<9}{k.line()}")
    return lines


def _reasons(outcome: RunOutcome) -> list[str]:
    """The guard analysis orders the builds; it never leaves a kernel out."""
    chosen = [k for k in outcome.kernels if k.why and k.verdict != matrix.NOT_BUILT]
    if outcome.choice is not None:
        order = {k.name: i for i, k in enumerate(outcome.choice.kernels)}
        chosen.sort(key=lambda k: order.get(k.kernel.name, len(order)))
    if not chosen:
        return []
    out = ["", "Build order:"]
    for k in chosen:
        out += textwrap.wrap(f"built first because {k.why}", WIDTH,
                             initial_indent=f"  {k.kernel.name:<6}",
                             subsequent_indent=" " * 8, break_long_words=False,
                             break_on_hyphens=False)
    return out


def _coverage(outcome: RunOutcome) -> list[str]:
    """Each changed C file or header with the kernels whose build compiled it."""
    if outcome.file_coverage is None:
        gen = outcome.step("generate")
        built = [s for s in outcome.steps if s.name == "build" and s.status != SKIPPED]
        if gen is None or gen.status != SUCCESS or not built:
            return []
        return ["", "Coverage: unknown (no dependency files from these builds, e.g. built on",
                "RQ workers)."]
    if not outcome.file_coverage:
        return []
    total = len(outcome.kernels)
    out = ["", "Coverage (the kernels whose build compiled each changed file):"]
    for f in outcome.file_coverage:
        if not f.kernels:
            where = coverage.NOT_COMPILED
        elif len(f.kernels) == total:
            where = f"all {total} kernels"
        else:
            where = ", ".join(f.kernels)
        out += _wrap(f"{f.path}: {where}", "  ")
    return out


def _failures(outcome: RunOutcome, max_diags: int = 5) -> list[str]:
    """The first diagnostics of each broken step; new ones prefixed by '>>'."""
    out: list[str] = []
    verdicts = {k.kernel.name: k for k in outcome.kernels}
    for s in outcome.steps:
        if s.name == "apply" or not s.broken:
            continue
        kernel = verdicts.get(s.kernel)
        if kernel is not None and kernel.verdict == matrix.BASE_FAILS:
            continue  # not the series' fault; the table says so
        where = f"{s.name} on {s.kernel}" if s.kernel else s.name
        errors = s.errors or s.diagnostics
        unique = list({(d.location(), d.text): d for d in errors}.values())
        unique.sort(key=lambda d: not d.new)
        out += ["", f"{where}: {s.detail} (new ones prefixed by >>)" if unique
                else f"{where}: {s.detail}"]
        for d in unique[:max_diags]:
            mark = ">> " if d.new else "   "
            out.append(f"{mark}{d.location()}: {d.severity}: {d.text}")
            out += [f"   {ctx}" for ctx in d.context[:3]]
        if len(unique) > max_diags:
            out.append(f"   ... and {len(unique) - max_diags} more in the log")
        if not errors:
            out += [f"  {line}" for line in s.tail]
    return out


def _reproduce(rules: Rules, outcome: RunOutcome) -> list[str]:
    broken = [k.kernel for k in outcome.kernels if k.verdict == matrix.FAIL]
    built = [k.kernel for k in outcome.kernels if k.verdict != matrix.NOT_BUILT]
    kernels = broken or built[:1]
    applied = outcome.verdict != NOT_APPLIED
    tree = rules.tree_url or str(rules.tree_path)
    lines = [f"git clone {tree} backports && cd backports",
             f"git checkout {outcome.base_commit[:12]}",
             f"git am -3 {outcome.mbox_name}   # this series, e.g. from: b4 mbox <message-id>"]
    if applied:
        lines += command_lines(rules)
        for k in kernels:
            lines += command_lines(rules, k)
    out = []
    for line in lines:
        out.extend(_code(line))
    return out


def command_lines(rules: Rules, kernel: Kernel | None = None) -> list[str]:
    """The generate commands, or the build commands on ``kernel``, as a contributor
    types them in a clone ("To reproduce"; the status page shows them too)."""
    if kernel is None:
        return [" ".join(expand(command, dict(
            tree=".", output="../out", upstream=rules.upstream or "<upstream-src>",
            jobs=rules.build_jobs, python="python3"))) for command in rules.generate_commands]
    return [" ".join(expand(command, dict(
        output="../out", tree="../out", upstream=rules.upstream or "", kernel_path=kernel.path,
        kernel_version=kernel.version, kernel_name=kernel.name, build_dir=f"../build-{kernel.name}",
        jobs=make_jobs(rules), python="python3"))) for command in rules.build_commands]


def _greeting(target: Target) -> list[str]:
    first = (target.author_name or "").split()[0] if target.author_name else ""
    return [f"Hi {first}," if first else "Hi,", ""]


def _series_line(target: Target) -> str:
    n = target.expected
    return (f'bpbot tested "{target.series_subject}" (v{target.revision}, '
            f'{n} patch{"es" if n != 1 else ""}).')


def render_run(rules: Rules, target: Target, outcome: RunOutcome) -> list[str]:
    lines = _greeting(target) + _wrap(_series_line(target)) + [""]
    lines += _wrap("Verdict: " + _headline(outcome))
    lines += _wrap(f"Base: {outcome.base_ref} at {outcome.base_commit[:12]} "
                   f"({outcome.base_reason})")
    if outcome.since_previous:
        lines += _wrap("Since the last version: " + "; ".join(outcome.since_previous) + ".")
    lines += ["", *_table(rules, outcome)]
    lines += _reasons(outcome)
    lines += _coverage(outcome)
    apply = outcome.step("apply")
    if apply is not None and apply.status == FAILED and apply.tail:
        lines += [""] + _wrap(apply.tail[0]) + [""] + _wrap(apply.tail[1])
        for line in apply.tail[2:]:
            lines.extend(_code(line))
    fails = _failures(outcome)
    if fails:
        blamed = any(k.verdict == matrix.FAIL for k in outcome.kernels)
        lines += [""] + (_wrap("Errors the base does not have are marked >>; only those are "
                               "blamed on the series.") if blamed else ["Errors:"]) + fails
    lines += _notes(target)
    lines += ["", "To reproduce:"] + _reproduce(rules, outcome)
    if rules.web_url and outcome.run_id:
        lines += ["", f"Full logs: {rules.web_url.rstrip('/')}/runs/{outcome.run_id}"]
    return lines


def render_incomplete(rules: Rules, target: Target, grace: str) -> list[str]:
    got = ", ".join(str(n) for n in target.present) or "none"
    missing = ", ".join(str(n) for n in range(1, target.expected + 1) if n not in target.present)
    lines = _greeting(target) + _wrap(f'bpbot did not test "{target.series_subject}" '
                                      f"(v{target.revision}): the series is incomplete.") + [""]
    lines += _wrap(f"Verdict: NOT TESTED: incomplete series: missing {missing} of "
                   f"{target.expected}; got {got}.")
    lines += [""] + _wrap(
        f"The missing patches did not arrive within {grace}. If they were lost, "
        "please resend the whole series (with a new version number if it changed); "
        "the bot tests it as soon as every patch is there.")
    return lines + _notes(target)


def _notes(target: Target) -> list[str]:
    return [line for note in target.notes for line in ["", *_wrap("Note: " + note[:1].upper()
                                                                   + note[1:] + ".")]]


def render_untestable(rules: Rules, target: Target, problem: str) -> list[str]:
    lines = _greeting(target) + _wrap(_series_line(target)) + [""]
    lines += _wrap("Verdict: NOT TESTED: the series could not be prepared for git am.")
    lines += [""] + _wrap(problem)
    return lines + _notes(target)


def address_header(name: str, addr: str) -> str | None:
    """'Name <addr>' for a header, the name RFC 2047-encoded when needed; None
    for an address that cannot be written without SMTPUTF8 (a non-ASCII local part)."""
    if not addr or not addr.isascii() or "\n" in addr or "\r" in addr:
        return None
    try:
        return email.utils.formataddr((name or "", addr), charset="utf-8")
    except (UnicodeError, ValueError):
        return addr


def thread_headers(msg: EmailMessage, rules: Rules, key: str, parent: str,
                   references: list[str]) -> None:
    """Date, a Message-ID made from the outbox key (stable across restarts),
    In-Reply-To and References to ``parent``, and our X-Loop."""
    msg["Date"] = email.utils.formatdate(localtime=False)
    domain = rules.bot_address.split("@", 1)[1]
    msg["Message-ID"] = f"<bpbot-{hashlib.sha1(key.encode()).hexdigest()[:16]}@{domain}>"
    msg["In-Reply-To"] = f"<{parent}>"
    refs = [r for r in references if r != parent] + [parent]
    msg["References"] = " ".join(f"<{r}>" for r in refs[-20:])
    msg["X-Loop"] = rules.loop_id


def compose(rules: Rules, target: Target, body: list[str], key: str,
            verdict_word: str) -> tuple[EmailMessage, list[str]]:
    """The reply as a message, and its envelope recipients."""
    footer = ["", "-- ", *_wrap(f"{rules.bot_name}, the backports patch bot. Testing is done by "
                                 "a robot and is best-effort only.")]
    msg = EmailMessage()
    subject = target.subject
    msg["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    msg["From"] = address_header(rules.bot_name, rules.bot_address)
    to, cc = [], []
    author = address_header(target.author_name, target.author_addr)
    if rules.reply_to_author and author:
        to.append(author)
    if rules.reply_cc_list and rules.list_address:
        (cc if to else to).append(rules.list_address)
    if to:
        msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    thread_headers(msg, rules, key, target.msgid, target.references)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-bpbot-Verdict"] = verdict_word
    msg.set_content("\n".join(body + footer) + "\n")
    recipients = [a for _, a in email.utils.getaddresses(to + cc) if a]
    return msg, recipients
