"""A generator that rewrites some files it copies ([generate] verbatim_unless),
the files of the tree's revision it writes ([generate] stamps), and {jobs}."""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import py_compile
import subprocess

import pytest

from bot.config import rules as config
from bot.errors import ConfigError
from bot.reply import report
from bot.sandbox import bwrap as sandbox
from bot.sandbox import git
from bot.testrun import build, incremental, verbatim, warm
from tests.test_reuse import Bot, _answer, _series, tree  # noqa: F401 - the fixture

# As the real gentree.py renames the package's Kconfig symbols in every file.
RENAME = ('        for p in (outdir / "compat").rglob("*.c"):\n'
          '            p.write_text(p.read_text().replace("CONFIG_DEMO_", "CPTCFG_DEMO_"))\n')


@pytest.fixture
def renaming(tree):  # noqa: F811 - the fixture from test_reuse
    """The sample tree whose generator renames CONFIG_DEMO_ in compat/*.c, and a
    base file that holds such a symbol (its package copy differs)."""
    top = tree.tree_path
    gentree = top / "gentree.py"
    text = gentree.read_text()
    assert "        add_backport_code(outdir)\n" in text
    gentree.write_text(text.replace("        add_backport_code(outdir)\n",
                                    "        add_backport_code(outdir)\n" + RENAME, 1))
    old = top / "compat" / "backport-4.19.c"
    old.write_text(old.read_text() + "\n/* CONFIG_DEMO_OLD is renamed in the package */\n")
    assert git.git(top, "commit", "-qam", "gentree: rename the demo symbols").ok
    return dataclasses.replace(tree, generate_verbatim_unless=("CONFIG_DEMO_",))


def test_a_file_the_generator_rewrites_is_left_out_of_the_check(renaming, caplog):
    caplog.set_level(logging.INFO, logger="bot.testrun")
    bot = Bot(renaming, "warm")
    bot.test(_series(renaming, "first", "compat/main.c", "\nint bp_first;\n"))
    assert "verbatim does not hold" not in caplog.text
    caplog.clear()
    outcome = bot.test(_series(renaming, "plain", "compat/main.c", "\nint bp_plain;\n"))
    assert "the generator copies verbatim" in caplog.text
    assert outcome.verdict == "pass"


def test_a_series_adding_a_rewritten_symbol_is_generated(renaming, caplog):
    """Copied verbatim, CONFIG_DEMO_ON would stay undefined (a wrong PASS); the
    generator makes it CPTCFG_DEMO_ON, which is defined: the error shows."""
    caplog.set_level(logging.INFO, logger="bot.testrun")
    bot = Bot(renaming, "warm")
    cold = Bot(renaming, "cold", build_reuse=False, ccache=False)
    bot.test(_series(renaming, "first", "compat/main.c", "\nint bp_first;\n"))
    raw = _series(renaming, "symbol", "compat/main.c",
                  "\n#define CPTCFG_DEMO_ON 1\n#ifdef CONFIG_DEMO_ON\n"
                  "int bp_s = undefined_in_package;\n#endif\n")
    caplog.clear()
    outcome = bot.test(raw)
    assert "compat/main.c holds 'CONFIG_DEMO_'" in caplog.text
    assert "the generator copies verbatim" not in caplog.text
    # The package's versions (the tree's id) is the base's: only main.c differs.
    assert "package: versions taken from the base's package" in caplog.text
    assert "1 file(s) differ from the base's: compat/main.c\n" in caplog.text
    assert outcome.verdict == "fail"
    assert _answer(outcome) == _answer(cold.test(raw))


def test_without_stamps_the_trees_revision_differs(renaming, caplog):
    caplog.set_level(logging.INFO, logger="bot.testrun")
    bot = Bot(renaming, "warm", generate_stamps=())
    bot.test(_series(renaming, "first", "compat/main.c", "\nint bp_first;\n"))
    caplog.clear()
    bot.test(_series(renaming, "symbol", "compat/main.c", "\n/* CONFIG_DEMO_X */\n"))
    assert "2 file(s) differ from the base's: compat/main.c, versions\n" in caplog.text


def test_without_the_markers_the_shortcut_is_refused(renaming, caplog):
    caplog.set_level(logging.INFO, logger="bot.testrun")
    bot = Bot(renaming, "warm", generate_verbatim_unless=())
    bot.test(_series(renaming, "first", "compat/main.c", "\nint bp_first;\n"))
    assert "compat/backport-4.19.c differs from its copy" in caplog.text
    caplog.clear()
    bot.test(_series(renaming, "plain", "compat/main.c", "\nint bp_plain;\n"))
    assert "not using [generate] verbatim on base" in caplog.text


