"""``bpbot kernels``: header packages and kernel sources become ckmake-style
build dirs that work inside the build sandbox; ``verify`` proves it with a
module build; ``serve`` refuses to start without its kernels."""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import threading
import urllib.parse
from pathlib import Path

import pytest

from bot import cli, kernels
from bot.config import kversion
from bot.config.rules import DEMO_RULES
from bot.demo import layout

REL = "9.8.7-1-amd64"
APT_CACHE = Path("/var/cache/apt/archives")


def _deb(tmp: Path, name: str, files: dict[str, str], links: dict[str, str]) -> Path:
    """A real .deb (dpkg-deb --build) holding ``files`` and ``links``."""
    root = tmp / f"pkg-{name}"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    for rel, target in links.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(target)
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: 1\nArchitecture: all\nMaintainer: t <t@example.org>\n"
        "Description: test\n")
    out = tmp / f"{name}.deb"
    subprocess.run(["dpkg-deb", "--build", "-Zgzip", str(root), str(out)], check=True,
                   capture_output=True, timeout=60)
    return out


def _fake_header_debs(tmp: Path) -> list[Path]:
    """The shape of Debian's linux-headers-<rel>, -common and linux-kbuild packages."""
    arch = f"usr/src/linux-headers-{REL}"
    common = "usr/src/linux-headers-9.8.7-1-common"
    return [
        _deb(tmp, "headers-arch", {
            f"{arch}/Makefile": f"include /{common}/Makefile\n",
            f"{arch}/include/generated/utsrelease.h": f'#define UTS_RELEASE "{REL}"\n',
            f"{arch}/include/generated/uapi/linux/version.h":
                "#define LINUX_VERSION_MAJOR 9\n#define LINUX_VERSION_PATCHLEVEL 8\n"
                "#define LINUX_VERSION_SUBLEVEL 7\n",
        }, {
            f"{arch}/scripts": "../../lib/linux-kbuild-9.8/scripts",
            f"usr/lib/modules/{REL}/build": f"/{arch}",
        }),
        _deb(tmp, "headers-common", {f"{common}/Makefile": "all:\n\t@echo common\n",
                                     f"{common}/include/linux/kernel.h": "/* k */\n"},
             {f"{common}/scripts": "../../lib/linux-kbuild-9.8/scripts"}),
        _deb(tmp, "kbuild", {"usr/lib/linux-kbuild-9.8/scripts/Makefile.build": "# kbuild\n"},
             {"usr/src/linux-kbuild-9.8": "../lib/linux-kbuild-9.8"}),
    ]


def _inside(path: Path, top: Path) -> bool:
    return path.resolve().is_relative_to(top.resolve())


def test_add_packages_makes_a_self_contained_build_dir(tmp_path):
    debs = _fake_header_debs(tmp_path)
    assert cli.main(["kernels", "add", "--dir", str(tmp_path / "k"), *map(str, debs)]) == 0
    build = tmp_path / "k" / "lib" / "modules" / REL / "build"
    assert kversion.version_of(build) == "9.8.7" and kversion.release_of(build) == REL
    # Every symlink the packages carried now resolves inside the build dir,
    # the only kernel path a sandboxed build can see.
    links = [p for p in build.rglob("*") if p.is_symlink()]
    assert links, "the fake packages carry symlinks"
    for link in links:
        assert _inside(link, build) and link.exists(), f"{link} -> {link.readlink()}"
    assert (build / "scripts" / "Makefile.build").is_file()
    include = (build / "Makefile").read_text()
    assert include.strip() == f"include {build}/.root/usr/src/linux-headers-9.8.7-1-common/Makefile"
    assert not (build / ".root" / "usr" / "lib" / "modules").exists()  # no link back to itself
    # Adding it again is refused unless --force.
    assert cli.main(["kernels", "add", "--dir", str(tmp_path / "k"), *map(str, debs)]) == 1
    assert cli.main(["kernels", "add", "--force", "--dir", str(tmp_path / "k"), *map(str, debs)]) == 0


@pytest.mark.parametrize("sources, message", [
    (["no-such.deb"], "no-such.deb: no such file"),
    (["http://127.0.0.1:9/x.deb"], "cannot download"),
    ([], "nothing to add"),
])
def test_add_errors_name_the_problem(tmp_path, caplog, sources, message):
    assert cli.main(["kernels", "add", "--dir", str(tmp_path / "k"), *sources]) == 1
    assert message in caplog.text


