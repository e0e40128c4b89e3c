"""Writes the mails of this folder (run once; the files are committed).

Each file is named for what it shows; tests/test_list_traffic.py says what
the bot must make of it. Diffs of the git-only kinds (rename, mode change,
empty files, binary) are real `git format-patch` output.
"""

from __future__ import annotations

import base64
from pathlib import Path

HERE = Path(__file__).resolve().parent
JANE = "Jane Doe <jane@example.org>"
LIST = "backports@vger.example.org"
SOB = "Signed-off-by: Jane Doe <jane@example.org>"
GIT = "-- \n2.39.5\n"


def hunk(path: str, line: str) -> str:
    return (f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n"
            f"@@ -1,3 +1,4 @@\n /* compat */\n int a;\n+{line}\n int b;\n")


def patch_body(text: str, diff: str) -> str:
    stat = f" {diff.split()[2][2:]} | 1 +\n 1 file changed, 1 insertion(+)\n"
    return f"{text}\n\n{SOB}\n---\n{stat}\n{diff}{GIT}"


def write(name: str, subject: str, msgid: str, body: str, *, date: str = "Fri, 20 Mar 2026 10:00:00 +0000",
          irt: str = "", refs: tuple[str, ...] = (), sender: str = JANE, headers: str = "",
          ctype: str = "text/plain; charset=UTF-8", cte: str = "8bit", raw_body: bytes | None = None,
          first: bytes = b"") -> None:
    head = [f"From: {sender}", f"To: {LIST}", f"Subject: {subject}", f"Date: {date}",
            f"Message-ID: <{msgid}>"]
    if irt:
        head.append(f"In-Reply-To: <{irt}>")
    if refs:
        head.append("References: " + " ".join(f"<{r}>" for r in refs))
    head += ["MIME-Version: 1.0", f"Content-Type: {ctype}", f"Content-Transfer-Encoding: {cte}"]
    if headers:
        head += headers.strip("\n").split("\n")
    data = first + ("\n".join(head) + "\n\n").encode() + (raw_body if raw_body is not None
                                                           else body.encode())
    (HERE / name).write_bytes(data)


def reply_to(first: str, n: int) -> dict:
    return dict(irt=first, refs=(first,)) if n > 1 else {}


def git_kinds() -> None:
    rename = ("diff --git a/compat/rename-me.c b/compat/renamed.c\nsimilarity index 100%\n"
              "rename from compat/rename-me.c\nrename to compat/renamed.c\n")
    mode = "diff --git a/compat/script.sh b/compat/script.sh\nold mode 100644\nnew mode 100755\n"
    new_empty = ("diff --git a/backport-include/linux/new-empty.h b/backport-include/linux/new-empty.h\n"
                 "new file mode 100644\nindex 0000000..e69de29\n")
    del_empty = ("diff --git a/compat/empty-old.h b/compat/empty-old.h\ndeleted file mode 100644\n"
                 "index e69de29..0000000\n")
    binary = ("diff --git a/compat/firmware.bin b/compat/firmware.bin\nnew file mode 100644\n"
              "index 0000000000000000000000000000000000000000..82a730805dc10b812221b870902492c4c49ee7ce\n"
              "GIT binary patch\nliteral 11\nScmZQzWJ=1+ODwAV{|^8Vz66E<\n\nliteral 0\nHcmV?d00001\n\n")
    no_data = ("diff --git a/compat/firmware.bin b/compat/firmware.bin\nnew file mode 100644\n"
               "index 0000000..82a7308\nBinary files /dev/null and b/compat/firmware.bin differ\n")
    plain = ("--- a/compat/main.c\n+++ b/compat/main.c\n@@ -1,3 +1,4 @@\n"
             " /* compat */\n int a;\n+int q;\n int b;\n")
    corrupt = ("diff --git a/compat/main.c b/compat/main.c\n--- a/compat/main.c\n+++ b/compat/main.c\n"
               "@@ -1,3 +1,5 @@\n /* compat */\n int a;\n+int c;\n int b;\n")
    for i, (name, subject, diff) in enumerate([
        ("diff-rename-only.eml", "compat: rename rename-me.c to renamed.c", rename),
        ("diff-mode-only.eml", "compat: make script.sh executable", mode),
        ("diff-new-empty-file.eml", "backport-include: add empty linux/new-empty.h", new_empty),
        ("diff-deleted-empty-file.eml", "compat: remove empty empty-old.h", del_empty),
        ("diff-binary-literal.eml", "compat: add firmware.bin blob", binary),
        ("diff-binary-no-data.eml", "compat: add firmware.bin blob without data", no_data),
        ("diff-unified-no-git-header.eml", "compat: add int q (quilt style)", plain),
        ("diff-corrupt-short-hunk.eml", "compat: add int c (hand-edited hunk)", corrupt),
    ], start=1):
        body = f"{subject}.\n\n{SOB}\n---\n compat/x | 0\n 1 file changed\n\n{diff}{GIT}"
        write(name, f"[PATCH] {subject}", f"20260320100{i:03d}.100{i}-1-jane@example.org", body)
    write("not-a-diff-dashes.eml", "Question about compat/ layout",
          "20260320110000.2000-1-jane@example.org",
          "Hi,\n\n--- Original proposal ---\nmove compat/ to lib/\n\nThoughts?\n")


