"""``bpbot check`` keeps its exit-code contract (0 pass, 1 breaks, 2 untested, 3 usage)."""

from __future__ import annotations

import json

import pytest

from bot import cli
from bot.demo import layout

SAMPLE = {p.name.split("-", 1)[0]: p for p in layout.sample_list()}


def _mbox(tmp_path, *numbers: str):
    """The chosen sample mails as one mbox file."""
    path = tmp_path / "input.mbox"
    with path.open("wb") as fh:
        for n in numbers:
            fh.write(b"From bpbot-test Thu Jan  1 00:00:00 2026\n")
            for line in SAMPLE[n].read_bytes().splitlines(keepends=True):
                fh.write(b">" + line if line.startswith(b"From ") else line)
            fh.write(b"\n")
    return path


@pytest.mark.parametrize(
    ("numbers", "code", "expect"),
    [
        (("01", "02", "03", "04", "05"), 0, "Verdict: PASS"),
        (("06", "07"), 1, "FAIL: breaks 3.10"),
        (("13", "14"), 0, "Verdict: PASS"),
        (("09",), 2, "does not apply"),
        (("10", "11"), 2, "missing 2 of 3; got 1, 3."),
    ],
    ids=["clean-series", "breaks-oldest", "v2-fixes", "does-not-apply", "incomplete"],
)
def test_check_exit_codes(tmp_path, capsys, numbers, code, expect):
    assert cli.main(["check", str(_mbox(tmp_path, *numbers))]) == code
    assert expect in capsys.readouterr().out


def test_check_single_eml_without_patch_exits_2(capsys):
    assert cli.main(["check", str(SAMPLE["08"])]) == 2
    err = capsys.readouterr().err
    assert "no patch series found" in err and "other" in err


def test_check_bounce_is_not_a_series(capsys):
    assert cli.main(["check", str(SAMPLE["12"])]) == 2
    assert "bounce" in capsys.readouterr().err


def test_check_json(tmp_path, capsys):
    assert cli.main(["check", "--json", str(_mbox(tmp_path, "06", "07"))]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["exit_code"] == 1
    [series] = data["series"]
    assert series["verdict"] == "fail"
    matrix = {s["kernel"]: s["verdict"] for s in series["steps"] if s["name"] == "kernel"}
    # Every kernel is built (the guards only order the builds): B v1 breaks 3.10 to 4.9.
    broken = {"3.10", "3.16", "4.4", "4.9"}
    assert matrix == {k: "fail" if k in broken else "pass" for k in matrix} and len(matrix) == 10
    builds = {s["kernel"]: s["status"] for s in series["steps"] if s["name"] == "build"}
    assert builds == {k: "failed" if k in broken else "success" for k in matrix}
    assert "FAIL: breaks 3.10" in data["replies"][0]["text"]


def test_check_maildir(tmp_path, capsys):
    box = tmp_path / "md"
    layout.make_maildir(box)
    for i, n in enumerate(("13", "14")):
        layout.deliver(box, SAMPLE[n], i)
    assert cli.main(["check", str(box)]) == 0


def test_check_broken_rules_exits_3_naming_the_key(tmp_path, capsys):
    rules = tmp_path / "broken.toml"
    text = (layout.config.DEMO_RULES.read_text()).replace("jobs = 2", "jobs = 0")
    rules.write_text(text)
    assert cli.main(["check", "--rules", str(rules), str(SAMPLE["08"])]) == 3
    err = capsys.readouterr().err
    assert "broken.toml" in err and "build.jobs" in err and "must be positive" in err


def test_check_missing_input_exits_3(tmp_path, capsys):
    assert cli.main(["check", str(tmp_path / "nope.eml")]) == 3
    assert "no such file" in capsys.readouterr().err


def test_usage_error_exits_3(capsys):
    assert cli.main(["check"]) == 3


def test_check_git_format_patch_output(tmp_path, capsys):
    """A contributor checks a series before mailing it: format-patch files carry
    no threading headers, so all input is one thread."""
    from bot.sandbox import git

    work = tmp_path / "work"
    layout.prepare(work, with_list=False)
    tree = work / "tree"
    header = tree / "backport-include" / "linux" / "bitmap.h"
    for i in (1, 2):
        header.write_text(header.read_text() + f"\n/* note {i} */\n")
        assert git.git(tree, "commit", "-qam", f"headers: note {i}").ok
    out = tmp_path / "outgoing"
    assert git.git(tree, "format-patch", "-q", "--cover-letter", "-o", str(out), "HEAD~2").ok
    patches = sorted(str(p) for p in out.glob("*.patch"))
    assert len(patches) == 3
    assert cli.main(["check", *patches]) == 0
    assert "(v1, 2 patches)" in capsys.readouterr().out


def test_check_json_says_what_each_mail_was_taken_for(tmp_path, capsys):
    """A user sees why a mail was not used: its kind and the reason."""
    assert cli.main(["check", "--json", str(_mbox(tmp_path, "08", "12", "13", "14"))]) == 0
    data = json.loads(capsys.readouterr().out)
    kinds = {m["subject"]: (m["kind"], m["reason"]) for m in data["messages"]}
    assert len(data["messages"]) == 4
    by_kind = sorted(k for k, _ in kinds.values())
    assert by_kind == ["bounce", "other", "patch", "patch"], kinds
    assert all(reason for _, reason in kinds.values())
