# ruff: noqa: E501  (real gcc lines are long)
"""Compiler diagnostics read from a build log: location, severity, text, and
the lines gcc prints to explain them (source excerpts, notes), through gcc's
include chain."""

from bot.testrun.diagnostics import parse

REDEFINED = """\
  CC [M]  /build/compat/backport-6.1.c
/build/compat/backport-6.1.c:12:19: error: redefinition of 'netif_napi_add_weight'
   12 | static inline int netif_napi_add_weight(void)
      |                   ^~~~~~~~~~~~~~~~~~~~~
In file included from /build/compat/backport-6.1.c:3:
/usr/src/linux-headers-6.1.0-57-common/include/linux/netdevice.h:2578:1: note: previous definition of 'netif_napi_add_weight' with type 'void(void)'
 2578 | netif_napi_add_weight(struct net_device *dev, struct napi_struct *napi,
      | ^~~~~~~~~~~~~~~~~~~~~
make[1]: *** [scripts/Makefile.build:250: /build/compat/backport-6.1.o] Error 1
"""


def test_a_note_that_explains_an_error_stays_with_it():
    [diag] = parse(REDEFINED, strip_prefixes=("/build",))
    assert (diag.file, diag.line, diag.col, diag.severity) == ("compat/backport-6.1.c", 12, 19, "error")
    assert diag.context[:2] == ["   12 | static inline int netif_napi_add_weight(void)",
                                "      |                   ^~~~~~~~~~~~~~~~~~~~~"]
    assert diag.notes == ["/usr/src/linux-headers-6.1.0-57-common/include/linux/netdevice.h:2578:1: note: "
                     "previous definition of 'netif_napi_add_weight' with type 'void(void)'"]
    assert len(diag.context) == 2, "the note's own excerpt is not the error's"


def test_a_note_without_a_diagnostic_before_it_is_not_one():
    assert parse("x.h:3:1: note: something\n") == []


def test_the_explanation_is_bounded():
    log = "a.c:1:1: error: boom\n" + "b.h:2:1: note: because\n" * 50
    [diag] = parse(log)
    assert 1 <= len(diag.notes) <= 2