def numbering() -> None:
    hg = "# HG changeset patch\n# User Jane Doe <jane@example.org>\n# Date 1774000000 0\n" \
         "# Node ID 1f0e2d3c4b5a69788796a5b4c3d2e1f00a1b2c3d\n" \
         "# Parent  0a1b2c3d4e5f60718293a4b5c6d7e8f901234567\n"
    root = "hg-patchbomb.0@example.org"
    write("hg-0of2.eml", "[PATCH 0 of 2] compat: two hg patches", root,
          "Two patches from a Mercurial queue.\n\n 2 files changed, 2 insertions(+)\n")
    for n in (1, 2):
        write(f"hg-{n}of2.eml", f"[PATCH {n} of 2] compat: hg change {n}", f"hg-patchbomb.{n}@example.org",
              f"{hg}compat: hg change {n}\n\n{SOB}\n\n{hunk(f'compat/hg{n}.c', f'int hg{n};')}",
              date=f"Fri, 20 Mar 2026 11:0{n}:00 +0000", irt=root, refs=(root,))
    variants = [
        ("netdev-comma", "[PATCH net,v2,{n}/2] compat: netdev {n}", 2),
        ("netdev-bare-comma", "[net-next,v3,{n}/2] compat: bare comma {n}", 3),
        ("resend", "[PATCH v2 RESEND {n}/2] compat: resent {n}", 2),
        ("rfc", "[RFC PATCH v3 {n}/2] compat: rfc {n}", 3),
        ("version-after", "[PATCH {n}/2 v4] compat: version after {n}", 4),
    ]
    for k, (stem, fmt, _rev) in enumerate(variants, start=1):
        first = f"20260321{k:02d}0001.{k}00-1-jane@example.org"
        for n in (1, 2):
            mid = f"20260321{k:02d}000{n}.{k}00-{n}-jane@example.org"
            extra = dict(irt=first, refs=(first,)) if n == 2 else {}
            write(f"{stem}-{n}of2.eml", fmt.format(n=n), mid,
                  patch_body(f"compat: {stem} {n}",
                             hunk(f"compat/{stem}{n}.c", f"int {stem.replace('-', '_')}{n};")),
                  date=f"Sat, 21 Mar 2026 {k:02d}:00:0{n} +0000", **extra)
    # No References at all, arriving 3, 1, 2.
    for n in (1, 2, 3):
        write(f"unthreaded-{n}of3.eml", f"[PATCH {n}/3] compat: unthreaded {n}",
              f"20260322080000.3{n}-jane@example.org",
              patch_body(f"compat: unthreaded {n}", hunk(f"compat/u{n}.c", f"int u{n};")),
              date=f"Sun, 22 Mar 2026 08:00:0{n} +0000")
    # The same 2/3 twice in one thread: the newer copy counts, once.
    d = "20260323080000.40-{}-jane@example.org"
    for n in (1, 2, 3):
        write(f"dup-{n}of3.eml", f"[PATCH {n}/3] compat: dup {n}", d.format(n),
              patch_body(f"compat: dup {n}", hunk(f"compat/d{n}.c", f"int d{n};")),
              date=f"Mon, 23 Mar 2026 08:00:0{n} +0000", **reply_to(d.format(1), n))
    write("dup-2of3-newer-copy.eml", "[PATCH 2/3] compat: dup 2", d.format("2-again"),
          patch_body("compat: dup 2 (second copy)", hunk("compat/d2.c", "int d2_again;")),
          date="Mon, 23 Mar 2026 09:00:00 +0000", irt=d.format(1), refs=(d.format(1),))
    a = "20260324080000.50-{}-jane@example.org"
    for n in (1, 2):
        write(f"above-m-{n}of2.eml", f"[PATCH {n}/2] compat: above {n}", a.format(n),
              patch_body(f"compat: above {n}", hunk(f"compat/a{n}.c", f"int a{n};")),
              date=f"Tue, 24 Mar 2026 08:00:0{n} +0000", **reply_to(a.format(1), n))
    write("above-m-3of2.eml", "[PATCH 3/2] compat: above 3", a.format(3),
          patch_body("compat: above 3", hunk("compat/a3.c", "int a3;")),
          date="Tue, 24 Mar 2026 08:00:03 +0000", irt=a.format(1), refs=(a.format(1),))
    u = "20260325080000.60-{}-jane@example.org"
    for n in (1, 2):
        write(f"unnumbered-in-thread-{n}of2.eml", f"[PATCH {n}/2] compat: numbered {n}", u.format(n),
              patch_body(f"compat: numbered {n}", hunk(f"compat/n{n}.c", f"int n{n};")),
              date=f"Wed, 25 Mar 2026 08:00:0{n} +0000", **reply_to(u.format(1), n))
    write("unnumbered-in-thread-fixup.eml", "[PATCH] compat: fixup for numbered 2", u.format("fixup"),
          patch_body("compat: fixup", hunk("compat/fix.c", "int fix;")),
          date="Wed, 25 Mar 2026 09:00:00 +0000", irt=u.format(2), refs=(u.format(1), u.format(2)))
    for n, who in ((1, "a"), (2, "b")):
        write(f"two-v2-separate-{who}.eml", "[PATCH v2] compat: same subject, separate mail",
              f"20260326080000.70-{who}-jane@example.org",
              patch_body("compat: separate " + who, hunk(f"compat/s{who}.c", f"int s{who};")),
              date=f"Thu, 26 Mar 2026 0{8 + n}:00:00 +0000")


