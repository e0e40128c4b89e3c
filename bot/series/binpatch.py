"""Sizes of the files a series' ``GIT binary patch`` hunks would write.

``git am`` runs outside the sandbox; an 850 MB binary literal inside a 5 MB
mail made it use 1.7 GB of memory and write 850 MB. A binary hunk declares
its size: ``literal <size>`` (the new content) or ``delta <size>`` (a delta,
whose header, in the first compressed bytes, gives the size of the result;
copies from the old file can make a small delta expand hugely). Pure: bytes
in, sizes out; nothing is applied.
"""

from __future__ import annotations

import base64
import email
import email.policy
import re
import zlib
from dataclasses import dataclass

MAX_BINARY_BYTES = 10 * 1024 * 1024
_FROM = re.compile(rb"^From [^\n]*\n", re.M)
# The forward hunk right after the marker (the reverse one, after it, is the old file).
_HUNK = re.compile(r"^GIT binary patch\n(literal|delta) (\d+)\n((?:[A-Za-z][^\n]*\n)*)", re.M)
_DIFF = re.compile(r"^diff --git a/(\S+) ", re.M)


@dataclass
class Binary:
    patch: int   # 1-based, as git am counts
    path: str
    size: int    # bytes of the file it would write


def _messages(mbox: bytes) -> list[bytes]:
    starts = [m.start() for m in _FROM.finditer(mbox)]
    if not starts or starts[0] != 0:
        starts = [0, *starts]
    return [mbox[a:b] for a, b in zip(starts, [*starts[1:], len(mbox)], strict=True)]


def _texts(raw: bytes) -> list[str]:
    """The text of every part, decoded (base64 and quoted-printable too)."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    texts = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True) or b""
        texts.append(payload.decode("utf-8", "replace").replace("\r\n", "\n"))
    return texts


UNKNOWN_SIZE = 1 << 62  # a delta whose header cannot be read counts as too big


def _delta_result_size(lines: str, max_lines: int = 64) -> int:
    """The result size in a git delta's header: decode line by line (a hostile
    patch may put one byte on each) until both sizes are out."""
    inflate = zlib.decompressobj()
    head = b""
    for line in lines.splitlines()[:max_lines]:
        if not line:
            continue
        n = ord(line[0]) - (ord("A") - 1 if line[0] <= "Z" else ord("a") - 27)
        try:
            head += inflate.decompress(base64.b85decode(line[1:])[:n], 32 - len(head))
        except (ValueError, zlib.error):
            return UNKNOWN_SIZE
        sizes = _varints(head)
        if len(sizes) == 2:
            return sizes[1]
    return UNKNOWN_SIZE


def _varints(data: bytes) -> list[int]:
    sizes, shift, value = [], 0, 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            sizes.append(value)
            shift = value = 0
            if len(sizes) == 2:
                break
    return sizes


def binaries(mbox: bytes) -> list[Binary]:
    """Every binary hunk of every patch, with the size it would write."""
    found = []
    for number, raw in enumerate(_messages(mbox), 1):
        for text in _texts(raw):
            if "GIT binary patch" not in text:
                continue
            for hunk in _HUNK.finditer(text):
                before = [m.group(1) for m in _DIFF.finditer(text, 0, hunk.start())]
                size = int(hunk.group(2))
                if hunk.group(1) == "delta":
                    size = max(size, _delta_result_size(hunk.group(3)))
                found.append(Binary(number, before[-1] if before else "?", size))
    return found


def over_limit(mbox: bytes, limit: int = MAX_BINARY_BYTES) -> str:
    """The reason to refuse the series ("" when every binary file is within ``limit``)."""
    for b in binaries(mbox):
        if b.size > limit:
            if b.size >= UNKNOWN_SIZE:
                return (f"patch {b.patch}: a binary delta whose size cannot be read ({b.path}); "
                        f"binary files are applied up to {limit / 1024 ** 2:g} MiB")
            return (f"patch {b.patch}: a binary file of {b.size / 1024 ** 2:.1f} MiB "
                    f"({b.path}) is over the limit of {limit / 1024 ** 2:g} MiB")
    return ""
