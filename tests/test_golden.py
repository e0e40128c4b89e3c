"""Golden files: every kind of reply the bot mails, rendered from fixed inputs
and compared with tests/golden/<case>.txt (headers but Date, the envelope,
the body). A change to what users read shows up as a diff of these files.

Regenerate after an intended change with ``make golden`` (runs this test with
BPBOT_GOLDEN_UPDATE=1), then read the diff before committing it.
"""

from __future__ import annotations

import dataclasses
import os
from email.message import EmailMessage
from pathlib import Path

import pytest

from bot import model
from bot.commands import runner as command_runner
from bot.commands.data import DONE, IGNORED, CommandLine, ParsedMail, Result
from bot.config import rules as config
from bot.reply import report, subscriptions
from bot.testrun import coverage, matrix
from bot.testrun.diagnostics import Diagnostic
from bot.testrun.outcome import RunOutcome
from bot.testrun.steps import FAILED, INFRA, SKIPPED, SUCCESS, StepResult
from bot.testrun.subset import Choice

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("BPBOT_GOLDEN_UPDATE") == "1"
AT = 1_700_000_000.0

RULES = dataclasses.replace(
    config.load(config.DEMO_RULES, base_dir="/nonexistent"),
    web_url="https://bpbot.example.org/",
    build_commands=[["make", "-C", "{output}", "KLIB_BUILD={kernel_path}", "O={build_dir}",
                     "-j{jobs}"]])
# Where a reader gets each kernel: a ckmake-style dir, Debian's headers, a tree.
PATHS = {"3.10": "/srv/ksrc/lib/modules/3.10.108/build",
         "4.19": "/usr/src/linux-headers-4.19.0-27-amd64"}
RULES = dataclasses.replace(RULES, kernels=[
    dataclasses.replace(k, path=Path(PATHS.get(k.name, k.path))) for k in RULES.kernels])
K = {k.name: k for k in RULES.kernels}
KERNELS = [K["3.10"], K["4.19"], K["6.1"]]


def target(**changes) -> model.Target:
    base = dict(msgid="20231114-timer-v2-0-abc@example.com",
                subject="[PATCH v2 0/2] backports: add timer_shutdown_sync()",
                references=["20231101-timer-v1-0-abc@example.com"],
                author_name="Jane Q. Hacker", author_addr="jane@example.com",
                series_subject="backports: add timer_shutdown_sync()", revision=2, expected=2,
                present=[1, 2])
    base.update(changes)
    return model.Target(**base)


def steps_ok(*kernels: str, apply=SUCCESS, gen=SUCCESS) -> list[StepResult]:
    return [StepResult("apply", apply), StepResult("generate", gen),
            *[StepResult("build", SUCCESS, kernel=k) for k in kernels]]


def kr(name: str, verdict: str, detail: str = "", why: str = "") -> matrix.KernelResult:
    return matrix.KernelResult(K[name], verdict, detail, why)


def outcome_pass() -> RunOutcome:
    run = RunOutcome("main", "0123456789abcdef" * 2 + "01234567", "head of main",
                     steps_ok("3.10", "4.19", "6.1"), run_id=7,
                     kernels=[kr("3.10", matrix.PASS, why="backport-include/linux/timer.h guards "
                                 "LINUX_VERSION_IS_LESS(4,15,0) and this kernel is below it"),
                              kr("4.19", matrix.PASS, why="backport-include/linux/timer.h guards "
                                 "LINUX_VERSION_IS_LESS(4,15,0) and this kernel is below it"),
                              kr("6.1", matrix.PASS, "1 new warning")],
                     choice=Choice(KERNELS, {"3.10": ["timer.h guards < 4.15"]}))
    run.since_previous = ["3.10 was FAIL in v1, PASS now"]
    run.compiler, run.upstream_version = "gcc (Debian 12.2.0-14) 12.2.0", "v6.1.192"
    run.file_coverage = [coverage.FileCoverage("compat/main.c", "compat/main.c", ["3.10", "4.19",
                                                                                  "6.1"]),
                         coverage.FileCoverage("backport-include/linux/timer.h",
                                               "backport-include/linux/timer.h", ["3.10"])]
    return run