def test_add_refuses_packages_without_a_kernel(tmp_path, caplog):
    deb = _deb(tmp_path, "other", {"usr/share/x/readme": "x"}, {})
    assert cli.main(["kernels", "add", "--dir", str(tmp_path / "k"), str(deb)]) == 1
    assert "no kernel header dir" in caplog.text


MINI_SOURCE_MAKEFILE = """\
O ?= .
kernelrelease:
\t@echo 4.2.1-mini
defconfig:
\tmkdir -p $(O) && echo CONFIG_MODULES=y > $(O)/.config
modules_prepare:
\tmkdir -p $(O)/include/generated/uapi/linux
\techo '#define UTS_RELEASE "4.2.1-mini"' > $(O)/include/generated/utsrelease.h
\techo '#define LINUX_VERSION_CODE 262657' > $(O)/include/generated/uapi/linux/version.h
"""


def test_add_source_prepares_a_kernel_source(tmp_path):
    src = tmp_path / "linux"
    src.mkdir()
    (src / "Makefile").write_text(MINI_SOURCE_MAKEFILE)
    assert cli.main(["kernels", "add", "--dir", str(tmp_path / "k"), "--source", str(src)]) == 0
    build = tmp_path / "k" / "lib" / "modules" / "4.2.1-mini" / "build"
    assert kversion.version_of(build) == "4.2.1"
    assert (build / ".source" / "Makefile").is_file() and (build / ".config").is_file()
    assert [r for r, _ in kernels.found_in(tmp_path / "k")] == ["4.2.1-mini"]


def test_add_source_failure_leaves_nothing(tmp_path, caplog):
    src = tmp_path / "linux"
    src.mkdir()
    (src / "Makefile").write_text(MINI_SOURCE_MAKEFILE.replace("modules_prepare:\n",
                                                               "modules_prepare:\n\tfalse\n"))
    assert cli.main(["kernels", "add", "--dir", str(tmp_path / "k"), "--source", str(src)]) == 1
    assert "make modules_prepare failed" in caplog.text
    assert kernels.found_in(tmp_path / "k") == []


