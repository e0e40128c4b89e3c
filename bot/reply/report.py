"""Report: what a test run, or a version not tested, says to the thread.

Pure: data in, text out. The words and the layout are in the templates
(bot/reply/templates/mail/report.txt, incomplete.txt, untestable.txt,
pull_request.txt); this module decides what they show: the verdict line,
the kernel x step table, the build order, coverage, the errors the base
does not have, and how to reproduce. ``reply`` addresses the text to the
thread (bot/reply/compose.py).
"""

from __future__ import annotations

import logging
import re
import shlex
from email.message import EmailMessage

from bot.config.rules import Kernel, Rules, expand
from bot.model import STEP_LABELS, Target, words
from bot.reply import compose, render
from bot.testrun import coverage, matrix, widen
from bot.testrun.outcome import FAIL, INFRA_ERROR, NOT_APPLIED, NOT_TESTED, PARTIAL, RunOutcome
from bot.testrun.steps import FAILED, INFRA, SKIPPED, SUCCESS

log = logging.getLogger(__name__)
JOBS = "$(nproc)"  # make's -j in reproduce lines: the reader's cores, never the bot host's


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


def _table(outcome: RunOutcome) -> list[dict]:
    """The kernel x step table with each kernel's verdict."""
    apply = outcome.step("apply")
    gen = outcome.step("generate")
    builds = {s.kernel: s for s in outcome.steps if s.name == "build"}
    rows = []
    for k in outcome.kernels:
        b = builds.get(k.kernel.name)
        rows.append(dict(
            version=k.kernel.version,
            apply=_MARK.get(apply.status, apply.status) if apply else "-",
            generate=_MARK.get(gen.status, gen.status) if gen and b is not None else "-",
            build=_MARK.get(b.status, b.status) if b else "-", verdict=k.line()))
    return rows


def _reasons(outcome: RunOutcome) -> list[tuple[str, str]]:
    """(kernels, why they were built first), kernels with the same reason on one
    line: the guard analysis orders the builds; it never leaves a kernel out."""
    chosen = [k for k in outcome.kernels if k.why and k.verdict != matrix.NOT_BUILT]
    if outcome.choice is not None:
        order = {k.name: i for i, k in enumerate(outcome.choice.kernels)}
        chosen.sort(key=lambda k: order.get(k.kernel.name, len(order)))
    groups: dict[str, list[str]] = {}  # the same guard names many kernels: one line
    for k in chosen:
        groups.setdefault(k.why, []).append(k.kernel.name)
    return [(", ".join(names), why) for why, names in groups.items()]


MAX_COVERAGE_LINES = 30


def _coverage(outcome: RunOutcome) -> str | list[tuple[str, str]]:
    """Each changed C file or header with the kernels whose build compiled it;
    "unknown" when the builds left no dependency files; [] for no section."""
    if outcome.file_coverage is None:
        gen = outcome.step("generate")
        built = [s for s in outcome.steps if s.name == "build" and s.status != SKIPPED]
        return "unknown" if gen is not None and gen.status == SUCCESS and built else []
    total = len(outcome.kernels)
    out = []
    # Files compiled nowhere first: a long list (a Coccinelle change) is cut.
    files = sorted(outcome.file_coverage, key=lambda f: f.compiled)
    for f in files[:MAX_COVERAGE_LINES]:
        if not f.kernels:
            where = coverage.NOT_COMPILED + (f" ({f.reason})" if f.reason else "")
        elif len(f.kernels) == total:
            where = f"all {total} kernels"
        else:
            where = ", ".join(f.kernels)
        out.append((f.label, where))
    if len(files) > MAX_COVERAGE_LINES:
        compiled = sum(f.compiled for f in files[MAX_COVERAGE_LINES:])
        out.append((f"... and {len(files) - MAX_COVERAGE_LINES} more files",
                    f"{compiled} of them compiled"))
    return out