def outcome_fail() -> RunOutcome:
    new = Diagnostic("backport-include/linux/timer.h", 41, 9, "error", "implicit declaration of function "
                     "'timer_shutdown_sync'; did you mean 'del_timer_sync'? "
                     "[-Werror=implicit-function-declaration]",
                     context=["   41 |         timer_shutdown_sync(&t);", "      |         ^~~~~~"],
                     notes=["/usr/src/linux-headers-4.19.0-27-common/include/linux/timer.h:200:5: "
                            "note: previous definition of 'timer_shutdown_sync' with type "
                            "'int(struct timer_list *)'"])
    old = Diagnostic("compat/old.c", 3, 0, "error", "old breakage", new=False)
    steps = [StepResult("apply", SUCCESS), StepResult("generate", SUCCESS),
             StepResult("build", FAILED, kernel="3.10", detail="1 new error",
                        diagnostics=[new, old]),
             StepResult("build", FAILED, kernel="4.19", detail="1 new error", diagnostics=[new]),
             StepResult("build", FAILED, kernel="6.1", detail="1 error", diagnostics=[old])]
    return RunOutcome("main", "fedcba9876543210" * 2 + "fedcba98", "base-commit named in the "
                      "series", steps, run_id=8,
                      choice=Choice(KERNELS, paths=["backport/backport-include/linux/timer.h"]),
                      kernels=[kr("3.10", matrix.FAIL, "1 new error"),
                               kr("4.19", matrix.FAIL, "1 new error"),
                               kr("6.1", matrix.BASE_FAILS, "1 error")])


def outcome_not_applied() -> RunOutcome:
    tail = ["The series does not apply to main at fedcba987654.",
            "git am says (the first patch that fails is backports: add timer_shutdown_sync()):",
            "error: patch failed: backport-include/linux/timer.h:12",
            "error: backport-include/linux/timer.h: patch does not apply"]
    steps = [StepResult("apply", FAILED, detail="does not apply", tail=tail),
             StepResult("generate", SKIPPED)]
    return RunOutcome("main", "fedcba9876543210" * 2 + "fedcba98", "head of main", steps,
                      kernels=[kr(k.name, matrix.NOT_BUILT, "does not apply") for k in KERNELS])


def outcome_generate_fails() -> RunOutcome:
    gen = StepResult("generate", FAILED, detail="exit 1",
                     tail=["Traceback (most recent call last):", "  File \"gentree.py\", line 9",
                           "KeyError: 'timer'"])
    return RunOutcome("main", "0123456789abcdef" * 2 + "01234567", "head of main",
                      [StepResult("apply", SUCCESS), gen],
                      kernels=[kr(k.name, matrix.NOT_BUILT, "generation failed") for k in KERNELS])


def outcome_infra() -> RunOutcome:
    return RunOutcome("", "", "", [StepResult("apply", INFRA, detail="bwrap: no user namespaces")],
                      run_id=9)


def as_text(msg: EmailMessage, rcpts: list[str]) -> str:
    head = [f"{k}: {v}" for k, v in msg.items() if k != "Date"]
    return "\n".join([*head, f"X-Envelope-To: {', '.join(rcpts)}", "", msg.get_content()])


def report_case(outcome: RunOutcome, key: str, **changes) -> str:
    t = target(**changes)
    msg, rcpts = report.reply(RULES, t, report.render_run(RULES, t, outcome), key,
                                outcome.verdict.upper())
    return as_text(msg, rcpts)


PARSED = ParsedMail(msgid="cmd-1@example.com", subject="subscribe", from_name="Tomasz Wierzba",
                    from_addr="tomasz@example.com")


