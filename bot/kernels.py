"""Kernel provisioning (``bpbot kernels``): the role of ckmake's get-compat-kernels.

``add`` turns a set of Debian/Ubuntu ``linux-headers-*`` packages (the arch
one, its ``-common`` one and ``linux-kbuild-*``; paths or URLs) or a kernel
source tree into a ckmake-style build dir ``<dir>/lib/modules/<release>/build``
that holds everything it needs: the packages' other dirs move under its
``.root/``, their symlinks and absolute ``include`` lines are rewritten to
point there, so the dir works when it is the only kernel path a sandboxed
build can see. ``verify`` builds a tiny out-of-tree module against each
kernel in the same sandbox as real builds and reads its version.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from bot.config import kversion
from bot.errors import ConfigError
from bot.sandbox import proc
from bot.sandbox.bwrap import Sandbox, for_rules

log = logging.getLogger(__name__)

DOWNLOAD_CAP = 1024 ** 3          # one package
DOWNLOAD_TIMEOUT = 120.0
UNPACK_TIMEOUT = 600.0
PREPARE_TIMEOUT = 3600.0
VERIFY_TIMEOUT = 600.0
ROOT = ".root"                    # the packages' other dirs, inside the build dir
SOURCE = ".source"                # a copied kernel source, inside the build dir

_MODULE_C = """\
#include <linux/module.h>
#include <linux/init.h>
static int __init bpbot_probe_init(void) { return 0; }
static void __exit bpbot_probe_exit(void) { }
module_init(bpbot_probe_init);
module_exit(bpbot_probe_exit);
MODULE_LICENSE("GPL");
"""


class KernelError(RuntimeError):
    """A kernel could not be added or does not work; the message names it."""


@dataclass
class Check:
    name: str
    path: Path
    ok: bool
    detail: str


# --- add: header packages ---------------------------------------------------

def fetch(source: str, into: Path) -> Path:
    """A local .deb path, or a URL downloaded into ``into`` (size-capped)."""
    scheme = urllib.parse.urlparse(source).scheme
    if scheme not in ("http", "https", "file"):
        path = Path(source)
        if not path.is_file():
            raise KernelError(f"{source}: no such file")
        return path
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(source).path)).name or "package.deb"
    target = into / name
    log.info("downloading %s", source)
    # Here, not at module level: the CLI's parser imports this module on every
    # command, and only a download needs urllib.request (http, ssl, email).
    from urllib.request import urlopen
    try:
        with urlopen(source, timeout=DOWNLOAD_TIMEOUT) as resp, \
                open(target, "wb") as out:
            total = 0
            while chunk := resp.read(1 << 20):
                total += len(chunk)
                if total > DOWNLOAD_CAP:
                    raise KernelError(f"{source}: larger than {DOWNLOAD_CAP >> 20} MiB")
                out.write(chunk)
    except (OSError, ValueError) as exc:
        raise KernelError(f"{source}: cannot download: {exc}") from exc
    return target


def add_packages(kdir: Path, sources: list[str], force: bool = False) -> Path:
    """Unpack header packages into ``kdir/lib/modules/<release>/build``; return it."""
    kdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".add-", dir=kdir) as tmp:
        tmp = Path(tmp)
        stage = tmp / "stage"
        stage.mkdir()
        for source in sources:
            deb = fetch(source, tmp)
            res = proc.run(["dpkg-deb", "-x", str(deb), str(stage)], timeout=UNPACK_TIMEOUT)
            if not res.ok:
                raise KernelError(f"{source}: not a Debian package: {res.output.strip()[-300:]}")
        _refuse_linked_dirs(stage)
        arch = _arch_dir(stage, sources)
        release = kversion.release_of(arch) or ""
        if not _RELEASE.match(release):
            raise KernelError(f"{arch.name}: UTS_RELEASE {release[:80]!r} is not a kernel release name")
        build = kdir / "lib" / "modules" / release / "build"
        if not build.resolve().is_relative_to(kdir.resolve()):
            raise KernelError(f"{release}: the kernel dir would be outside {kdir}")
        _make_room(build, force)
        new = tmp / "build"
        _relocate(stage, arch, new, build)
        new.rename(build)
    log.info("kernel %s added at %s", release, build)
    return build


_RELEASE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}$")
# The dirs add_packages removes, renames or looks into: a symlink among them
# (a hostile package's `usr -> /usr`) would make it act on the host.
_WALKED = ("usr", "usr/src", "usr/share", "usr/share/doc", "usr/lib", "usr/lib/modules", "lib",
           "lib/modules")


def _refuse_linked_dirs(stage: Path) -> None:
    for rel in _WALKED:
        if (stage / rel).is_symlink():
            raise KernelError(f"the packages make /{rel} a symlink: refused (not a header package)")
    for d in (stage / "usr" / "src").glob("linux-headers-*"):
        if d.is_symlink() and kversion.release_of(d):
            raise KernelError(f"/usr/src/{d.name} is a symlink in the packages: refused")


def _arch_dir(stage: Path, sources: list[str]) -> Path:
    found = [d for d in sorted((stage / "usr" / "src").glob("linux-headers-*"))
             if d.is_dir() and not d.is_symlink() and kversion.release_of(d)]
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise KernelError(
            f"{what} kernel header dir with include/generated/utsrelease.h in "
            f"{', '.join(sources)}: give one kernel's packages (linux-headers-<release>, its "
            "-common package and the matching linux-kbuild package)")
    return found[0]


def _make_room(build: Path, force: bool) -> None:
    if build.exists() or build.is_symlink():
        if not force:
            raise KernelError(f"{build} exists already (use --force to replace it)")
        shutil.rmtree(build) if build.is_dir() and not build.is_symlink() else build.unlink()
    build.parent.mkdir(parents=True, exist_ok=True)


def _relocate(stage: Path, arch: Path, new: Path, final: Path) -> None:
    """Move the arch dir to ``new`` and the rest of the packages to ``new/.root``,
    then point every symlink (relative) and absolute Makefile include (at
    ``final``, where ``new`` is moved next) at the new places."""
    for unwanted in ("usr/share/doc", "usr/lib/modules", "lib/modules"):
        shutil.rmtree(stage / unwanted, ignore_errors=True)
    old_arch = "/" + str(arch.relative_to(stage))
    arch.rename(new)
    (stage).rename(new / ROOT)

    def moved(old: str) -> Path:
        """A path of the packages' root (``/usr/src/...``) -> where it is now."""
        old = os.path.normpath(old)
        if old == old_arch or old.startswith(old_arch + "/"):
            return new / old[len(old_arch) + 1:] if old != old_arch else new
        return new / ROOT / old.lstrip("/")

    for dirpath, dirnames, filenames in os.walk(new):
        for name in dirnames + filenames:
            link = Path(dirpath, name)
            if link.is_symlink():
                _fix_link(link, new, old_arch, moved)
    makefile = new / "Makefile"
    if makefile.is_file() and not makefile.is_symlink():  # never write through a link
        text = makefile.read_text(encoding="utf-8", errors="replace")
        def at_final(match: re.Match) -> str:
            now = moved(match.group(1))
            return str(final / now.relative_to(new)) if now.exists() else match.group(1)
        fixed = re.sub(r"(?<![\w/])(/usr/(?:src|lib)/[\w.+~-]+)", at_final, text)
        makefile.write_text(fixed, encoding="utf-8")