def _rules_with_missing_kernel(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    layout.prepare(work, with_list=False)
    text = DEMO_RULES.read_text().replace('path = "kernels/6.1"', 'path = "kernels/gone"')
    assert "kernels/gone" in text
    rules = work / "rules.toml"
    rules.write_text(text)
    return rules


def test_verify_and_list_name_a_missing_kernel(tmp_path, capsys):
    rules = _rules_with_missing_kernel(tmp_path)
    assert cli.main(["kernels", "verify", "--rules", str(rules)]) == 1
    out = capsys.readouterr().out
    assert "FAIL 6.1:" in out and "kernels/gone does not exist" in out
    assert "ok   3.10: 3.10.108: header tree" in out
    assert cli.main(["kernels", "list", "--rules", str(rules)]) == 1
    assert "MISSING" in capsys.readouterr().out


def test_serve_refuses_to_start_without_its_kernels(tmp_path, capsys):
    rules = _rules_with_missing_kernel(tmp_path)
    assert cli.main(["serve", "--config", str(rules)]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "kernels[9].path: kernel 6.1:" in err and "does not exist" in err


def _real_debs(tmp: Path) -> list[Path]:
    """Debian's 6.12 header packages: from apt's cache, else `apt-get download`."""
    names = ("linux-headers-6.12.*-amd64_*.deb", "linux-headers-6.12.*-common_*.deb",
             "linux-kbuild-6.12.*.deb")
    found = [sorted(APT_CACHE.glob(n)) for n in names]
    if all(found):
        # One kernel's set: the newest arch package's version in all three.
        version = found[0][-1].name.split("_")[1]
        debs = [next((p for p in f if p.name.split("_")[1] == version), None) for f in found]
        if all(debs):
            return debs
    pkgs = subprocess.run(["sh", "-c", "apt-cache search --names-only "
                           "'^linux-headers-6\\.12\\.[0-9]+\\+deb[0-9]+-amd64$' | sort -V | tail -n1"],
                          capture_output=True, text=True, timeout=120).stdout.split()
    if not pkgs or not shutil.which("apt-get"):
        pytest.skip("no Debian 6.12 header packages to be had")
    arch = pkgs[0]
    common = arch.replace("-amd64", "-common")
    kbuild = arch.replace("linux-headers-", "linux-kbuild-").replace("-amd64", "")
    res = subprocess.run(["apt-get", "download", arch, common, kbuild], cwd=tmp,
                         capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        pytest.skip(f"apt-get download failed: {res.stderr.strip()[-200:]}")
    return sorted(tmp.glob("*.deb"))


@pytest.mark.integration
def test_real_debian_headers_from_a_url_build_a_module_in_the_sandbox(tmp_path, capsys):
    """The Debian 6.12 header packages, served over HTTP on loopback, become a
    kernel that a module builds against inside bubblewrap (the host's
    /usr/src copy plays no part: every link and include points inside)."""
    www = tmp_path / "www"
    www.mkdir()
    for deb in _real_debs(www):
        if deb.parent != www:
            shutil.copy(deb, www)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        urls = [f"http://127.0.0.1:{server.server_port}/{urllib.parse.quote(d.name)}"
                for d in sorted(www.glob("*.deb"))]
        assert cli.main(["kernels", "add", "--dir", str(tmp_path / "k"), *urls]) == 0
    finally:
        server.shutdown()
        server.server_close()
    (release, build), = kernels.found_in(tmp_path / "k")
    assert release.startswith("6.12.")
    assert "/usr/src/" not in (build / "Makefile").read_text().replace(f"{build}/.root/usr/src/", "")
    capsys.readouterr()
    assert cli.main(["kernels", "verify", "--dir", str(tmp_path / "k")]) == 0
    assert f"ok   {release}: 6.12." in capsys.readouterr().out



def _host_headers(top: Path) -> Path:
    """A stand-in for the host's /usr with an installed kernel's headers."""
    usr = top / "usr"
    gen = usr / "src" / "linux-headers-6.1.0-host" / "include" / "generated"
    gen.mkdir(parents=True)
    (gen / "utsrelease.h").write_text('#define UTS_RELEASE "6.1.0-host"\n')
    (usr / "share" / "doc" / "precious").mkdir(parents=True)
    (usr / "share" / "doc" / "precious" / "README").write_text("keep")
    (usr / "src" / "linux-headers-6.1.0-host" / "Makefile").write_text("host makefile\n")
    return usr


def _tree_of(top: Path) -> dict[str, str]:
    return {str(p.relative_to(top)): p.read_text() for p in sorted(top.rglob("*")) if p.is_file()}


def test_a_package_whose_usr_is_a_symlink_touches_nothing_of_the_host(tmp_path, caplog):
    """A hostile .deb with ./usr -> the host's /usr must not make add remove,
    move or read anything there."""
    host = tmp_path / "host"
    _host_headers(host)
    before = _tree_of(host)
    deb = _deb(tmp_path, "evil", {}, {"usr": str(host / "usr")})
    assert cli.main(["kernels", "add", "--dir", str(tmp_path / "k"), str(deb)]) == 1
    assert "symlink: refused" in caplog.text
    assert _tree_of(host) == before


def test_a_makefile_symlink_in_a_package_is_never_written_through(tmp_path):
    host = tmp_path / "host"
    usr = _host_headers(host)
    victim = usr / "src" / "linux-headers-6.1.0-host" / "Makefile"
    victim.write_text(f"include /usr/src/linux-headers-{REL}/Makefile.x\n")  # a path add rewrites
    arch = f"usr/src/linux-headers-{REL}"
    deb = _deb(tmp_path, "evil", {
        f"{arch}/include/generated/utsrelease.h": f'#define UTS_RELEASE "{REL}"\n'},
        {f"{arch}/Makefile": str(victim)})
    cli.main(["kernels", "add", "--dir", str(tmp_path / "k"), str(deb)])
    assert victim.read_text() == f"include /usr/src/linux-headers-{REL}/Makefile.x\n"


@pytest.mark.parametrize("release", ["../../../../escaped", "{tmp}/abs-release", "a b"])
def test_a_release_name_that_is_no_release_is_refused(tmp_path, caplog, release):
    release = release.replace("{tmp}", str(tmp_path))
    victim = tmp_path / "escaped" / "build" / "data"
    victim.parent.mkdir(parents=True)
    victim.write_text("keep")
    arch = "usr/src/linux-headers-evil"
    deb = _deb(tmp_path, "evil", {
        f"{arch}/include/generated/utsrelease.h": f'#define UTS_RELEASE "{release}"\n'}, {})
    kdir = tmp_path / "a" / "b" / "k"
    assert cli.main(["kernels", "add", "--force", "--dir", str(kdir), str(deb)]) == 1
    assert "is not a kernel release name" in caplog.text
    assert victim.read_text() == "keep"
    assert not (tmp_path / "abs-release").exists()
