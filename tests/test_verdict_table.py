"""The verdict logic, table-driven and without gcc: baseline comparison,
``>>`` marking, one kernel's verdict, the series' verdict and its exit code.
"Never a PASS for what was not tested."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import check
from bot.config import rules as config
from bot.config.rules import Kernel
from bot.model import Target
from bot.reply import report
from bot.testrun import coverage, matrix
from bot.testrun.baseline import BaseResult
from bot.testrun.diagnostics import Diagnostic, mark_new
from bot.testrun.outcome import RunOutcome
from bot.testrun.steps import FAILED, INFRA, SKIPPED, SUCCESS, TIMEOUT, StepResult

K = {name: Kernel(name, f"{name}.1", Path(f"/k/{name}")) for name in ("3.10", "4.19", "6.1")}


def err(file="compat/main.c", line=3, text="'x' undeclared", severity="error"):
    return Diagnostic(file, line, 5, severity, text)


def build(status=SUCCESS, diags=(), detail="", kernel="4.19"):
    return StepResult("build", status, kernel=kernel, detail=detail, diagnostics=list(diags))


def base(status=SUCCESS, diags=(), stage="build", detail=""):
    return BaseResult("4.19", status, stage, detail, list(diags))


# --- baseline comparison: which diagnostics are new -------------------------

@pytest.mark.parametrize(
    ("series", "base_diags", "new"),
    [
        ([err()], [], [True]),
        ([err()], [err()], [False]),
        # Line numbers shift when the series edits the file: not a new error.
        ([err(line=40)], [err(line=3)], [False]),
        # Curly quotes from another locale are the same diagnostic.
        ([err(text="\u2018x\u2019 undeclared")], [err()], [False]),
        # A multiset: the base has it once, the series twice -> one is new.
        ([err(), err(line=9)], [err()], [False, True]),
        ([err(file="compat/other.c")], [err()], [True]),
        ([err(severity="warning")], [err()], [True]),
    ],
    ids=["new", "same", "moved", "quotes", "twice", "other-file", "other-severity"],
)
def test_mark_new(series, base_diags, new):
    mark_new(series, base_diags)
    assert [d.new for d in series] == new


# --- one kernel's verdict ------------------------------------------------------

@pytest.mark.parametrize(
    ("step", "base_result", "verdict", "detail", "new_errors"),
    [
        (build(), base(), matrix.PASS, "", 0),
        (build(FAILED, [err()]), base(), matrix.FAIL, "1 new error", 1),
        # The base has the same error: broken on both sides, not blamed.
        (build(FAILED, [err()]), base(FAILED, [err()], detail="1 error"),
         matrix.BASE_FAILS, "1 error", 0),
        (build(FAILED, [err()]), base(FAILED, stage="generate"), matrix.BASE_FAILS,
         "generation", 0),
        (build(), base(FAILED, [err()]), matrix.PASS, "the base fails here, the series fixes it",
         0),
        (build(SUCCESS, [err(severity="warning")]), base(), matrix.PASS, "1 new warning", 0),
        # The same error from a header included twice counts once.
        (build(FAILED, [err(), err()]), base(), matrix.FAIL, "1 new error", 1),
        (build(TIMEOUT, detail="timed out after 120s"), base(), matrix.FAIL,
         "timed out after 120s", 0),
        (build(SKIPPED, detail="kernel dir missing"), None, matrix.NOT_BUILT,
         "kernel dir missing", 0),
        (build(INFRA, detail="bwrap: no user namespaces"), None, matrix.INFRA_ERROR,
         "bwrap: no user namespaces", 0),
        (None, None, matrix.NOT_BUILT, "no build result", 0),
    ],
    ids=["pass", "new-error", "base-same-error", "base-no-generate", "fixes-base",
         "new-warning", "header-twice", "timeout", "dir-missing", "infra", "no-step"],
)
def test_judge(step, base_result, verdict, detail, new_errors):
    r = matrix.judge(K["4.19"], "why", step, base_result)
    assert (r.verdict, r.detail, r.new_errors) == (verdict, detail, new_errors)


def test_kernel_line_for_a_missing_dir_is_not_built_never_base_fails():
    r = matrix.judge(K["3.10"], "", build(SKIPPED, detail="kernel dir missing"), None)
    assert r.line() == "not built: kernel dir missing"


# --- the series' verdict -------------------------------------------------------

def kr(name, verdict, detail=""):
    return matrix.KernelResult(K[name], verdict, detail)


P, F, B, N, INF = matrix.PASS, matrix.FAIL, matrix.BASE_FAILS, matrix.NOT_BUILT, matrix.INFRA_ERROR
GEN_OK = StepResult("generate", SUCCESS)
GEN_FAILED = StepResult("generate", FAILED, detail="exit 1")
GEN_SKIPPED = StepResult("generate", SKIPPED, detail="no kernel to build on")


@pytest.mark.parametrize(
    ("kernels", "gen", "base_gen_broken", "verdict", "reason"),
    [
        ([(n, P) for n in K], GEN_OK, False, matrix.PASS, ""),
        ([("3.10", F, "1 new error"), ("4.19", P), ("6.1", P)], GEN_OK, False, matrix.FAIL, ""),
        ([("3.10", P), ("4.19", P), ("6.1", B, "1 error")], GEN_OK, False, matrix.PASS, ""),
        # Generation fails on the series only: the series' fault.
        ([(n, N, "generation failed") for n in K], GEN_FAILED, False, matrix.FAIL, ""),
        # ... on the base as well: never the contributor's fault, never PASS.
        ([(n, N, "generation failed") for n in K], GEN_FAILED, True, matrix.NOT_TESTED,
         "the base does not generate (not the series' fault)"),
        ([(n, B, "generation") for n in K], GEN_OK, True, matrix.NOT_TESTED,
         "the base does not generate (not the series' fault)"),
        ([(n, N, "kernel dir missing") for n in K], GEN_SKIPPED, False, matrix.NOT_TESTED,
         "no kernel was built: kernel dir missing on 3.10, 4.19, 6.1"),
        ([(n, B, "1 error") for n in K], GEN_OK, False, matrix.NOT_TESTED,
         "the base already fails on every kernel"),
        ([("3.10", B, "1 error"), ("4.19", N, "kernel dir missing"),
          ("6.1", N, "kernel dir missing")], GEN_OK, False, matrix.NOT_TESTED,
         "the base already fails on 3.10; not built: kernel dir missing on 4.19, 6.1"),
        ([("3.10", N, "kernel dir missing"), ("4.19", P), ("6.1", P)], GEN_OK, False,
         matrix.PARTIAL, "not built: kernel dir missing on 3.10"),
        ([("3.10", P), ("4.19", N, "past [subset] max_kernels = 1"),
          ("6.1", N, "past [subset] max_kernels = 1")], GEN_OK, False, matrix.PARTIAL,
         "not built: past [subset] max_kernels = 1 on 4.19, 6.1"),
        # A failure on the kernels built is a FAIL, whatever was not built.
        ([("3.10", F, "1 new error"), ("4.19", N, "kernel dir missing"), ("6.1", P)], GEN_OK,
         False, matrix.FAIL, ""),
        ([("3.10", INF, "bwrap"), ("4.19", P), ("6.1", P)], GEN_OK, False, matrix.INFRA_ERROR, ""),
        ([(n, INF, "bwrap") for n in K], GEN_OK, False, matrix.INFRA_ERROR, ""),
    ],
    ids=["all-pass", "one-fail", "base-fails-one", "series-breaks-generation",
         "base-does-not-generate", "base-does-not-generate-series-does-not-build",
         "every-dir-missing", "base-fails-everywhere", "base-fails-or-missing",
         "one-dir-missing", "max-kernels-cut",
         "fail-beats-partial", "infra-one", "infra-all"],
)
def test_assess(kernels, gen, base_gen_broken, verdict, reason):
    results = [kr(*k) for k in kernels]
    overall = matrix.assess(results, gen, base_gen_broken)
    assert (overall.verdict, overall.reason) == (verdict, reason)


# --- the verdict line and the exit code of `bpbot check` -----------------------

def outcome(kernels, gen=GEN_OK, base_gen_broken=False, untested="", apply=SUCCESS):
    steps = [StepResult("apply", apply), gen]
    return RunOutcome("main", "a" * 40, "head of main", steps,
                             kernels=[kr(*k) for k in kernels],
                             base_generate_broken=base_gen_broken, untested=untested)


@pytest.mark.parametrize(
    ("run", "headline", "code"),
    [
        (outcome([(n, P) for n in K]), "PASS: no new errors on all 3 kernels", 0),
        (outcome([("3.10", F, "2 new errors"), ("4.19", P), ("6.1", P)]),
         "FAIL: breaks 3.10 (2 new errors)", 1),
        (outcome([(n, N, "generation failed") for n in K], GEN_FAILED, True),
         "NOT TESTED: the base does not generate (not the series' fault)", 2),
        (outcome([(n, N, "kernel dir missing") for n in K], GEN_SKIPPED),
         "NOT TESTED: no kernel was built: kernel dir missing on 3.10, 4.19, 6.1", 2),
        (outcome([("3.10", N, "kernel dir missing"), ("4.19", P), ("6.1", P)]),
         "PARTIAL: no new errors on the 2 of 3 kernels built; not built: kernel dir missing "
         "on 3.10", 2),
        (outcome([(n, N, "already applied in the base") for n in K],
                 StepResult("generate", SKIPPED), untested="already applied in the base"),
         "NOT TESTED: already applied in the base", 2),
        (outcome([(n, N, "does not apply") for n in K], StepResult("generate", SKIPPED),
                 apply=FAILED), "NOT TESTED: the series does not apply to the base", 2),
        (outcome([(n, INF, "bwrap: no user namespaces") for n in K]),
         "NOT TESTED: the bot hit an infrastructure error (not the series' fault)", 2),
    ],
    ids=["pass", "fail", "base-no-generate", "every-dir-missing", "partial", "already-applied",
         "not-applied", "infra"],
)
def test_headline_and_exit_code(run, headline, code):
    assert report._headline(run).startswith(headline)
    assert check._exit_code([run.verdict]) == code
    if code != 0:
        assert not report._headline(run).startswith("PASS")


@pytest.mark.parametrize(
    ("verdicts", "code"),
    [([], 2), (["pass"], 0), (["pass", "pass"], 0), (["pass", "fail"], 1),
     (["pass", "not-tested"], 2), (["pass", "partial"], 2), (["fail", "partial"], 1),
     (["not-applied"], 2), ([""], 2), (["infra-error"], 2)],
)
def test_exit_code_table(verdicts, code):
    assert check._exit_code(verdicts) == code


# --- coverage: changed code no kernel compiled -----------------------------------

def cov(path, *kernels):
    return coverage.FileCoverage(path, path, list(kernels))


@pytest.mark.parametrize(
    ("kernels", "files", "verdict", "reason"),
    [
        ([(n, P) for n in K], [cov("compat/main.c", *K)], "pass", ""),
        ([(n, P) for n in K], None, "pass", ""),  # unknown: said in the reply, not judged
        ([(n, P) for n in K], [], "pass", ""),     # no C file or header changed
        ([(n, P) for n in K], [cov("compat/backport-3.0.c")], "not-tested",
         "the changed code was compiled on no configured kernel (compat/backport-3.0.c)"),
        ([(n, P) for n in K], [cov("compat/main.c", "3.10"), cov("linux/unused.h")], "partial",
         "linux/unused.h not compiled on any configured kernel"),
        ([("3.10", N, "kernel dir missing"), ("4.19", P), ("6.1", P)],
         [cov("compat/main.c", "4.19"), cov("linux/unused.h")], "partial",
         "not built: kernel dir missing on 3.10; linux/unused.h not compiled on any configured "
         "kernel"),
        ([("3.10", F, "1 new error"), ("4.19", P), ("6.1", P)], [cov("linux/unused.h")], "fail",
         ""),
    ],
    ids=["all-compiled", "unknown", "no-code", "none-compiled", "some-compiled",
         "missing-and-uncompiled", "fail-stays-fail"],
)
def test_coverage_verdict(kernels, files, verdict, reason):
    run = outcome(kernels)
    run.file_coverage = files
    overall = run.assess()
    assert (overall.verdict, overall.reason) == (verdict, reason)
    assert check._exit_code([run.verdict]) == {"pass": 0, "fail": 1}.get(verdict, 2)


def test_reply_lists_coverage_and_says_when_it_is_unknown():
    rules = config.load(config.DEMO_RULES, base_dir="/nonexistent")
    target = Target(msgid="m@x", subject="[PATCH] x", references=[], author_name="",
                    author_addr="", series_subject="x", revision=1, expected=1)
    run = outcome([(n, P) for n in K])
    run.steps += [StepResult("build", SUCCESS, kernel=n) for n in K]
    run.file_coverage = [cov("compat/main.c", *K), cov("compat/backport-4.0.c", "3.10")]
    assert "\n".join([
        "", "Coverage (the kernels whose build compiled each changed file):",
        "  compat/main.c: all 3 kernels", "  compat/backport-4.0.c: 3.10", ""]) in \
        report.render_run(rules, target, run)
    run.file_coverage = None
    assert "\nCoverage: unknown (no dependency files" in report.render_run(rules, target, run)
