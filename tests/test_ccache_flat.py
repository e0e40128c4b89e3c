"""ccache as the builds use it: code the same token for token (lines a kernel
never compiles inserted in the middle) comes from the cache; any other change,
__LINE__ included, is compiled."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bot.testrun import ccache
from tests.test_reuse import tree  # noqa: F401 - the fixture

pytestmark = pytest.mark.skipif(not Path(ccache.BIN, "gcc").exists(), reason="no ccache")

BASE = """#include <stddef.h>
int first(void) { return 1; }

int later(void) { int unused; return (int)sizeof(size_t); }
"""
GUARDED = BASE.replace("\n\n", "\n#if 0\nint never_compiled = nothing;\n#endif\n\n\n")


def _compile(tmp_path: Path, source: str, trusted: bool) -> subprocess.CompletedProcess:
    (tmp_path / "a.c").write_text(source)
    cache = ccache.cache_dir(tmp_path / "state", True)
    env = ccache.build_env({"PATH": os.environ["PATH"], "HOME": str(tmp_path)}, cache,
                           ccache.tools_dir(tmp_path / "state"), trusted)
    return subprocess.run(["gcc", "-Wall", "-O2", "-c", "-o", "a.o", "a.c"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)


def _hits(tmp_path: Path) -> int:
    out = subprocess.run(["ccache", "--print-stats"], capture_output=True, text=True,
                         env={**os.environ, "CCACHE_DIR": str(tmp_path / "state" / "ccache")},
                         timeout=60).stdout
    return sum(int(line.split()[1]) for line in out.splitlines()
               if line.split()[:1] in (["preprocessed_cache_hit"], ["direct_cache_hit"]))


LONG = BASE.replace("\n\n", "\n#if 0\n" + "int never%d;\n" * 12 % tuple(range(12)) + "#endif\n\n")


@pytest.mark.parametrize("series", [GUARDED, LONG], ids=["short-block", "long-block"])
def test_lines_never_compiled_inserted_in_the_middle_hit_the_cache(tmp_path, series):
    """A short block leaves blank lines, a long one a line marker: both hit."""
    base = _compile(tmp_path, BASE, trusted=True)
    assert base.returncode == 0 and "a.c:4:" in base.stderr  # the unused variable
    assert _hits(tmp_path) == 0
    series = _compile(tmp_path, series, trusted=False)
    assert series.returncode == 0 and _hits(tmp_path) == 1
    # The cached compile's warning, at its own line: the base's, not a new one.
    assert "a.c:4:" in series.stderr


@pytest.mark.parametrize("change", [
    ("return 1;", "return 2;"),                                   # a token
    ("int first(void)", "int first(void) /* x */ { return __LINE__; }\nint first2(void)"),
    ("\n\n", "\n#if 1\nint compiled = nothing;\n#endif\n\n"),        # a block that is compiled
])
def test_any_change_to_the_code_is_compiled(tmp_path, change):
    assert _compile(tmp_path, BASE, trusted=True).returncode == 0
    series = _compile(tmp_path, BASE.replace(*change, 1), trusted=False)
    assert _hits(tmp_path) == 0, series.stderr


def test_line_numbers_in_the_code_are_compiled(tmp_path):
    """__LINE__ is expanded before the hash: the same code one line lower differs."""
    with_line = BASE + "int where(void) { return __LINE__; }\n"
    assert _compile(tmp_path, with_line, trusted=True).returncode == 0
    assert _compile(tmp_path, with_line.replace("\n\n", "\n\n\n", 1),
                    trusted=False).returncode == 0
    assert _hits(tmp_path) == 0


def test_the_same_code_from_another_file_is_compiled(tmp_path):
    """A renamed source, or a header of the same content at another path: the
    cached dependency list would name the old file."""
    (tmp_path / "h1.h").write_text("int from_header(void);\n")
    (tmp_path / "h2.h").write_text("int from_header(void);\n")
    assert _compile(tmp_path, '#include "h1.h"\n' + BASE, trusted=True).returncode == 0
    assert _compile(tmp_path, '#include "h2.h"\n' + BASE, trusted=False).returncode == 0
    assert _hits(tmp_path) == 0
    (tmp_path / "a.c").write_text(BASE)
    env = ccache.build_env({"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
                           tmp_path / "state" / "ccache", ccache.tools_dir(tmp_path / "state"),
                           trusted=False)
    (tmp_path / "b.c").write_text('#include "h1.h"\n' + BASE)
    assert subprocess.run(["gcc", "-Wall", "-O2", "-c", "-o", "a.o", "b.c"], cwd=tmp_path,
                          env=env, capture_output=True, timeout=120).returncode == 0
    assert _hits(tmp_path) == 0


def test_a_series_build_never_writes_the_cache(tmp_path):
    assert _compile(tmp_path, BASE, trusted=False).returncode == 0
    assert _compile(tmp_path, BASE, trusted=False).returncode == 0
    assert _hits(tmp_path) == 0  # read-only: the first compile stored nothing


def test_the_flattening_script_is_rewritten_when_changed(tmp_path):
    tools = ccache.tools_dir(tmp_path)
    script = tools / "cpp-flat"
    script.write_text("#!/bin/sh\nexit 0\n")
    assert ccache.tools_dir(tmp_path) == tools and script.read_text() == ccache.CPP_FLAT
    assert os.access(script, os.X_OK)


def test_a_block_inserted_in_the_middle_answers_as_a_clean_build(tree):  # noqa: F811
    """Through the bot: the kernels that do not compile the block take its objects
    from the cache, the one that does fails, as a clean build says."""
    from bot.sandbox import git
    from tests.test_reuse import Bot, _answer

    top = tree.tree_path
    main = top / "compat" / "main.c"
    text = main.read_text()
    cut = text.index("\n\n") + 1
    assert git.git(top, "checkout", "-q", "-b", "middle", "main").ok
    main.write_text(text[:cut] + "#if LINUX_VERSION_IN_RANGE(4,14,0, 4,15,0)\n"
                    "int bp_middle = undefined_in_the_middle;\n#endif\n" + text[cut:])
    assert git.git(top, "commit", "-qam", "compat: a block in the middle").ok
    raw = git.git(top, "format-patch", "--stdout", "-1",
                  "--add-header=Message-ID: <middle@example.org>").output.encode()
    assert git.git(top, "checkout", "-q", "main").ok
    bot, cold = Bot(tree, "warm"), Bot(tree, "cold", build_reuse=False, ccache=False)
    bot.test(_series_first(tree))  # builds the base (and fills the cache)
    warm = bot.test(raw)
    assert {k.kernel.name: k.verdict for k in warm.kernels} == \
        {"4.14": "fail", "5.4": "pass", "6.1": "pass"}
    assert _answer(warm) == _answer(cold.test(raw))


def _series_first(rules) -> bytes:
    from tests.test_reuse import _series
    return _series(rules, "first", "compat/main.c", "\nint bp_first;\n")


def test_builds_starting_at_once_all_get_the_script(tmp_path):
    """Parallel builds each make sure of the script: none fails for another's rename."""
    from concurrent.futures import ThreadPoolExecutor
    for round_ in range(20):
        state = tmp_path / str(round_)
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(ccache.tools_dir, [state] * 8)) == {state / "tools"}
        assert [p.name for p in (state / "tools").iterdir()] == ["cpp-flat"]