def command_reply() -> str:
    lines = [CommandLine("subscribe backport-include/*", "subscribe", ("backport-include/*",),
                         "body"),
             CommandLine("status <nosuch@example.com>", "status", ("<nosuch@example.com>",),
                         "body"),
             CommandLine("retset", "", (), "body", hint="retest")]
    results = [(lines[0], Result(DONE, ["Subscribed once you confirm (see below)."])),
               (lines[1], Result(IGNORED, ["No series has the Message-ID nosuch@example.com."]))]
    body = command_runner.render(RULES, PARSED, results, [lines[2]], ["subscribe to "
                                 "backport-include/*"], "0123456789abcdef0123", AT + 86400)
    msg, rcpts = command_runner.reply(RULES, PARSED, body, "command:cmd-1@example.com",
                                        token="0123456789abcdef0123", counts=(1, 1, 1))
    return as_text(msg, rcpts)


def command_nothing() -> str:
    parsed = dataclasses.replace(PARSED, subject="Hello there", from_name="")
    body = command_runner.render(RULES, parsed, [], [], [], "", 0.0)
    msg, rcpts = command_runner.reply(RULES, parsed, body, "command:cmd-2@example.com",
                                        counts=(0, 0, 0))
    return as_text(msg, rcpts)


def rate_notice() -> str:
    msg, rcpts = command_runner.reply(RULES, PARSED, command_runner.notice_text(RULES, AT),
                                        "command:cmd-3@example.com")
    return as_text(msg, rcpts)


def incomplete() -> str:
    t = target(present=[2], expected=5, notes=["patch 3/5 was sent twice; the newest copy is "
                                               "used"])
    msg, rcpts = report.reply(RULES, t, report.render_incomplete(RULES, t, "1 day"),
                                "incomplete:3", "NOT TESTED (incomplete)")
    return as_text(msg, rcpts)


def untestable() -> str:
    t = target()
    msg, rcpts = report.reply(RULES, t, report.render_untestable(
        RULES, t, "patch 2/2 has a corrupt diff: git apply refuses it (corrupt patch at line "
        "14)"), "untestable:4", "NOT TESTED (untestable)")
    return as_text(msg, rcpts)


def pull_request() -> str:
    t = model.Target(msgid="pull-1@example.com", subject="[GIT PULL] backports for 6.1",
                     references=[], author_name="", author_addr="hauke@example.com",
                     series_subject="[GIT PULL] backports for 6.1", revision=1, expected=0)
    msg, rcpts = report.reply(RULES, t, report.render_pull_request(RULES), "pull:pull-1@example.com",
                                "NOT TESTED (pull request)")
    return as_text(msg, rcpts)


def subscriber_copy() -> str:
    t = target()
    msg, _ = report.reply(RULES, t, report.render_run(RULES, t, outcome_pass()),
                            "report:1:7", "PASS")
    copy = subscriptions.copy_message(RULES, msg, "reader@example.net", "backport-include/*",
                                      ["backport-include/linux/timer.h"])
    return as_text(copy, ["reader@example.net"])


CASES = {
    "report-pass": lambda: report_case(outcome_pass(), "report:1:7"),
    "report-fail": lambda: report_case(outcome_fail(), "report:1:8"),
    "report-not-applied": lambda: report_case(outcome_not_applied(), "report:1:9"),
    "report-generate-fails": lambda: report_case(outcome_generate_fails(), "report:1:10"),
    "report-infra": lambda: report_case(outcome_infra(), "report:1:11"),
    "incomplete": incomplete,
    "untestable": untestable,
    "pull-request": pull_request,
    "command-reply": command_reply,
    "command-nothing": command_nothing,
    "rate-notice": rate_notice,
    "subscriber-copy": subscriber_copy,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_reply_matches_golden_file(case):
    text = CASES[case]()
    path = GOLDEN / f"{case}.txt"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden file {path.name}: run `make golden`"
    assert text == path.read_text(encoding="utf-8"), f"{path.name} differs: see `make golden`"
