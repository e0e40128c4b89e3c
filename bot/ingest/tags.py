"""Strict subject tags: a patch for another project is not for this tree.

With ``[tree] strict_tags = true`` in the rules, a patch or cover letter whose
subject carries a tag that is not a key of ``[tree.tag_branches]``
("[qemu-web PATCH]", "[PATCH net-next 1/2]") is kept as kind ``not-for-tree``
with the reason, and never tested. Tags that say how a patch is sent (RFC,
RESEND) do not count; a subject without tags is for the default branch.
With the default (false), every patch is tested as before.
"""

from __future__ import annotations

import dataclasses

from bot.config.rules import Rules
from bot.ingest import classify as cls
from bot.ingest import patchmail

NOT_FOR_TREE = "not-for-tree"


def allowed_tags(rules: Rules) -> frozenset[str] | None:
    """The subject tags this tree takes (lower case), or None: any tag (not strict)."""
    if not rules.strict_tags:
        return None
    return frozenset(tag.lower() for tag in rules.tag_branches)


def not_for_tree(c: cls.Classified, allowed: frozenset[str] | None) -> cls.Classified:
    """``c`` as kind not-for-tree when its subject names a tag this tree does not take."""
    if allowed is None or c.kind not in (cls.PATCH, cls.COVER):
        return c
    foreign = [t for t in patchmail.tree_tags(c.subject) if t.lower() not in allowed]
    if not foreign:
        return c
    known = ", ".join(sorted(allowed)) or "none"
    return dataclasses.replace(
        c, kind=NOT_FOR_TREE,
        reason=f"{c.kind} for another tree: the subject tag{'s' if len(foreign) > 1 else ''} "
               f"[{'] ['.join(foreign)}] {'are' if len(foreign) > 1 else 'is'} not one of this "
               f"tree's (tree.tag_branches: {known}; strict_tags = true); not tested")