def test_a_base_checked_under_other_markers_is_checked_again(renaming, caplog):
    caplog.set_level(logging.INFO, logger="bot.testrun")
    Bot(renaming, "warm").test(_series(renaming, "first", "compat/main.c", "\nint bp_1;\n"))
    again = dataclasses.replace(renaming, state_dir=renaming.base_dir / "warm",
                                generate_verbatim_unless=("CONFIG_DEMO_", "OTHER"))
    pkg = warm.package(again, next(p.name[4:] for p in warm.root(again).glob("pkg-*")))
    assert pkg is not None and pkg.verbatim_problem is None  # not checked under these rules


def test_take_stamps_never_replaces_a_link(tmp_path):
    base, out, outside = tmp_path / "base", tmp_path / "out", tmp_path / "outside"
    for d in (base, out):
        d.mkdir()
    (base / "versions").write_text("base\n")
    (base / "other").write_text("base\n")
    outside.write_text("secret\n")
    (out / "versions").symlink_to(outside)
    (base / "sub").mkdir()
    (base / "sub" / "v").write_text("base\n")
    (out / "real").mkdir()
    (out / "real" / "v").write_text("series\n")
    (out / "sub").symlink_to("real")
    assert warm.take_stamps(base, out, ("versions", "other", "absent", "sub/v")) == []
    assert outside.read_text() == "secret\n"
    assert (out / "versions").is_symlink()  # what the build reads: left as made
    assert (out / "real" / "v").read_text() == "series\n"
    assert not (out / "other").exists()  # the generator made none: none is added
    (out / "versions").unlink()
    (out / "versions").write_text("series\n")
    assert warm.take_stamps(base, out, ("versions",)) == ["versions"]
    assert (out / "versions").read_text() == "base\n"


def test_verbatim_check_skips_marked_files(tmp_path):
    top, pkg = tmp_path / "tree", tmp_path / "pkg"
    for d in (top / "inc", pkg / "inc"):
        d.mkdir(parents=True)
    (top / "inc" / "a.h").write_text("plain\n")
    (pkg / "inc" / "a.h").write_text("plain\n")
    (top / "inc" / "b.h").write_text("#ifdef CONFIG_X\n")
    (pkg / "inc" / "b.h").write_text("#ifdef CPTCFG_X\n")
    mapping = (("inc/**", "inc/"),)
    assert "inc/b.h differs" in verbatim.check(mapping, top, pkg)
    assert verbatim.check(mapping, top, pkg, ("CONFIG_",)) == ""
    (pkg / "inc" / "b.h").rename(pkg / "inc" / "elsewhere.h")  # not where the mapping says
    assert verbatim.check(mapping, top, pkg, ("CONFIG_",)) == \
        "inc/b.h is not in the generated package at inc/b.h"
    (pkg / "inc" / "elsewhere.h").rename(pkg / "inc" / "b.h")
    assert verbatim.rewritten(top, ["inc/a.h", "inc/b.h"], ("CONFIG_",)) == \
        "inc/b.h holds 'CONFIG_'"
    assert verbatim.rewritten(top, ["inc/a.h", "inc/gone.h"], ("CONFIG_",)) == ""
    (top / "inc" / "c.h").write_bytes(b"dos\r\n")
    (top / "inc" / "d.h").write_bytes(b"caf\xe9\n")
    assert verbatim.rewritten(top, ["inc/c.h"], ("CONFIG_",)) == \
        "inc/c.h holds a carriage return"
    assert verbatim.rewritten(top, ["inc/d.h"], ("CONFIG_",)) == "inc/d.h is not UTF-8 text"


@pytest.mark.parametrize("key, value, message", [
    ("verbatim_unless", '[""]', "an empty string would match every file"),
    ("verbatim_unless", '"CONFIG_"', "a list of strings"),
    ("stamps", '["../versions"]', "entry 0 must be a file path relative to the package"),
    ("stamps", '["/versions"]', "entry 0 must be a file path relative to the package"),
])
def test_bad_rewrite_and_stamp_keys_are_refused_at_load(tmp_path, key, value, message):
    path = tmp_path / "rules.toml"
    text = config.DEMO_RULES.read_text()
    assert f"\n{key} = " in text
    path.write_text("\n".join(f"{key} = {value}" if line.startswith(f"{key} = ") else line
                              for line in text.splitlines()))
    with pytest.raises(ConfigError, match=message):
        config.load(path)