def _flat_hit(tmp_path: Path, base: str, series: str, files: dict[str, tuple[str, str]],
              locale: str = "C") -> bool:
    """Compile ``base`` (trusted), then ``series`` (read-only), each with its
    version of ``files`` (name -> (base text, series text)); did the series hit?"""
    cache = ccache.cache_dir(tmp_path / "state", True)
    tools = ccache.tools_dir(tmp_path / "state")
    for i, (source, trusted) in enumerate(((base, True), (series, False))):
        for name, texts in files.items():
            (tmp_path / name).write_text(texts[i])
        (tmp_path / "a.c").write_text(source)
        env = ccache.build_env({"PATH": os.environ["PATH"], "HOME": str(tmp_path),
                                "LC_ALL": locale}, cache, tools, trusted)
        subprocess.run(["gcc", "-Wall", "-O2", "-c", "-o", "a.o", "a.c"], cwd=tmp_path, env=env,
                       capture_output=True, timeout=120)
    return _hits(tmp_path) > 0


def test_a_header_that_stops_being_a_system_header_is_compiled(tmp_path):
    """`#pragma GCC system_header` shows only as a flag on a line marker."""
    header = "static inline int hv(void) { int unused; return 0; }\n"
    source = '#include "h.h"\nint f(void) { return hv(); }\n'
    assert not _flat_hit(tmp_path, source, source,
                         {"h.h": ("#pragma GCC system_header\n" + header, "\n" + header)})


def test_assembler_includes_are_never_taken_from_the_cache(tmp_path):
    """The assembler reads an .include itself: the preprocessor never sees it."""
    source = 'asm(".include \\"inc.s\\"");\nint f(void) { return 1; }\n'
    assert not _flat_hit(tmp_path, source, source,
                         {"inc.s": ("nop\n", "not_an_instruction\n")})


def test_a_line_of_unicode_space_is_code_whatever_the_locale(tmp_path):
    assert not _flat_hit(tmp_path, BASE, BASE + "\u3000\n", {}, locale="C.UTF-8")
