"""The embedded demo data (bot/demo/data) really behaves as documented.

The base tree generates and builds on all ten mini kernels, every series
on the sample list applies (or not), generates and builds with exactly
the per-kernel results in bot/demo/data/list/README, and every mini
kernel declares exactly the APIs that bot/demo/data/kernels/README says
it has.  Real git, python, make and gcc; no bot code.
"""

import email
import email.policy
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[1] / "bot" / "demo" / "data"
LIST = DEMO / "list"
KERNELS = ("3.10", "3.16", "4.4", "4.9", "4.14", "4.19", "5.4", "5.10", "5.15", "6.1")
RELEASES = {
    "3.10": "3.10.108",
    "3.16": "3.16.85",
    "4.4": "4.4.302",
    "4.9": "4.9.337",
    "4.14": "4.14.336",
    "4.19": "4.19.325",
    "5.4": "5.4.301",
    "5.10": "5.10.237",
    "5.15": "5.15.196",
    "6.1": "6.1.140",
}
# below 4.12: no kvmalloc_array(), which B v1's kvcalloc() backport calls
NO_KVMALLOC = ("3.10", "3.16", "4.4", "4.9")
ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Demo Test",
    "GIT_AUTHOR_EMAIL": "demo-test@example.org",
    "GIT_COMMITTER_NAME": "Demo Test",
    "GIT_COMMITTER_EMAIL": "demo-test@example.org",
    "LC_ALL": "C",  # plain quotes in gcc's messages
}
ALL_PASS = dict.fromkeys(KERNELS, True)

# series -> (patch mails in order, cover letters left out; build result per kernel)
SERIES = {
    "A": (
        ["02-clean-series-patch-1-3.eml", "03-clean-series-patch-2-3.eml", "04-clean-series-patch-3-3.eml"],
        ALL_PASS,
    ),
    "B v1": (
        ["06-breaks-3.10-v1-patch-1-2.eml", "07-breaks-3.10-v1-patch-2-2.eml"],
        {**ALL_PASS, **dict.fromkeys(NO_KVMALLOC, False)},
    ),
    "B v2": (["13-fixes-3.10-v2-patch-1-2.eml", "14-fixes-3.10-v2-patch-2-2.eml"], ALL_PASS),
}
# (series, kernel) -> gcc errors that must be in the build log
KVMALLOC_ARRAY_ERROR = (
    r"^backport-include/linux/mm\.h:10:16: error: implicit declaration of function 'kvmalloc_array'"
)
KVFREE_ERROR = r"^drivers/net/wireless/minidrv/ring\.c:18:9: error: implicit declaration of function 'kvfree'"
ERRORS = {
    ("B v1", "3.10"): [KVMALLOC_ARRAY_ERROR, KVFREE_ERROR],
    **{("B v1", k): [KVMALLOC_ARRAY_ERROR] for k in NO_KVMALLOC[1:]},
}
# (series, kernel) -> errors that must not be there (kvfree() is in 3.15)
NOT_ERRORS = {("B v1", k): [KVFREE_ERROR] for k in NO_KVMALLOC[1:]}
DIAGNOSTIC = re.compile(r"^[\w./-]+\.[ch]:\d+:\d+: error: ", re.M)


def run(cmd, cwd=None, check=True):
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=60)
    if check and proc.returncode:
        pytest.fail(f"{cmd} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def base_repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("base") / "backports"
    shutil.copytree(DEMO / "tree", repo)
    run(["git", "init", "-q", "-b", "main"], cwd=repo)
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "commit", "-q", "-m", "backports: demo tree"], cwd=repo)
    return repo


def checkout(base_repo, dest):
    run(["git", "clone", "-q", base_repo, dest])
    return dest


def git_am(repo, mails, check=True):
    return run(["git", "am", "-3", *(LIST / m for m in mails)], cwd=repo, check=check)


def generate(tree, out):
    return run([sys.executable, tree / "gentree.py", DEMO / "upstream", out])


def build(pkg, kernel, build_dir):
    build_dir.mkdir()
    return run(["make", "-C", pkg, f"KLIB_BUILD={DEMO / 'kernels' / kernel}", f"O={build_dir}"], check=False)


def build_all(pkg, tmp_path):
    with ThreadPoolExecutor(len(KERNELS)) as pool:
        procs = pool.map(lambda k: build(pkg, k, tmp_path / f"build-{k}"), KERNELS)
        return dict(zip(KERNELS, procs, strict=True))


def snapshot(directory):
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in directory.rglob("*") if p.is_file()}


