"""A series that changes gentree.py only changes the package's
'versions' file, which the Makefile reads (include versions, -D flags) but no
dependency list names: warm-tree reuse must not keep the base's result."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tree_side import Bot, compare, make_rules, per_kernel, replace, series  # noqa: E402


@pytest.fixture
def rules(tmp_path):
    return make_rules(tmp_path)


UNQUOTED = replace("gentree.py", "f'BACKPORTED_KERNEL_VERSION=\"{upstream_version(upstream)}\"\\n'",
                   "f'BACKPORTED_KERNEL_VERSION={upstream_version(upstream)}\\n'")


def test_gentree_change_breaking_versions_is_not_pass(rules):
    """gentree: write the version unquoted -> -DBACKPORTED_KERNEL_VERSION=v6.1.x
    breaks compat/main.c on every kernel (clean build FAILs)."""
    raw = series(rules, "gentree-unquoted", ("gentree: unquote the kernel version", UNQUOTED))
    problems = compare(rules, [("gentree-unquoted", raw)])
    assert not problems, "\n".join(problems)


def test_gentree_change_alone_clean_fails(rules):
    raw = series(rules, "gentree-unquoted2", ("gentree: unquote the kernel version", UNQUOTED))
    clean = Bot(rules, "cold", build_reuse=False, ccache=False).test(raw)
    print(per_kernel(clean))
    assert clean.verdict == "fail"