def _fix_link(link: Path, new: Path, old_arch: str, moved) -> None:
    target = os.readlink(link)
    rel = link.relative_to(new)
    # Where the link stood in the packages' root, to resolve a relative target.
    if rel.parts and rel.parts[0] == ROOT:
        old_dir = "/" + str(Path(*rel.parts[1:]).parent)
    else:
        old_dir = str(Path(old_arch) / rel.parent)
    old_target = target if target.startswith("/") else os.path.join(old_dir, target)
    now = moved(old_target)
    if not (now.exists() or now.is_symlink()):
        return  # outside the packages (a host path): leave it as it is
    link.unlink()
    link.symlink_to(os.path.relpath(now, link.parent))


# --- add: a kernel source ---------------------------------------------------

def add_source(kdir: Path, source: Path, force: bool = False, jobs: int = 0) -> Path:
    """Copy a kernel source into the build dir and ``make defconfig modules_prepare``."""
    if not (source / "Makefile").is_file():
        raise KernelError(f"{source}: not a kernel source tree (no Makefile)")
    res = proc.run(["make", "-s", "-C", str(source), "kernelrelease"], timeout=120)
    release = res.output.strip().splitlines()[-1].strip() if res.ok and res.output.strip() else ""
    if not re.match(r"^\d+\.\d+", release):
        raise KernelError(f"{source}: `make kernelrelease` gave no version: {res.output.strip()[-300:]}")
    build = kdir / "lib" / "modules" / release / "build"
    _make_room(build, force)
    build.mkdir(parents=True)
    try:
        shutil.copytree(source, build / SOURCE, symlinks=True,
                        ignore=shutil.ignore_patterns(".git"))
        src = build / SOURCE
        jobs = jobs or os.cpu_count() or 1
        for target in ("defconfig", "modules_prepare"):
            res = proc.run(["make", "-C", str(src), f"O={build}", f"-j{jobs}", target],
                           timeout=PREPARE_TIMEOUT)
            if not res.ok:
                raise KernelError(f"{release}: make {target} failed: {res.output.strip()[-600:]}")
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    log.info("kernel %s prepared at %s", release, build)
    return build


# --- verify -----------------------------------------------------------------

def found_in(kdir: Path) -> list[tuple[str, Path]]:
    """(release, build dir) of every kernel under ``kdir/lib/modules``."""
    return [(p.parent.name, p) for p in sorted((kdir / "lib" / "modules").glob("*/build"))]