def test_base_tree_generates_and_builds_everywhere(base_repo, tmp_path):
    pkg = tmp_path / "pkg"
    gen = generate(base_repo, pkg)
    assert "Copy original source files ..." in gen.stdout
    assert "Apply patches ..." in gen.stdout
    assert run(["git", "status", "--porcelain"], cwd=base_repo).stdout == ""

    before = snapshot(pkg)
    results = build_all(pkg, tmp_path)
    assert snapshot(pkg) == before, "the build wrote into the package"
    for kernel, proc in results.items():
        assert proc.returncode == 0, f"{kernel}:\n{proc.stdout}{proc.stderr}"
        assert (tmp_path / f"build-{kernel}/drivers/net/wireless/minidrv/main.o").is_file()


@pytest.mark.parametrize(
    ("kernel", "compat"),
    [
        ("3.10", {"main", "backport-4.19", "backport-5.10"}),
        ("3.16", {"main", "backport-4.19", "backport-5.10"}),
        ("4.4", {"main", "backport-4.19", "backport-5.10"}),
        ("4.9", {"main", "backport-4.19", "backport-5.10"}),
        ("4.14", {"main", "backport-4.19", "backport-5.10"}),
        ("4.19", {"main", "backport-5.10"}),
        ("5.4", {"main", "backport-5.10"}),
        ("5.10", {"main"}),
        ("5.15", {"main"}),
        ("6.1", {"main"}),
    ],
)
def test_compat_backport_files_only_for_older_kernels(base_repo, tmp_path, kernel, compat):
    generate(base_repo, tmp_path / "pkg")
    assert build(tmp_path / "pkg", kernel, tmp_path / "build").returncode == 0
    assert {p.stem for p in (tmp_path / "build/compat").glob("*.o")} == compat


@pytest.mark.parametrize("series", SERIES)
def test_series_applies_generates_and_builds_as_documented(base_repo, tmp_path, series):
    mails, expected = SERIES[series]
    repo = checkout(base_repo, tmp_path / "repo")
    git_am(repo, mails)
    assert len(run(["git", "log", "--format=%H", "main@{u}..HEAD"], cwd=repo).stdout.split()) == len(mails)
    generate(repo, tmp_path / "pkg")

    results = build_all(tmp_path / "pkg", tmp_path)
    assert {k: p.returncode == 0 for k, p in results.items()} == expected
    for kernel, proc in results.items():
        log = proc.stdout + proc.stderr
        if not expected[kernel]:
            assert DIAGNOSTIC.search(log), log
        for pattern in ERRORS.get((series, kernel), []):
            assert re.search(pattern, log, re.M), f"{pattern!r} not in:\n{log}"
        for pattern in NOT_ERRORS.get((series, kernel), []):
            assert not re.search(pattern, log, re.M), f"{kernel}: {pattern!r} in:\n{log}"


def test_stale_series_does_not_apply(base_repo, tmp_path):
    repo = checkout(base_repo, tmp_path / "repo")
    proc = git_am(repo, ["09-does-not-apply.eml"], check=False)
    assert proc.returncode != 0
    assert "could not build fake ancestor" in proc.stdout + proc.stderr


def test_incomplete_series_needs_its_missing_patch(base_repo, tmp_path):
    repo = checkout(base_repo, tmp_path / "repo")
    git_am(repo, ["10-incomplete-patch-1-3.eml"])
    assert git_am(repo, ["11-incomplete-patch-3-3.eml"], check=False).returncode != 0


def test_dependencies_skip_a_driver_on_older_kernels(base_repo, tmp_path):
    repo = checkout(base_repo, tmp_path / "repo")
    (repo / "dependencies").write_text("# needs 4.0\nMINIDRV 4.0\n")
    generate(repo, tmp_path / "pkg")
    old, new = (
        build(tmp_path / "pkg", "3.10", tmp_path / "old"),
        build(tmp_path / "pkg", "4.19", tmp_path / "new"),
    )
    assert old.returncode == new.returncode == 0
    assert "SKIP    minidrv" in old.stdout
    assert not (tmp_path / "old/drivers").exists()
    assert (tmp_path / "new/drivers/net/wireless/minidrv/main.o").is_file()