@pytest.mark.parametrize("kernels", [1, 2])
def test_jobs_are_the_cores_shared_by_the_builds_running(tree, tmp_path, kernels):  # noqa: F811
    """One kernel alone gets every core ({jobs}); two at once share them."""
    rules = dataclasses.replace(tree, sandbox="none", build_jobs=2, ccache=False,
                                build_commands=[["sh", "-c", 'echo "$0" > "$1/jobs"', "{jobs}",
                                                 "{build_dir}"]])
    chosen = rules.kernels[:kernels]
    steps = build.build_all(rules, sandbox.for_rules(rules), chosen, tmp_path, tmp_path / "b",
                            tmp_path / "logs")
    assert [s.status for s in steps] == ["success"] * kernels
    want = max(1, (os.cpu_count() or 1) // kernels)
    assert {(tmp_path / "b" / k.name / "jobs").read_text().strip() for k in chosen} == {str(want)}


def _series_bytes(rules, name: str, path: str, data: bytes) -> bytes:
    """_series with raw bytes (not text) appended to ``path``."""
    top = rules.tree_path
    assert git.git(top, "checkout", "-q", "-b", name, "main").ok
    (top / path).parent.mkdir(parents=True, exist_ok=True)
    old = (top / path).read_bytes() if (top / path).exists() else b""
    (top / path).write_bytes(old + data)
    assert git.git(top, "add", "-A").ok
    assert git.git(top, "commit", "-qm", f"compat: {name}").ok
    out = subprocess.run(["git", "format-patch", "--stdout", "-1",
                          f"--add-header=Message-ID: <{name}@example.org>"],
                         cwd=top, capture_output=True, check=True).stdout
    assert git.git(top, "checkout", "-q", "main").ok
    return out


def test_a_file_the_generator_cannot_read_as_text_is_generated(renaming, caplog):
    """The generator reads the files it rewrites as text: a byte that is not
    UTF-8 ends its run. Copied verbatim, the same series passed."""
    caplog.set_level(logging.INFO, logger="bot.testrun")
    bot = Bot(renaming, "warm")
    cold = Bot(renaming, "cold", build_reuse=False, ccache=False)
    bot.test(_series(renaming, "first", "compat/main.c", "\nint bp_first;\n"))
    raw = _series_bytes(renaming, "latin1", "compat/main.c", b"\n/* \x00 caf\xe9 */\nint bp_l;\n")
    caplog.clear()
    outcome = bot.test(raw)
    assert "compat/main.c is not UTF-8 text" in caplog.text
    assert "the generator copies verbatim" not in caplog.text
    assert outcome.verdict != "pass"
    assert _answer(outcome) == _answer(cold.test(raw))


# A patch (applied to the package by the generator) that makes the package's
# versions a link to its Makefile, which includes versions: make recurses.
LINK = (b"diff --git a/versions b/versions\nnew file mode 120000\nindex 0000000..1234567\n"
        b"--- /dev/null\n+++ b/versions\n@@ -0,0 +1 @@\n+Makefile\n"
        b"\\ No newline at end of file\n")


def _patch_series(rules, caplog, name: str, path: str, data: bytes):
    """The bot (warm trees, stamps) and a cold run (no stamps) on one series after a
    first one: (the bot's outcome, what the bot logged for it, the cold outcome)."""
    caplog.set_level(logging.INFO, logger="bot.testrun")
    bot = Bot(rules, "warm")
    cold = Bot(rules, "cold", build_reuse=False, ccache=False, generate_stamps=())
    bot.test(_series(rules, "first", "compat/main.c", "\nint bp_first;\n"))
    raw = _series_bytes(rules, name, path, data)
    caplog.clear()
    outcome = bot.test(raw)
    return outcome, caplog.text, cold.test(raw)


def test_a_stamp_the_generator_makes_a_link_is_not_replaced(tree, caplog):  # noqa: F811
    """The series' package reads its Makefile through the link; with the base's
    versions put in its place, the broken package built."""
    outcome, logged, cold = _patch_series(tree, caplog, "link", "patches/zz-versions.patch", LINK)
    assert "versions taken from the base's package" not in logged
    assert outcome.verdict != "pass"
    assert _answer(outcome) == _answer(cold)


# A patch that adds a link to a text file where the package's Makefile
# compiles every compat/backport-X.Y.c (for kernels older than X.Y).
COMPILED_LINK = (b"diff --git a/compat/backport-9.9.c b/compat/backport-9.9.c\n"
                 b"new file mode 120000\nindex 0000000..1234567\n"
                 b"--- /dev/null\n+++ b/compat/backport-9.9.c\n@@ -0,0 +1 @@\n"
                 b"+../dependencies\n\\ No newline at end of file\n")


def test_a_link_the_generator_adds_to_the_package_is_built(tree, caplog):  # noqa: F811
    """With the stamps the base's, nothing else differs from the base's package
    but the link: it must not read as an unchanged package."""
    outcome, logged, cold = _patch_series(tree, caplog, "added-link", "patches/zz-link.patch",
                                          COMPILED_LINK)
    assert "every kernel is built clean" in logged
    assert outcome.verdict != "pass"
    assert _answer(outcome) == _answer(cold)


def test_python_bytecode_and_extensions_are_the_generators_code():
    """An unchecked-hash .pyc is imported whatever its source says, and an extension
    module before the .py of its name: either changes what the generator writes."""
    changed = ["lib/__pycache__/kconfig.cpython-311.pyc", "lib/kconfig.abi3.so",
               "lib/bpgit.cpython-311-x86_64-linux-gnu.so", "gentree.py", "compat/main.c"]
    assert incremental.generator_changed(changed) == changed[:4]


@pytest.fixture
def importing(tree):  # noqa: F811 - the fixture from test_reuse
    """The sample tree whose generator imports a module of the tree (as gentree.py
    its lib/), which adds a line to the package's versions."""
    top = tree.tree_path
    (top / "genlib.py").write_text('EXTRA = ""\n')
    gentree = top / "gentree.py"
    text = gentree.read_text()
    call = "        write_versions(upstream, outdir)\n"
    assert call in text
    gentree.write_text(text.replace(call, call + (
        "        sys.path.insert(0, str(TREE))\n"
        "        import genlib\n"
        "        with (outdir / 'versions').open('a') as f:\n"
        "            f.write(genlib.EXTRA)\n"), 1))
    assert git.git(top, "add", "-A").ok
    assert git.git(top, "commit", "-qm", "gentree: a module of the tree").ok
    return tree


def test_a_series_changing_the_generators_bytecode_is_built_with_its_stamps(
        importing, tmp_path, caplog):
    """Python uses an unchecked-hash .pyc whatever the .py says: the series'
    generator wrote a versions that breaks the package's Makefile."""
    caplog.set_level(logging.INFO, logger="bot.testrun")
    bot = Bot(importing, "warm")
    cold = Bot(importing, "cold", build_reuse=False, ccache=False, generate_stamps=())
    bot.test(_series(importing, "first", "compat/main.c", "\nint bp_first;\n"))
    source = tmp_path / "genlib.py"
    source.write_text('EXTRA = "$(error the generator wrote this)\\n"\n')
    pyc = tmp_path / "genlib.pyc"
    py_compile.compile(str(source), str(pyc), doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    rel = os.path.relpath(importlib.util.cache_from_source("genlib.py"))
    raw = _series_bytes(importing, "bytecode", rel, pyc.read_bytes())
    caplog.clear()
    outcome = bot.test(raw)
    assert "versions taken from the base's package" not in caplog.text
    assert outcome.verdict != "pass"
    assert _answer(outcome) == _answer(cold.test(raw))


def test_the_backports_mapping_names_no_file_gentree_leaves_out():
    """gentree.py copies backport/ without *~ and *.o files: taken verbatim, a
    header a series adds as linux/x.h~ (and includes) would be in the package."""
    mapping = config.load(config.RULES_DIR / "backports.toml").generate_verbatim
    assert verbatim.package_path(mapping, "backport/backport-include/linux/x.h") == \
        "backport-include/linux/x.h"
    for left_out in ("backport/backport-include/linux/x.h~", "backport/backport-include/x.o",
                     "backport/compat/main.c~", "backport/compat/main.o"):
        assert verbatim.package_path(mapping, left_out) is None


@pytest.mark.parametrize("version, where", [
    ("v6.1.192", "../linux-6.1.192"), ("v6.12-rc3", "../linux-6.12-rc3"),
    ("v6.1.192-3-gabcdef012345", None), ("v6.1.192-dirty", None), ("abcdef012345", None),
    ("", None)])
def test_reproduce_names_the_upstream_by_a_tag_only(version, where):
    """A commit past a tag is no tag a reader can check out."""
    assert report.upstream_dir(version) == where


def test_rewritten_reads_a_changed_file_in_chunks(tmp_path, monkeypatch):
    """A marker or a UTF-8 character across two chunks is seen as in one."""
    monkeypatch.setattr(verbatim, "CHUNK", 4)
    for data, why in [(b"abcCONFIG_x", "f holds 'CONFIG_'"), (b"caf\xc3\xa9 ok", ""),
                      (b"ab\xc3", "f is not UTF-8 text"), (b"CONFxIG_", "")]:
        (tmp_path / "f").write_bytes(data)
        assert verbatim.rewritten(tmp_path, ["f"], ("CONFIG_", "$(srctree)")) == why