def _failures(outcome: RunOutcome, max_diags: int = 5) -> list[dict]:
    """The first diagnostics of each broken step, new ones first (marked '>>')."""
    out: list[dict] = []
    verdicts = {k.kernel.name: k for k in outcome.kernels}
    changed = outcome.choice.paths if outcome.choice is not None else []
    for s in outcome.steps:
        if s.name == "apply" or not s.broken:
            continue
        kernel = verdicts.get(s.kernel)
        if kernel is not None and kernel.verdict == matrix.BASE_FAILS:
            continue  # not the series' fault; the table says so
        errors = s.errors or s.diagnostics
        unique = list({(d.location(), d.text): d for d in errors}.values())
        unique.sort(key=lambda d: not d.new)
        out.append(dict(
            where=f"{s.name} on {s.kernel}" if s.kernel else s.name, detail=s.detail,
            diagnostics=[dict(new=d.new, text=f"{d.location()}: {d.severity}: {d.text}",
                              context=d.context[:3], notes=d.notes,
                              tree=_tree_path(d.file, changed))
                         for d in unique[:max_diags]],
            more=max(0, len(unique) - max_diags), tail=[] if errors else s.tail))
    return out


_DEBIAN_HEADERS = re.compile(r"/usr/src/(linux-headers-[\w.+~-]+)")
_CKMAKE = re.compile(r"(.+)/lib/modules/[^/]+/build")


def _kernel_source(kernel: Kernel) -> dict:
    """How a reader gets the kernel a reproduce line builds on: Debian's header
    package, a ckmake-style dir that `bpbot kernels add` makes, or a prepared tree."""
    path = str(kernel.path)
    debian = _DEBIAN_HEADERS.fullmatch(path)
    ckmake = _CKMAKE.fullmatch(path)
    return dict(name=kernel.name, version=kernel.version, path=path,
                package=debian.group(1) if debian else "", kdir=ckmake.group(1) if ckmake else "")


def _tree_path(package_path: str, changed: list[str]) -> str:
    """The tree's path of a file the compiler names by its package path (gentree
    copies backport/backport-include/x.h to backport-include/x.h): the changed
    file it comes from, when that is not the same path; '' otherwise."""
    suffix = "/" + package_path.lstrip("./")
    found = [c for c in changed if c.endswith(suffix)]
    return found[0] if len(found) == 1 else ""


def upstream_dir(version: str) -> str | None:
    """Where a reader has the upstream source at ``version`` (``git describe --tags
    --always``): ../linux-6.1.192 for a tag; None for a commit past one
    (v6.1.192-3-gabcdef012345), a dirty tree or a bare commit id."""
    if not re.fullmatch(r"v\d[\w.+-]*", version) or \
            re.search(r"-\d+-g[0-9a-f]{4,}$|-dirty$", version):
        return None
    return f"../linux-{version[1:]}"


def _reproduce(rules: Rules, target: Target, outcome: RunOutcome) -> dict:
    """The commands that redo the run in a clone: fetch the series, apply it,
    generate, and build on the broken kernels (else the first one built). The
    upstream source is named by its version, not by the bot host's path."""
    if outcome.widened:  # the build commands the kernels were built with
        rules = widen.widened(rules, outcome.widened)
    broken = [k.kernel for k in outcome.kernels if k.verdict == matrix.FAIL]
    built = [k.kernel for k in outcome.kernels if k.verdict != matrix.NOT_BUILT]
    applied = outcome.verdict != NOT_APPLIED
    version = outcome.upstream_version  # a tag (v6.1.192), else the host's path is shown
    upstream = upstream_dir(version)
    return dict(
        tree=rules.tree_url or str(rules.tree_path), base=outcome.base_commit[:12],
        mbox=outcome.mbox_name, msgid=shlex.quote(target.msgid), revision=target.revision,
        upstream=dict(version=version, dir=upstream) if upstream and applied else None,
        generate=command_lines(rules, upstream=upstream) if applied else [],
        kernels=[dict(_kernel_source(k), commands=command_lines(rules, k))
                 for k in (broken or built[:1])] if applied else [])


def _shell(args: list[str]) -> str:
    """An argument list as a shell line: quoted where needed, but make's
    ``-j$(nproc)`` left for the reader's shell to expand."""
    return " ".join(a if a.replace(JOBS, "") == shlex.quote(a.replace(JOBS, ""))
                    and a.replace(JOBS, "") else shlex.quote(a) for a in args)


