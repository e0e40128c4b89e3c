#!/usr/bin/env python3
"""Generate a backports package from an upstream kernel source.

A cut-down gentree.py for the bpbot demo tree.  It keeps the real tool's
command line and the order of its steps, and leaves out Coccinelle,
Kconfig rewriting and git:

  1. copy the files named in copy-list from the upstream source
  2. apply patches/**/*.patch with "patch -p1" (sorted by path)
  3. add backport-include/ and compat/
  4. add the kernel version dependencies from "dependencies"
  5. write "versions" and the package Makefile (Makefile.package)

    python3 gentree.py [--clean] [--copy-list FILE] <upstream-src> <outdir>

Nothing is written outside <outdir>.  A patch that does not apply ends the
run with "Failed to apply changes from <patch>" and exit status 2; any other
error exits with status 1.
"""

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

TREE = Path(__file__).resolve().parent


class GenError(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def read_copy_list(path):
    """Return (source, destination) pairs, both relative paths."""
    entries = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        src, sep, dst = line.partition(" -> ")
        dst = dst.strip() if sep else src
        if Path(src).is_absolute() or ".." in Path(src).parts:
            raise GenError(f"{path.name}:{lineno}: bad entry {line!r}")
        entries.append((src.strip(), dst))
    return entries


def copy_file(src, dst):
    # copyfile, not copy2: the output must be writable even when the
    # sources are installed read-only
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def copy_tree(src, dst):
    for path in sorted(src.rglob("*")):
        if path.is_file():
            copy_file(path, dst / path.relative_to(src))


def copy_sources(upstream, outdir, copy_list):
    log("Copy original source files ...")
    for src, dst in read_copy_list(copy_list):
        source = upstream / src
        if src.endswith("/") and source.is_dir():
            copy_tree(source, outdir / dst)
        elif source.is_file():
            copy_file(source, outdir / dst)
        else:
            raise GenError(f"copy-list: {src} does not exist in {upstream}")


def apply_patches(outdir):
    log("Apply patches ...")
    for patch in sorted((TREE / "patches").rglob("*.patch")):
        name = patch.relative_to(TREE)
        log(f"  {name}")
        proc = subprocess.run(
            ["patch", "-p1", "--batch", "--forward", "--no-backup-if-mismatch",
             "--reject-file=-", "-i", str(patch)],
            cwd=outdir, capture_output=True, text=True, timeout=60)
        if proc.returncode:
            log(f"Failed to apply changes from {name}")
            log(proc.stdout + proc.stderr)
            sys.exit(2)


def add_backport_code(outdir):
    log("Add backport-include/ and compat/ ...")
    for name in ("backport-include", "compat"):
        copy_tree(TREE / name, outdir / name)


def add_dependencies(outdir):
    log("Add driver dependencies ...")
    lines = []
    text = (TREE / "dependencies").read_text()
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if not re.fullmatch(r"[A-Za-z0-9_]+ \d+\.\d+", line):
            raise GenError(f"dependencies:{lineno}: expected '<DRIVER> <x.y>', got {line!r}")
        lines.append(line)
    (outdir / "dependencies").write_text("".join(f"{line}\n" for line in lines))


def upstream_version(upstream):
    """'v6.1.145' from the upstream top-level Makefile."""
    fields = {}
    for line in (upstream / "Makefile").read_text().splitlines():
        m = re.match(r"(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION)\s*=\s*(\S*)", line)
        if m:
            fields[m.group(1)] = m.group(2)
    try:
        version = f"v{fields['VERSION']}.{fields['PATCHLEVEL']}.{fields['SUBLEVEL']}"
    except KeyError as exc:
        raise GenError(f"{upstream}/Makefile has no {exc.args[0]} line") from None
    return version + fields.get("EXTRAVERSION", "")


def tree_id():
    """Short hash of everything in the tree that goes into a package."""
    digest = hashlib.sha1()
    for path in sorted(TREE.rglob("*")):
        rel = path.relative_to(TREE)
        if path.is_file() and rel.parts[0] not in (".git", "devel"):
            digest.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def write_versions(upstream, outdir):
    log("Write versions ...")
    (outdir / "versions").write_text(
        f'BACKPORTS_VERSION="backports-demo-{tree_id()}"\n'
        f'BACKPORTED_KERNEL_VERSION="{upstream_version(upstream)}"\n'
        'BACKPORTED_KERNEL_NAME="Linux"\n')


def write_makefile(outdir):
    log("Write package Makefile ...")
    copy_file(TREE / "Makefile.package", outdir / "Makefile")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path, help="upstream kernel source")
    parser.add_argument("outdir", type=Path, help="where to write the package")
    parser.add_argument("--clean", action="store_true",
                        help="remove outdir first if it exists")
    parser.add_argument("--copy-list", type=Path, default=TREE / "copy-list",
                        help="copy-list to use (default: the tree's)")
    args = parser.parse_args(argv)
    upstream, outdir = args.src.resolve(), args.outdir.resolve()

    try:
        if not upstream.is_dir():
            raise GenError(f"{upstream}: no such directory")
        if args.clean and outdir.exists():
            shutil.rmtree(outdir)
        if outdir.exists() and any(outdir.iterdir()):
            raise GenError(f"{outdir} exists and is not empty (use --clean)")
        outdir.mkdir(parents=True, exist_ok=True)

        copy_sources(upstream, outdir, args.copy_list)
        apply_patches(outdir)
        add_backport_code(outdir)
        add_dependencies(outdir)
        write_versions(upstream, outdir)
        write_makefile(outdir)
    except (GenError, OSError, subprocess.SubprocessError) as exc:
        print(f"gentree: {exc}", file=sys.stderr)
        return 1
    log("Done!")
    return 0


if __name__ == "__main__":
    sys.exit(main())
