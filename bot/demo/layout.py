"""The embedded default: lay out the bundled sample tree, kernels and list."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from bot.config import rules as config
from bot.sandbox import git

log = logging.getLogger(__name__)
DATA = Path(__file__).resolve().parent / "data"
SAMPLE_IDENTITY = ("Backports Maintainer", "maintainer@backports.example.org")
SAMPLE_DATE = "2026-01-05T10:00:00+00:00"


def prepare(workdir: Path, with_list: bool = True) -> config.Rules:
    """Copy the sample data into ``workdir`` (idempotent) and load demo rules for it."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("upstream", "kernels"):
        if not (workdir / name).exists():
            shutil.copytree(DATA / name, workdir / name)
    tree = workdir / "tree"
    if not (tree / ".git").exists():
        shutil.rmtree(tree, ignore_errors=True)
        shutil.copytree(DATA / "tree", tree)
        _commit_tree(tree)
    make_maildir(workdir / "list")
    if with_list:
        for i, src in enumerate(sample_list()):
            deliver(workdir / "list", src, i)
    return config.load(config.DEMO_RULES, base_dir=workdir)


def _commit_tree(tree: Path) -> None:
    env_date = {"GIT_AUTHOR_DATE": SAMPLE_DATE, "GIT_COMMITTER_DATE": SAMPLE_DATE}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["commit", "-q", "-m", "backports: sample tree"]):
        res = git.proc.run(["git", "-C", str(tree), *args], timeout=60,
                           env={**git.env(*SAMPLE_IDENTITY), **env_date})
        if not res.ok:
            raise RuntimeError(f"git {' '.join(args)} failed in {tree}: {res.output}")


def sample_list() -> list[Path]:
    """The sample list's mails, in arrival order."""
    return sorted((DATA / "list").glob("*.eml"))


def make_maildir(path: Path) -> None:
    for sub in ("new", "cur", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)


def deliver(maildir: Path, src: Path, index: int) -> None:
    """Deliver one mail; Maildir names sort in delivery order."""
    dest = maildir / "new" / f"{1767600000 + index}.{index:04d}_{src.stem}.bpbot-demo"
    if not dest.exists():
        tmp = maildir / "tmp" / dest.name
        shutil.copyfile(src, tmp)
        tmp.rename(dest)