def verify(name: str, path: Path, sandbox: Sandbox, declared: str = "") -> Check:
    """Does ``path`` work as a kernel for builds? Build a tiny module when it is kbuild."""
    if not path.is_dir():
        return Check(name, path, False, f"{path} does not exist")
    version = kversion.version_of(path)
    if version is None:
        return Check(name, path, False, f"no version.h with a version in {path}")
    if declared and not version.startswith(declared):
        return Check(name, path, False, f"the rules say version {declared}, its headers say {version}")
    release = kversion.release_of(path) or version
    if not kversion.is_kbuild(path):
        return Check(name, path, True, f"{version}: header tree (no kbuild; no module build tried)")
    with tempfile.TemporaryDirectory(prefix="bpbot-kverify-") as tmp:
        mod = Path(tmp)
        (mod / "bpbot_probe.c").write_text(_MODULE_C)
        (mod / "Kbuild").write_text("obj-m := bpbot_probe.o\n")
        argv, env = sandbox.wrap(["make", "-C", str(path), f"M={mod}", "modules"],
                                 readonly=[path], writable=[mod], cwd=mod)
        started = time.monotonic()
        res = proc.run(argv, env=env, timeout=VERIFY_TIMEOUT, cwd=mod)
        took = time.monotonic() - started
        if not (res.ok and (mod / "bpbot_probe.ko").is_file()):
            tail = " / ".join(line for line in res.output.strip().splitlines()[-4:])
            return Check(name, path, False, f"{release}: a test module does not build: {tail}")
    return Check(name, path, True, f"{version} ({release}): test module built in {took:.1f}s")


def require_present(rules) -> None:
    """``serve`` refuses to start when a configured kernel dir is missing."""
    for i, kernel in enumerate(rules.kernels):
        if not Path(kernel.path).is_dir():
            raise ConfigError(rules.file, f"kernels[{i}].path",
                              f"kernel {kernel.name}: {kernel.path} does not exist (provision it "
                              "with `bpbot kernels add`, then `bpbot kernels verify`)")


# --- the command ------------------------------------------------------------

def add_parser(sub) -> None:
    k = sub.add_parser("kernels", help="list, add and verify the kernels builds run against")
    ks = k.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = ks.add_parser("add", help="add a kernel from header packages (.deb paths or URLs) "
                      "or from a kernel source (--source)")
    a.add_argument("--dir", type=Path, required=True, help="ckmake-style root: DIR/lib/modules/<v>/build")
    a.add_argument("--source", type=Path, default=None, help="a kernel source tree to prepare")
    a.add_argument("--force", action="store_true", help="replace a kernel that is there already")
    a.add_argument("packages", nargs="*", metavar="SOURCE", help="linux-headers/-common/kbuild .debs")
    for action, text in (("verify", "build a test module against each kernel"),
                         ("list", "the kernels of the rules, or of --dir")):
        v = ks.add_parser(action, help=text)
        v.add_argument("--dir", type=Path, default=None, help="the kernels under DIR/lib/modules")
        v.add_argument("--rules", "--config", dest="rules", type=Path, default=None,
                       help="the kernels of this rules file (default: the embedded one)")


def run_command(args, load_rules) -> int:
    """``bpbot kernels ...``; 0 when every kernel is fine, 1 when one is not."""
    try:
        if args.action == "add":
            return _add(args)
        targets, box = _targets(args, load_rules)
    except KernelError as exc:
        log.error("%s", exc)
        return 1
    if args.action == "list":
        for name, path, declared in targets:
            there = "ok" if path.is_dir() else "MISSING"
            version = kversion.version_of(path) if path.is_dir() else None
            print(f"{name:<24} {declared or version or '?':<12} {there:<8} {path}")
        return 0 if all(p.is_dir() for _, p, _ in targets) else 1
    failed = 0
    for name, path, declared in targets:
        check = verify(name, path, box, declared)
        print(f"{'ok  ' if check.ok else 'FAIL'} {name}: {check.detail}")
        failed += not check.ok
    return 1 if failed else 0


def _add(args) -> int:
    if args.source is not None:
        if args.packages:
            raise KernelError("give either --source or packages, not both")
        build = add_source(args.dir, args.source, args.force)
    elif not args.packages:
        raise KernelError("nothing to add: give header packages (.deb paths or URLs) or --source")
    else:
        build = add_packages(args.dir, args.packages, args.force)
    version = kversion.version_of(build) or "?"
    print(f"added {build.parent.name} (version {version}) at {build}")
    print("Use it in the rules as:")
    print(f'[[kernels]]\nname = "{build.parent.name}"\nversion = "auto"\npath = "{build}"')
    return 0


def _targets(args, load_rules):
    if args.dir is not None:
        found = found_in(args.dir)
        if not found:
            raise KernelError(f"no kernels under {args.dir}/lib/modules/*/build")
        return [(r, p, "") for r, p in found], Sandbox.detect(
            "bwrap" if shutil.which("bwrap") else "none", hide=[])
    rules = load_rules(args.rules)
    return [(k.name, Path(k.path), k.version) for k in rules.kernels], for_rules(rules)
