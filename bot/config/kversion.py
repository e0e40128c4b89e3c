"""What kernel a prepared build dir (or header tree) is: version and release,
read from its generated headers. No imports from the rest of the bot."""

from __future__ import annotations

import re
from pathlib import Path

VERSION_HEADERS = ("include/generated/uapi/linux/version.h", "include/linux/version.h")
MAX_HEADER = 256 * 1024


def _read(path: Path) -> str | None:
    try:
        with open(path, "rb") as fh:
            return fh.read(MAX_HEADER).decode("utf-8", "replace")
    except OSError:
        return None


def version_of(path: Path) -> str | None:
    """MAJOR.PATCHLEVEL.SUBLEVEL from the dir's version.h, or None."""
    for rel in VERSION_HEADERS:
        text = _read(Path(path) / rel)
        if text is None:
            continue
        parts = [re.search(rf"#define LINUX_VERSION_{n}\s+(\d+)", text)
                 for n in ("MAJOR", "PATCHLEVEL", "SUBLEVEL")]
        if all(parts):
            return ".".join(m.group(1) for m in parts)
        code = re.search(r"#define LINUX_VERSION_CODE\s+(\d+)", text)
        if code:
            c = int(code.group(1))
            return f"{c >> 16}.{(c >> 8) & 255}.{c & 255}"
    return None


def release_of(path: Path) -> str | None:
    """The UTS release (``6.12.118+deb12-amd64``) from utsrelease.h, or None."""
    text = _read(Path(path) / "include/generated/utsrelease.h")
    match = re.search(r'#define UTS_RELEASE\s+"([^"\n]+)"', text or "")
    return match.group(1) if match else None


def is_kbuild(path: Path) -> bool:
    """A dir external modules can be built against (``make -C DIR M=...``)."""
    path = Path(path)
    return (path / "Makefile").is_file() and (path / "scripts").exists()
