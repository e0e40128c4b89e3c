"""One run cannot break the next: what a generator or build leaves behind
(a ``chmod 000`` dir, one inside another, a file with no permissions) is
removed before the next run, and a cleanup that fails never blocks later runs.

The bot runs as its own user (deploy/bpbot.service), for whom such a dir
cannot be listed; root could. So as root these tests run the bot's side in a
process without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH (setpriv), which sees
permissions as the bot user does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.sandbox import cleanup

ROOT = Path(__file__).resolve().parent.parent
# Leaves d/locked (000) holding d/locked/inner (000) holding a file (000), and d/nofile (000).
HOSTILE = ('d={dir}; mkdir -p "$d/locked/inner" && touch "$d/locked/inner/f" "$d/nofile" && '
           'chmod 000 "$d/locked/inner/f" "$d/nofile" "$d/locked/inner" "$d/locked"')

RUNS_TWICE = """
import dataclasses, json, sys
from pathlib import Path
from bot.testrun import build
from bot.testrun import generate
from bot.demo import layout
from bot.sandbox import bwrap as sandbox

work, which, hostile = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
rules = layout.prepare(work, with_list=False)
extra = [["sh", "-c", hostile.replace("{dir}", "{output}" if which == "generate" else "{build_dir}")]]
if which == "generate":
    rules = dataclasses.replace(rules, generate_commands=rules.generate_commands + extra)
else:
    rules = dataclasses.replace(rules, build_commands=rules.build_commands + extra)
box = sandbox.for_rules(rules)
kernel = rules.kernels[-1]
out, build_dir, logs = work / "gen" / "out", work / "build" / kernel.name, work / "logs"
steps = []
for n in range(2):
    gen = generate.generate(rules, box, rules.tree_path, out, logs / f"generate-{n}.log")
    built = build.build_one(rules, box, kernel, out, build_dir, logs / f"build-{n}.log")
    steps.append([gen.status, gen.detail, built.status, built.detail])
print(json.dumps(steps))
"""


def as_bot_user(argv: list[str]) -> list[str]:
    """``argv`` run with the bot user's view of file permissions."""
    if os.geteuid() != 0:
        return argv
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed to test permissions as root", pytrace=False)
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", *argv]


def python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(as_bot_user([sys.executable, "-c", code, *args]), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def hostile_tree(d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["sh", "-c", HOSTILE.replace("{dir}", str(d))], capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 0, res.stderr


def test_the_setup_really_hides_a_chmod_000_dir(tmp_path):
    """Guard for the tests below: without the fix, the dir would stay."""
    hostile_tree(tmp_path / "d")
    res = python("import shutil, sys; shutil.rmtree(sys.argv[1], ignore_errors=True)",
                 str(tmp_path / "d"))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "d" / "locked").exists(), "rmtree removed a chmod 000 dir: nothing to test"


def test_fresh_dir_empties_a_dir_with_no_permissions_and_follows_no_symlink(tmp_path):
    target = tmp_path / "d"
    hostile_tree(target)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    outside.chmod(0o500)
    (target / "link").symlink_to(outside)
    res = python("import sys; from pathlib import Path; from bot.sandbox import cleanup; "
                 "cleanup.fresh_dir(Path(sys.argv[1]))", str(target))
    assert res.returncode == 0, res.stderr
    assert target.is_dir() and list(target.iterdir()) == [], "the dir is not fresh"
    assert (outside / "keep").exists(), "a symlink was followed: a file outside was removed"
    assert outside.stat().st_mode & 0o777 == 0o500, "a symlink was followed: a mode outside changed"


def test_fresh_dir_moves_aside_what_it_cannot_remove_and_removes_it_later(tmp_path, monkeypatch):
    target = tmp_path / "out"
    (target / "sub").mkdir(parents=True)
    real_remove = cleanup.remove_tree

    def failing(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(cleanup, "remove_tree", failing)
    cleanup.fresh_dir(target)
    assert target.is_dir() and list(target.iterdir()) == []
    trash = [p for p in tmp_path.iterdir() if p.name.startswith(cleanup.TRASH_PREFIX)]
    assert len(trash) == 1 and (trash[0] / "sub").is_dir(), "the old dir was not moved aside"
    monkeypatch.setattr(cleanup, "remove_tree", real_remove)
    cleanup.fresh_dir(target)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(cleanup.TRASH_PREFIX)], \
        "the trash was not removed by the next call"


def test_fresh_dir_that_cannot_be_made_is_a_typed_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(cleanup.CleanupError, match="cannot make a fresh directory"):
        cleanup.fresh_dir(tmp_path / "file" / "out")


@pytest.mark.parametrize("which", ["generate", "build"])
def test_unremovable_leftovers_do_not_break_the_next_run(tmp_path, which):
    """The rules' generate (or build) command leaves chmod 000 dirs and files; the
    next run still generates and builds fine."""
    res = python(RUNS_TWICE, str(tmp_path / "work"), which, HOSTILE)
    assert res.returncode == 0, f"the runs crashed:\n{res.stderr[-3000:]}"
    steps = json.loads(res.stdout.strip().splitlines()[-1])
    for n, (gen, gen_detail, built, build_detail) in enumerate(steps):
        assert gen == "success", f"run {n + 1}: generate {gen}: {gen_detail}"
        assert built == "success", f"run {n + 1}: build {built}: {build_detail}"


WORKER_TWICE = """
import dataclasses, json, os, subprocess, sys
from pathlib import Path
from bot.testrun import generate
from bot.demo import layout
from bot.sandbox import limits
from bot.testrun import remote
from bot.sandbox import bwrap as sandbox

work, hostile = Path(sys.argv[1]), sys.argv[2]
rules = layout.prepare(work, with_list=False)
box = sandbox.for_rules(rules)
gen = generate.generate(rules, box, rules.tree_path, work / "gen" / "out", work / "generate.log")
assert gen.status == "success", gen.detail
kernel = rules.kernels[-1]
payload = dict(kernel=dict(name=kernel.name, version=kernel.version, path=str(kernel.path)),
               archive=remote.pack(work / "gen" / "out"),
               build_commands=rules.build_commands + [["sh", "-c", hostile.replace("{dir}", "{build_dir}")]],
               build_timeout=300, output_cap=rules.output_cap, ccache=False, sandbox="bwrap",
               limits=dataclasses.asdict(limits.from_rules(rules)))
os.environ["BPBOT_WORKER_DIR"] = str(work / "worker")
first = remote.build_job(payload)
# Whatever else a job left in its slot's package dir.
slot = work / "worker" / f"pid{os.getpid()}" / kernel.name
subprocess.run(["sh", "-c", hostile.replace("{dir}", str(slot / "out"))], check=True)
second = remote.build_job(payload)
print(json.dumps([[first["status"], first["detail"]], [second["status"], second["detail"]]]))
"""


def test_rq_worker_slot_leftovers_do_not_break_the_next_job(tmp_path):
    res = python(WORKER_TWICE, str(tmp_path / "work"), HOSTILE)
    assert res.returncode == 0, f"the jobs crashed:\n{res.stderr[-3000:]}"
    for n, (status, detail) in enumerate(json.loads(res.stdout.strip().splitlines()[-1])):
        assert status == "success", f"job {n + 1}: build {status}: {detail}"