def test_gentree_reports_a_patch_that_does_not_apply(base_repo, tmp_path):
    repo = checkout(base_repo, tmp_path / "repo")
    main_c = "drivers/net/wireless/minidrv/main.c"
    (repo / "patches/0002-broken.patch").write_text(
        f"--- a/{main_c}\n+++ b/{main_c}\n@@ -1,2 +1,2 @@\n-no such\n+line\n context\n"
    )
    proc = run([sys.executable, repo / "gentree.py", DEMO / "upstream", tmp_path / "pkg"], check=False)
    assert proc.returncode == 2
    assert "Failed to apply changes from patches/0002-broken.patch" in proc.stdout


def test_gentree_is_deterministic_and_clean_replaces_output(base_repo, tmp_path):
    out = tmp_path / "pkg"
    generate(base_repo, out)
    first = {p.relative_to(out): b for p, (_, b) in snapshot(out).items()}
    assert "v6.1.145" in (out / "versions").read_text()
    (out / "stale.c").write_text("junk")
    run([sys.executable, base_repo / "gentree.py", "--clean", DEMO / "upstream", out])
    assert {p.relative_to(out): b for p, (_, b) in snapshot(out).items()} == first


def test_readme_table_matches_these_expectations():
    text = (LIST / "README").read_text()
    table = "series          mails" + text.split("series          mails")[1].split("\n\n")[0]
    header, *table = table.splitlines()
    assert re.split(r"\s{2,}", header.strip())[4:] == list(KERNELS)
    rows = {cols[0]: cols[1:] for cols in (re.split(r"\s{2,}", r.strip()) for r in table)}
    assert rows["(base tree)"][2 : 3 + len(KERNELS)] == ["ok", *["pass"] * len(KERNELS)]
    for series, (mails, expected) in SERIES.items():
        files, apply, gen, *kernels = rows[series][: 3 + len(KERNELS)]
        assert files.split() == [m[:2] for m in mails]
        assert (apply, gen) == ("ok", "ok")
        assert [k == "pass" for k in kernels] == [expected[k] for k in KERNELS]
    assert rows["D"][1] == rows["E (incomplete)"][1] == "FAIL"
    for kernel in KERNELS:
        assert f"{kernel} ({RELEASES[kernel]})" in " ".join(text.split())


def version_code(release):
    major, minor, sub = (int(x) for x in release.split("."))
    return (major << 16) + (minor << 8) + min(sub, 255)  # stable kernels clamp at 255


def test_kernels_are_the_documented_releases(tmp_path):
    kernels = DEMO / "kernels"
    assert sorted(p.name for p in kernels.iterdir() if p.is_dir()) == sorted(KERNELS)
    readme = (kernels / "README").read_text()
    for kernel, release in RELEASES.items():
        include = kernels / kernel / "include"
        assert (include / "generated/utsrelease.h").read_text() == f'#define UTS_RELEASE "{release}"\n'
        code = version_code(release)
        version_h = (include / "linux/version.h").read_text()
        assert re.search(rf"^#define LINUX_VERSION_CODE {code}$", version_h, re.M)
        assert re.search(rf"^  {re.escape(kernel)} +{re.escape(release)} +{code} ", readme, re.M), kernel
        major, minor, sub = release.split(".")
        probe = tmp_path / f"version-{kernel}.c"
        probe.write_text(
            "#include <linux/version.h>\n"
            f'_Static_assert(LINUX_VERSION_CODE == KERNEL_VERSION({major}, {minor}, {sub}), "code");\n'
            "#ifdef LINUX_VERSION_MAJOR\n"
            f"_Static_assert(LINUX_VERSION_MAJOR == {major} && LINUX_VERSION_PATCHLEVEL == {minor}"
            f' && LINUX_VERSION_SUBLEVEL == {sub}, "parts");\n'
            "#endif\n"
        )
        run(["gcc", "-fsyntax-only", "-nostdinc", "-I", include, probe])


