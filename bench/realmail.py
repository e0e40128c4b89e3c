"""Harness: the ingest path over real mail written by other projects.

    python3 bench/realmail.py --repo /path/to/bare-git-dir [--repo ...] [--json out.json]
    REALMAIL_REPOS=/a/repo:/b/repo python3 bench/realmail.py

Each ``--repo`` is a bare git directory of a public project that keeps real
mail as test data (patchwork's tests/data, b4's tests/samples, git's
t/t5100). Files are read with ``git show HEAD:<path>`` and never copied.
Nothing is downloaded here; without a repository the harness says so and
exits 0.

For each file: its mails (split as ``bpbot check`` splits an mbox) go into a
fresh State through ``spool.spool()``, then ``tracker.assemble()``. Recorded
per mail: a crash, the kind, the reason. The oracle for "is this a patch" is
``git mailinfo`` (the patch it extracts is non-empty), except that mails the
bot calls pull requests are checked against the subject/body only. Reported:

- crash: an exception out of spool or assemble;
- dropped: a mail that is not in state after spooling (silent drop);
- missed: git finds a patch, the bot's kind is not patch/pull-request
  (quarantine included: listed apart, with its reason);
- false-patch: git finds no patch, the bot says patch;
- series: for files with known grouping (EXPECTED_SERIES), the versions
  found vs. the versions expected ([patch count, ...] per version).
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.config import rules as config  # noqa: E402
from bot.ingest import classify as cls  # noqa: E402
from bot.ingest import spool  # noqa: E402
from bot.ingest.sources import read_mbox  # noqa: E402
from bot.series import assembly as series  # noqa: E402
from bot.series import tracker  # noqa: E402
from bot.state import State, loads  # noqa: E402

BOT = "bpbot@backports.example.org"
# Where each project keeps its mail, and which files are mails.
MAIL_DIRS = ("patchwork/tests/data/mail/", "patchwork/tests/data/series/",
             "patchwork/tests/data/fuzz/", "src/tests/samples/", "t/t5100/", "t/t4258/")
# patchwork's series tests: file -> patch counts of each series it must find.
EXPECTED_SERIES = {
    "base-single-patch.mbox": [1], "base-cover-letter.mbox": [2],
    "base-no-cover-letter.mbox": [2], "base-deep-threaded.mbox": [2],
    "base-out-of-order.mbox": [2], "base-different-versions.mbox": [4],
    "bugs-multiple-references.mbox": [4], "base-no-references.mbox": [2],
    "base-no-references-no-cover.mbox": [2], "revision-basic.mbox": [2, 2],
    "revision-threaded-to-single-patch.mbox": [1, 1], "revision-threaded-to-cover.mbox": [2, 2],
    "revision-threaded-to-patch.mbox": [2, 2], "revision-out-of-order.mbox": [2, 2],
    "revision-no-cover-letter.mbox": [2, 2], "revision-unlabeled.mbox": [2, 2],
    "revision-unlabeled-noreferences.mbox": [2, 2], "bugs-nocover-noversion.mbox": [2, 2],
    "bugs-nocover.mbox": [2, 2], "bugs-spamming.mbox": [1, 1, 1], "bugs-mixed-versions.mbox": [1, 1],
    "base-incomplete.mbox": [1],
}

log = logging.getLogger("bench.realmail")


def git(repo: str, *args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["git", f"--git-dir={repo}", *args] if repo else ["git", *args],
                          input=data, capture_output=True, check=False).stdout


def mail_files(repo: str) -> list[str]:
    names = git(repo, "ls-tree", "-r", "--name-only", "HEAD", "--", *MAIL_DIRS).decode().split("\n")
    out = []
    for name in names:
        base = name.rsplit("/", 1)[-1]
        if not name or base in ("README.md", ".gitattributes") or name.endswith(".py"):
            continue
        if name.startswith("t/t5100/") and not (base.startswith(("sample", "rfc2047-samples",
                                                                 "quoted-cr.mbox", "00"))
                                                or base.endswith(".in") or base == "nul-plain"):
            continue  # git's expected outputs (info/msg/patch files), not mail
        if name.startswith("src/tests/samples/") and not base.endswith(".mbox"):
            continue
        out.append(name)
    return out


_DIFFISH = re.compile(rb"^(diff |Index: |\+\+\+ |GIT binary patch)", re.M)


def git_sees_patch(raw: bytes) -> bool | None:
    """git mailinfo's verdict: does this mail carry a diff after its log
    message? None when git cannot read the mail (an unknown charset)."""
    with tempfile.TemporaryDirectory() as tmp:
        msg, patch = Path(tmp, "msg"), Path(tmp, "patch")
        done = subprocess.run(["git", "mailinfo", str(msg), str(patch)], input=raw,
                              capture_output=True, check=False)
        if done.returncode != 0:
            return None
        return patch.exists() and bool(_DIFFISH.search(patch.read_bytes()))


def run_file(raws: list[bytes], rules, workdir: Path) -> dict:
    state = State(workdir / "state.sqlite")
    out: dict = {"mails": len(raws), "crash": "", "rows": [], "versions": []}
    try:
        res = spool.spool(state, "realmail", raws, bot_address=BOT, loop_id="bpbot-test",
                          max_bytes=10 * 1024 * 1024)
        out["spooled"] = dict(new=res.new, duplicates=res.duplicates,
                              conflicting=res.conflicting, quarantined=res.quarantined)
    except Exception:  # noqa: BLE001 - what the harness measures
        out["crash"] = "spool: " + traceback.format_exc(limit=3)
        return out
    try:
        tracker.assemble(state, rules)
    except Exception:  # noqa: BLE001
        out["crash"] = "assemble: " + traceback.format_exc(limit=3)
    rows = {r["msgid"]: dict(r) for r in state.query(
        "SELECT msgid, kind, reason, subject FROM messages ORDER BY rowid")}
    for raw in raws:
        c = cls.classify(raw, BOT, "bpbot-test", 10 * 1024 * 1024)
        row = rows.get(c.msgid)
        if row is None:  # a conflicting copy is kept under msgid#conflict-...
            row = next((r for m, r in rows.items() if m.startswith(c.msgid + "#conflict-")), None)
        out["rows"].append(dict(msgid=c.msgid, kind=row["kind"] if row else "DROPPED",
                                reason=row["reason"] if row else "", subject=c.subject[:80],
                                git_patch=git_sees_patch(raw)))
    for v in state.query("SELECT v.revision, v.expected, v.present, v.state, v.state_reason AS reason, "
                         "v.has_cover, s.key FROM versions v JOIN series s ON s.id = v.series_id "
                         "ORDER BY v.id"):
        out["versions"].append(dict(revision=v["revision"], expected=v["expected"],
                                    present=loads(v["present"]), state=v["state"],
                                    reason=v["reason"], cover=bool(v["has_cover"]), key=v["key"]))
    return out


def judge(name: str, res: dict) -> list[str]:
    problems = []
    if res["crash"]:
        problems.append("CRASH " + res["crash"].strip().splitlines()[-1])
    for r in res["rows"]:
        tag = f"{r['msgid'][:50]} [{r['subject'][:50]}]"
        if r["kind"] == "DROPPED":
            problems.append(f"DROPPED {tag}")
        elif r["kind"] == cls.QUARANTINE and not r["reason"]:
            problems.append(f"QUARANTINE-NO-REASON {tag}")
        elif r["git_patch"] is None:
            continue
        elif r["git_patch"] and r["kind"] not in (cls.PATCH, cls.PULL):
            problems.append(f"MISSED ({r['kind']}: {r['reason'][:90]}) {tag}")
        elif not r["git_patch"] and r["kind"] == cls.PATCH:
            problems.append(f"FALSE-PATCH ({r['reason']}) {tag}")
    base = name.rsplit("/", 1)[-1]
    if base in EXPECTED_SERIES:
        live = res["versions"]  # a superseded v1 is still a version found
        got = sorted(len(v["present"]) for v in live)
        want = sorted(EXPECTED_SERIES[base])
        if got != want:
            problems.append(f"SERIES want {want} got {got}: " + "; ".join(
                f"v{v['revision']} {v['present']}/{v['expected']} {v['state']}" for v in live))
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repo", action="append", default=[],
                    help="bare git dir of a project with mail test data (repeatable)")
    ap.add_argument("--json", help="write every mail's outcome here")
    ap.add_argument("--only", help="only files whose path contains this")
    args = ap.parse_args(argv)
    repos = args.repo or [p for p in os.environ.get("REALMAIL_REPOS", "").split(":") if p]
    repos = [r for r in repos if Path(r).is_dir()]
    if not repos:
        print("no repository given or found (--repo / REALMAIL_REPOS); nothing to do")
        return 0
    logging.basicConfig(level=logging.ERROR)
    everything, kinds, problems = {}, collections.Counter(), collections.Counter()
    mails = 0
    with tempfile.TemporaryDirectory() as tmp:
        rules = config.load(ROOT / "rules" / "demo.toml", base_dir=tmp)
        series.configure_b4(rules.bot_name, rules.bot_address)
        for repo in repos:
            for name in mail_files(repo):
                if args.only and args.only not in name:
                    continue
                raws = read_mbox(git(repo, "show", f"HEAD:{name}"))
                if not raws:
                    continue
                work = Path(tempfile.mkdtemp(dir=tmp))
                res = run_file(raws, rules, work)
                mails += len(raws)
                kinds.update(r["kind"] for r in res["rows"])
                found = judge(name, res)
                for p in found:
                    problems[p.split(" ", 1)[0]] += 1
                    print(f"{name}: {p}")
                everything[f"{Path(repo).parent.name}:{name}"] = res
    print(f"files={len(everything)} kinds={dict(sorted(kinds.items()))}")
    print(f"mails={mails} crashes={problems['CRASH']} dropped={problems['DROPPED']} "
          f"missed={problems['MISSED']} false_patches={problems['FALSE-PATCH']} "
          f"no_reason={problems['QUARANTINE-NO-REASON']} series_differ={problems['SERIES']}")
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
