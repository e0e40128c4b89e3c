"""The excerpt of a failed generate/build step keeps the line that explains it."""

from __future__ import annotations

import pytest

from bot.testrun.diagnostics import last_failure_lines, parse

GENTREE_GIT = """\
Copy original source files ...
fatal: not a git repository: /var/lib/bpbot/backports/.git/worktrees/src
Traceback (most recent call last):
  File "/src/gentree.py", line 1170, in <module>
    ret = _main()
  File "/src/gentree.py", line 800, in _main
    bpid = Bp_Identity(...)
  File "/src/lib/bpgit.py", line 30, in describe
    raise ExecutionError(process.returncode)
lib.bpgit.ExecutionError: 128
"""
GENTREE_PATCH = """\
Applying patches from patches to out/ ...
1 out of 2 hunks FAILED -- saving rejects to file net/wireless/nl80211.c.rej
Failed to apply changes from patches/0001-foo/nl80211.patch
"""
MAKE = """\
make -C /lib/modules/6.1/build M=/w modules
  CC [M]  /w/compat/main.o
cc1: some warnings being treated as errors
make[2]: *** [scripts/Makefile.build:250: /w/compat/main.o] Error 1
make: *** [Makefile:30: modules] Error 2
"""
PY_ONLY = """\
Traceback (most recent call last):
  File "x.py", line 3, in <module>
    open("y")
FileNotFoundError: [Errno 2] No such file or directory: 'y'
"""


@pytest.mark.parametrize("log, must", [
    (GENTREE_GIT, ["fatal: not a git repository: /var/lib/bpbot/backports/.git/worktrees/src",
                   "lib.bpgit.ExecutionError: 128"]),
    (GENTREE_PATCH, ["Failed to apply changes from patches/0001-foo/nl80211.patch"]),
    (MAKE, ["make[2]: *** [scripts/Makefile.build:250: /w/compat/main.o] Error 1"]),
    (PY_ONLY, ["FileNotFoundError: [Errno 2] No such file or directory: 'y'"]),
])
def test_excerpt_keeps_the_explaining_line(log, must):
    lines = last_failure_lines(log)
    for line in must:
        assert line in lines, lines
    assert len(lines) <= 5


def test_no_telling_line_gives_the_last_lines():
    assert last_failure_lines("a\nb\n\nc\n", n=2) == ["b", "c"]


NOTE = ("/usr/src/linux-headers-6.1.0-57-common/include/linux/timer.h:200:12: note: previous "
        "definition of 'timer_shutdown_sync' with type 'int(struct timer_list *)'")
REDEFINED = f"""\
/w/out/backport-include/linux/timer.h:41:9: error: conflicting types for 'timer_shutdown_sync'
   41 | static inline int timer_shutdown_sync(struct timer_list *t)
      |                   ^~~~~~~~~~~~~~~~~~~
{NOTE}
  200 | extern int timer_shutdown_sync(struct timer_list *timer);
      |            ^~~~~~~~~~~~~~~~~~~
make[2]: *** [scripts/Makefile.build:250: /w/out/compat/main.o] Error 1
"""


def test_a_note_stays_with_its_error_and_its_excerpt_is_not_the_errors():
    [d] = parse(REDEFINED, strip_prefixes=("/w/out",))
    assert (d.file, d.line, d.text) == ("backport-include/linux/timer.h", 41,
                                        "conflicting types for 'timer_shutdown_sync'")
    assert d.notes == [NOTE]
    assert len(d.context) == 2 and "static inline" in d.context[0]
    assert type(d).from_dict(d.to_dict()) == d