# kernels/README's API table, row by row: what a kernel's headers have when it has the API
APIS = {
    "timer_setup(), from_timer() (4.14)": [r"\btimer_setup\(", r"#define from_timer\("],
    "timer_delete_sync() (6.1.84; stable": [r"\btimer_delete_sync\("],
    "bitmap_zalloc(), bitmap_free() (4.19)": [r"\bbitmap_zalloc\(", r"\bbitmap_free\("],
    "kvfree() (3.15)": [r"\bkvfree\("],
    "kvmalloc(), kvmalloc_array() (4.12)": [r"\bkvmalloc\(", r"\bkvmalloc_array\("],
    "kvcalloc() (4.18)": [r"\bkvcalloc\("],
    "__vmalloc() with a pgprot_t argument": [r"\b__vmalloc\([^;]*pgprot_t prot\);"],
    ".ndo_tx_timeout(dev, txqueue) (5.6)": [
        r"\(\*ndo_tx_timeout\)\(struct net_device \*dev,\s+unsigned int txqueue"
    ],
    "sysfs_emit(), sysfs_emit_at() (5.10;": [r"\bsysfs_emit\(", r"\bsysfs_emit_at\("],
    "netif_napi_add() without weight (6.1)": [
        r"\bnetif_napi_add\(struct net_device \*dev, struct napi_struct \*napi,\s+int \(\*poll\)\([^)]*\)\)",
        r"\bnetif_napi_add_weight\(",
    ],
    "NAPI_POLL_WEIGHT, DEVICE_ATTR_RO (3.11)": [r"#define NAPI_POLL_WEIGHT\b", r"#define DEVICE_ATTR_RO\("],
    "napi_complete_done() (3.19)": [r"\bnapi_complete_done\("],
    "<linux/stdarg.h> (5.15)": [r"^== linux/stdarg\.h ==$"],
    "LINUX_VERSION_MAJOR/_PATCHLEVEL/": [
        r"#define LINUX_VERSION_MAJOR \d",
        r"#define LINUX_VERSION_SUBLEVEL \d",
    ],
    "KERNEL_VERSION() clamps the sublevel": [r"#define KERNEL_VERSION\(a,b,c\) .*> 255 \? 255"],
}


def headers(kernel):
    include = DEMO / "kernels" / kernel / "include"
    return "".join(f"== {p.relative_to(include)} ==\n{p.read_text()}" for p in sorted(include.rglob("*.h")))


def test_kernels_have_exactly_the_apis_in_their_readme():
    text = (DEMO / "kernels/README").read_text()
    header, *rows = text[text.index("\n  API (mainline version)") + 1 :].split("\n\n")[0].splitlines()
    start = header.index(" 3.10 ") + 1
    columns = [(m.group(), start + m.start()) for m in re.finditer(r"\S+", header[start:])]
    assert [name for name, _ in columns] == list(KERNELS)
    rows = [r for r in rows if not r.startswith("    ")]  # continuation lines of a label
    labels = [r[: columns[0][1]].strip() for r in rows]
    assert labels == list(APIS)
    text = {k: headers(k) for k in KERNELS}
    for label, row in zip(labels, rows, strict=True):
        for kernel, at in columns:
            cell = row[at : at + 4].strip()
            assert cell in ("yes", "-"), (label, kernel, cell)
            found = [bool(re.search(p, text[kernel], re.M)) for p in APIS[label]]
            assert found == [cell == "yes"] * len(found), (label, kernel, found)


def parse(path):
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


def test_mails_are_well_formed_and_threaded():
    mails = {p.name: parse(p) for p in sorted(LIST.glob("*.eml"))}
    readme = (LIST / "README").read_text()
    ids = [m["Message-ID"].strip("<>") for m in mails.values()]
    assert len(set(ids)) == len(ids) == 14
    for name, msg in mails.items():
        assert name in readme and msg["Message-ID"].strip("<>") in readme
        assert msg["To"] == "backports@vger.kernel.org"
        assert msg["Date"].datetime.year == 2026
        for ref in msg.get("References", "").split():
            assert ref.strip("<>") in ids, f"{name}: dangling reference {ref}"
        if msg.get_content_type() == "text/plain":
            assert msg.get_content_charset() == "utf-8"
        if "[PATCH" in msg["Subject"] and not msg["Subject"].startswith("Re:"):
            body = msg.get_content()
            is_cover = " 0/" in msg["Subject"]
            assert ("diff --git" in body) != is_cover, name
            assert is_cover or "Signed-off-by: " in body

    assert str(mails["01-clean-series-cover.eml"]["From"]).startswith("Åsa Lindqvist")
    assert (
        mails["05-clean-series-reviewed-by-reply.eml"]["In-Reply-To"]
        == mails["03-clean-series-patch-2-3.eml"]["Message-ID"]
    )
    assert "\nReviewed-by: Priya Raman" in mails["05-clean-series-reviewed-by-reply.eml"].get_content()
    assert "Changes in v2:" in mails["13-fixes-3.10-v2-patch-1-2.eml"].get_content()
    assert "In-Reply-To" not in mails["13-fixes-3.10-v2-patch-1-2.eml"]
    bounce = mails["12-bounce.eml"]
    assert bounce.get_content_type() == "multipart/report"
    assert bounce.get_param("report-type") == "delivery-status"
    assert bounce["Auto-Submitted"] == "auto-replied"