PULL_TEXT = """The following changes since commit 3f1c2a9b8e7d6c5b4a39281706f5e4d3c2b1a098:

  backports: update to v6.8-rc1 (2026-03-01 10:00:00 +0000)

are available in the Git repository at:

  https://git.example.org/pub/scm/backports.git tags/backports-fixes-2026-03-27

for you to fetch changes up to 9a8b7c6d5e4f30211203a4b5c6d7e8f9a0b1c2d3:

  compat: fix ktime helpers (2026-03-26 10:00:00 +0000)

----------------------------------------------------------------
Backports fixes for 6.8

----------------------------------------------------------------
Jane Doe (1):
      compat: fix ktime helpers

 compat/main.c | 1 +
 1 file changed, 1 insertion(+)
"""


def pulls() -> None:
    write("pull-git-pull.eml", "[GIT PULL] backports fixes for 6.8",
          "20260327080000.80-1-jane@example.org", "Hi Hauke,\n\nplease pull.\n\n" + PULL_TEXT)
    write("pull-with-diff.eml", "[GIT PULL] backports fixes for 6.8, with the diff",
          "20260327080000.80-2-jane@example.org",
          "Hi Hauke,\n\n" + PULL_TEXT + "\n" + hunk("compat/main.c", "int pulled;"))
    write("pull-request-pull-text-no-tag.eml", "Please pull backports fixes",
          "20260327080000.80-3-jane@example.org",
          PULL_TEXT + "\n" + hunk("compat/main.c", "int pulled;"))
    write("pull-1of2.eml", "[PULL 1/2] compat: fix ktime helpers",
          "20260327080000.80-4-jane@example.org",
          patch_body("compat: fix ktime helpers", hunk("compat/main.c", "int pull1;")))