def command_lines(rules: Rules, kernel: Kernel | None = None,
                  upstream: str | None = None) -> list[str]:
    """The generate commands, or the build commands on ``kernel``, as a contributor
    types them in a clone ("To reproduce"; the status page shows them too);
    ``upstream``: where the reader has the upstream source (else the rules' path)."""
    if kernel is None:
        return [_shell(expand(command, dict(
            tree=".", output="../out", upstream=upstream or rules.upstream or "<upstream-src>",
            jobs=rules.build_jobs, python="python3"))) for command in rules.generate_commands]
    return [_shell(expand(command, dict(
        output="../out", tree="../out", upstream=rules.upstream or "", kernel_path=kernel.path,
        kernel_version=kernel.version, kernel_name=kernel.name, build_dir=f"../build-{kernel.name}",
        jobs=JOBS, python="python3"))) for command in rules.build_commands]


def _series(target: Target) -> dict:
    return dict(first_name=render.first_name(target.author_name),
                series_subject=target.series_subject, revision=target.revision,
                expected=target.expected, notes=target.notes)


def render_run(rules: Rules, target: Target, outcome: RunOutcome) -> str:
    apply = outcome.step("apply")
    failures = _failures(outcome)
    return render.render(
        "report.txt", **_series(target), headline=_headline(outcome),
        base=f"{outcome.base_ref} at {outcome.base_commit[:12]} ({outcome.base_reason})"
        if outcome.base_commit else "",
        since_previous=outcome.since_previous, table=_table(outcome),
        reasons=_reasons(outcome), coverage=_coverage(outcome),
        widened=outcome.widened,
        not_widened=[k.kernel.name for k in outcome.kernels
                     if outcome.widened and k.kernel.name not in outcome.widened_on],
        coverage_generated=any(f.generated for f in outcome.file_coverage or []),
        apply_tail=apply.tail if apply is not None and apply.status == FAILED else [],
        failures=failures, blamed=any(k.verdict == matrix.FAIL for k in outcome.kernels),
        # Nothing to redo when the run stopped before it chose a base.
        reproduce=_reproduce(rules, target, outcome) if outcome.base_commit else None,
        compiler=outcome.compiler, upstream_version=outcome.upstream_version,
        logs_url=f"{rules.web_url.rstrip('/')}/runs/{outcome.run_id}"
        if rules.web_url and outcome.run_id else "")


def render_incomplete(rules: Rules, target: Target, grace: str) -> str:
    missing = [n for n in range(1, target.expected + 1) if n not in target.present]
    return render.render("incomplete.txt", **_series(target), present=target.present,
                         missing=missing, grace=grace)


def render_untestable(rules: Rules, target: Target, problem: str) -> str:
    return render.render("untestable.txt", **_series(target), problem=problem)


def render_pull_request(rules: Rules) -> str:
    return render.render("pull_request.txt", bot_name=rules.bot_name)


def reply(rules: Rules, target: Target, body: str, key: str,
          verdict_word: str) -> tuple[EmailMessage, list[str]]:
    """The text as a reply in the thread: to the author (when the rules say so and
    the address can be mailed), Cc the list; and its envelope recipients."""
    to, cc = [], []
    if rules.reply_to_author:
        author, why = compose.mailbox(target.author_name, target.author_addr)
        if author is not None:
            to.append(author)
        else:
            log.warning("reply %s to %s: not mailed to the author: %s", key, target.msgid, why)
    if rules.reply_cc_list and rules.list_address:
        listbox, _ = compose.mailbox("", rules.list_address)
        if listbox is not None:
            (cc if to else to).append(listbox)
    if not to:
        log.warning("reply %s to %s has nobody to go to", key, target.msgid)
    footer = render.render("footer.txt", bot_name=rules.bot_name, best_effort=True)
    return compose.compose(rules, compose.Reply(
        subject=target.subject, parent=target.msgid, references=target.references, to=to,
        cc=cc, body=body, key=key, footer=footer, auto="auto-generated",
        headers={"X-bpbot-Verdict": verdict_word}))