def bodies() -> None:
    # format=flowed; delsp=yes as Thunderbird sends it: lines starting with a
    # space are space-stuffed, and the '+int flowed_' line is broken after
    # 'flowed_' with a soft break (a trailing space, dropped with delsp=yes).
    body = ("compat: a flowed patch\n\n" + SOB + "\n---\n  compat/main.c | 1 +\n\n"
            "diff --git a/compat/main.c b/compat/main.c\n--- a/compat/main.c\n+++ b/compat/main.c\n"
            "@@ -1,3 +1,4 @@\n  /* compat */\n  int a;\n+int flowed_ \nvariable_name;\n  int b;\n" + GIT)
    write("flowed-delsp-patch.eml", "[PATCH] compat: a flowed patch",
          "20260328080000.90-1-jane@example.org", body,
          ctype="text/plain; charset=UTF-8; format=flowed; delsp=yes")
    crlf = patch_body("compat: base64 with CRLF", hunk("compat/main.c", "int crlf;")).replace("\n", "\r\n")
    write("base64-crlf-patch.eml", "[PATCH] compat: base64 with CRLF",
          "20260328080000.90-2-jane@example.org", "", cte="base64",
          raw_body=base64.encodebytes(crlf.encode()))
    for i, (stem, ctype, filename) in enumerate([
        ("attach-text-x-diff", "text/x-diff", "fix.diff"),
        ("attach-octet-stream-patch", "application/octet-stream", "0001-fix.patch"),
        ("attach-octet-stream-diff", "application/octet-stream", "fix.diff"),
    ], start=3):
        diff = patch_body(f"compat: attached {stem}", hunk("compat/main.c", f"int att{i};"))
        b = f"b-{stem}"
        payload = base64.encodebytes(diff.encode()).decode()
        mime = (f"--{b}\nContent-Type: text/plain; charset=UTF-8\n\nThe patch is attached.\n\n"
                f"--{b}\nContent-Type: {ctype}; name=\"{filename}\"\nContent-Disposition: attachment; "
                f"filename=\"{filename}\"\nContent-Transfer-Encoding: base64\n\n{payload}\n--{b}--\n")
        write(f"{stem}.eml", f"[PATCH] compat: attached {stem}", f"20260328080000.90-{i}-jane@example.org",
              mime, ctype=f"multipart/mixed; boundary=\"{b}\"", cte="7bit")
    inner = ("From: Ola Nordmann <ola@example.no>\nTo: backports@vger.example.org\n"
             "Subject: [PATCH] compat: Ola's patch\nDate: Fri, 27 Mar 2026 08:00:00 +0000\n"
             "Message-ID: <inner-ola@example.no>\n\n" +
             patch_body("compat: Ola's patch", hunk("compat/main.c", "int ola;")))
    b = "fwd"
    write("forwarded-rfc822-patch.eml", "Fwd: [PATCH] compat: Ola's patch",
          "20260328080000.90-9-jane@example.org",
          f"--{b}\nContent-Type: text/plain\n\nForwarding this for review.\n\n--{b}\n"
          f"Content-Type: message/rfc822\n\n{inner}\n--{b}--\n",
          ctype=f"multipart/mixed; boundary=\"{b}\"", cte="7bit")


def bad_headers() -> None:
    body = patch_body("compat: bad header", hunk("compat/main.c", "int bad;"))
    # Dates b4 cannot turn into a datetime (it raises ValueError on them).
    write("header-date-year-99999.eml", "[PATCH] compat: date in year 99999",
          "20260329080000.95-1-jane@example.org", body, date="Mon, 1 Jan 99999 00:00:00 +0000")
    write("header-date-day-32.eml", "[PATCH] compat: date on January 32",
          "20260329080000.95-2-jane@example.org", body, date="Mon, 32 Jan 2026 08:00:00 +0000")
    write("header-date-hour-25.eml", "[PATCH] compat: date at 25:61",
          "20260329080000.95-6-jane@example.org", body, date="Mon, 30 Mar 2026 25:61:00 +0000")
    # A stray character and excess padding that git mailinfo and b4 both skip: read.
    (HERE / "header-sloppy-base64-encoded-word.eml").write_bytes(
        b"From: =?utf-8?b?SmFuZSBE===?= <jane@example.org>\nTo: " + LIST.encode() +
        b"\nSubject: =?utf-8?b?W1BBVENIXSBjb21wYXQ6IGJhZA*==?=\nDate: Sun, 29 Mar 2026 08:00:03 +0000\n"
        b"Message-ID: <20260329080000.95-3-jane@example.org>\n\n" + body.encode())
    # Base64 that does not decode (b4 raises on it): quarantined.
    write("header-bad-base64-subject.eml", "=?utf-8?b?!!!notbase64?=",
          "20260329080000.95-9-jane@example.org", body)
    write("header-bad-base64-from.eml", "[PATCH] compat: bad base64 in From",
          "20260329080000.95-10-jane@example.org", body,
          sender="=?utf-8?b?!!!notbase64?= <jane@example.org>")
    series_body = (HERE / "unthreaded-2of3.eml").read_text().split("\n\n", 1)[1]
    write("series-2of3-date-day-32.eml", "[PATCH 2/3] compat: unthreaded 2",
          "20260329080000.95-7-jane@example.org", series_body, date="Mon, 32 Jan 2026 08:00:00 +0000")
    first = "20260324080000.50-1-jane@example.org"
    write("thread-2of2-date-day-32.eml", "[PATCH 2/2] compat: above 2",
          "20260329080000.95-8-jane@example.org",
          (HERE / "above-m-2of2.eml").read_text().split("\n\n", 1)[1],
          date="Mon, 32 Jan 2026 08:00:00 +0000", irt=first, refs=(first,))
    long_id = "x" * 1200 + "@example.org"
    write("header-overlong-message-id.eml", "[PATCH] compat: overlong Message-ID", long_id, body)
    (HERE / "header-illegal-characters.eml").write_bytes(
        b"From: Jane\x00Doe <jane@example.org>\nTo: " + LIST.encode() +
        b"\nSubject: [PATCH] compat: \x07bell and \x1b escape\nDate: Sun, 29 Mar 2026 08:00:05 +0000\n"
        b"Message-ID: <20260329080000.95-5\x01-jane@example.org>\n\n" + body.encode())


def subject_tags() -> None:
    """Subject tags that name a tree ([tree] strict_tags decides what they mean)."""
    def one(name: str, subject: str, n: int, text: str, **kw) -> None:
        write(name, subject, f"20260331080000.97-{n}-jane@example.org",
              patch_body(text, hunk(f"compat/t{n}.c", f"int t{n};")), **kw)

    one("tag-qemu-web-patch.eml", "[qemu-web PATCH] docs: fix the download link", 1,
        "docs: fix the download link")
    cover = "20260331080000.97-10-jane@example.org"
    write("tag-net-next-0of2.eml", "[PATCH net-next 0/2] net: two fixes", cover,
          "Two fixes for net-next.\n")
    for n in (1, 2):
        one(f"tag-net-next-{n}of2.eml", f"[PATCH net-next {n}/2] net: fix {n}", 10 + n,
            f"net: fix {n}", irt=cover, refs=(cover,))
    one("tag-known-branch.eml", "[PATCH main] compat: for the main branch", 3,
        "compat: for the main branch")
    one("tag-known-branch-rfc-v2.eml", "[RFC PATCH MAIN v2] compat: rfc for main", 4,
        "compat: rfc for main")
    one("tag-glued-version.eml", "[PATCHv2] compat: version glued to PATCH", 5,
        "compat: version glued to PATCH")


def mboxes() -> None:
    """git format-patch --stdout output: 'From <sha> Mon Sep 17 00:00:00 2001'
    separators, unescaped 'From ' lines in bodies; and an mboxrd file."""
    sep = "From {:040x} Mon Sep 17 00:00:00 2001\n"
    mails = []
    for n in range(1, 19):
        text = f"compat: mbox patch {n}"
        if n == 5:
            text += ("\n\nFrom the driver's point of view nothing changes; the line above\n"
                     "From: is not a header either")
        head = (f"From: {JANE}\nTo: backports@vger.kernel.org\nDate: Mon, 30 Mar 2026 08:{n:02d}:00 +0000\n"
                f"Subject: [PATCH {n}/18] compat: mbox patch {n}\n"
                f"Message-ID: <20260330080000.99-{n}-jane@example.org>\n")
        if n > 1:
            head += "In-Reply-To: <20260330080000.99-1-jane@example.org>\n"
        mails.append(sep.format(n) + head + "\n" +
                     patch_body(text, hunk(f"compat/m{n}.c", f"int m{n};")) + "\n")
    (HERE / "mbox-18-mails-leading-blank-lines.mbox").write_text("\n\n" + "".join(mails))
    rd = ""
    for n in (1, 2):
        body = patch_body(f"compat: mboxrd {n}\n\n>From the caller's side\n>>From quoted twice",
                          hunk(f"compat/rd{n}.c", f"int rd{n};"))
        body = "\n".join(">" + line if line.lstrip(">").startswith("From ") else line
                          for line in body.split("\n"))
        rd += (f"From mboxrd@z Thu Jan  1 00:00:00 1970\nFrom: {JANE}\nTo: backports@vger.kernel.org\n"
               f"Date: Mon, 30 Mar 2026 09:0{n}:00 +0000\nSubject: [PATCH {n}/2] compat: mboxrd {n}\n"
               f"Message-ID: <20260330090000.98-{n}-jane@example.org>\n\n{body}\n")
    (HERE / "mboxrd-escaped-from.mbox").write_text(rd)


if __name__ == "__main__":
    mboxes()
    git_kinds()
    numbering()
    pulls()
    bodies()
    bad_headers()
    subject_tags()
