"""Write the malformed-mail corpus in this folder (run from the repo root).

    .venv/bin/python tests/data/malformed/make_corpus.py

Every file is named for what is wrong with it; tests/test_malformed.py says
what the bot must make of each (quarantined with a reason, ignored as not a
patch, or processed). The two big ones (a 1 MB header, a 50 MB body) are
made by the test itself, not stored. The patch in all of them is a small
clean edit of the sample tree (it applies and builds).
"""

from __future__ import annotations

import base64
from pathlib import Path

HERE = Path(__file__).resolve().parent

DIFF = """\
diff --git a/backport-include/linux/sysfs.h b/backport-include/linux/sysfs.h
index c56266d..4b87cbd 100644
--- a/backport-include/linux/sysfs.h
+++ b/backport-include/linux/sysfs.h
@@ -8,6 +8,9 @@
 #define sysfs_emit LINUX_BACKPORT(sysfs_emit)
 __printf(2, 3)
 int sysfs_emit(char *buf, const char *fmt, ...);
+#define sysfs_emit_at LINUX_BACKPORT(sysfs_emit_at)
+__printf(3, 4)
+int sysfs_emit_at(char *buf, int at, const char *fmt, ...);
 #endif /* < 5.10 */
@SPACE@
 #endif /* __BACKPORT_LINUX_SYSFS_H */
""".replace("@SPACE@", " ")  # a context line that is one space
BODY = """\
sysfs_emit_at() came together with sysfs_emit() in 5.10; declare the
backport next to the one of sysfs_emit().

Signed-off-by: Rita Odd <rita.odd@example.org>
---
 backport-include/linux/sysfs.h | 3 +++
 1 file changed, 3 insertions(+)

""" + DIFF + "-- \n2.47.1\n"


def headers(n: int, subject: str, msgid: str | None = "default", extra: str = "",
            ctype: str = "text/plain; charset=UTF-8", cte: str = "8bit") -> str:
    mid = f"<malformed-{n:02d}@example.org>" if msgid == "default" else msgid
    return (
        "From: Rita Odd <rita.odd@example.org>\n"
        "To: backports@vger.kernel.org\n"
        f"Subject: {subject}\n"
        f"Date: Tue, 3 Feb 2026 09:{n:02d}:00 +0000\n"
        + (f"Message-ID: {mid}\n" if mid else "")
        + "MIME-Version: 1.0\n"
        f"Content-Type: {ctype}\n"
        f"Content-Transfer-Encoding: {cte}\n"
        + extra
    )


def subject(what: str) -> str:
    return f"[PATCH] headers: declare sysfs_emit_at() ({what})"


def corpus() -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    files["bad-mime-boundary.eml"] = (
        headers(1, subject("bad MIME boundary"),
                ctype='multipart/mixed; boundary="declared-boundary"')
        + "\nThis is a multi-part message in MIME format.\n"
        "--another-boundary\nContent-Type: text/plain; charset=UTF-8\n\n" + BODY
        + "--another-boundary--\n").encode()
    files["unterminated-multipart.eml"] = (
        headers(2, subject("multipart without its closing boundary"),
                ctype='multipart/mixed; boundary="b1"')
        + "\n--b1\nContent-Type: text/plain; charset=UTF-8\n\n" + BODY).encode()
    files["unknown-charset.eml"] = (
        headers(3, subject("unknown charset"), ctype="text/plain; charset=x-unknown-klingon")
        + "\n" + BODY).encode()
    files["invalid-utf8.eml"] = (
        headers(4, subject("invalid UTF-8")) + "\n").encode() + \
        BODY.replace("5.10;", "5.10 \udcff\udcfe;").encode("utf-8", "surrogateescape")
    files["nul-bytes.eml"] = (
        headers(5, subject("NUL bytes")) + "\n"
        + BODY.replace("declare the\n", "declare the\x00\x00\n")).encode()
    files["base64-crlf.eml"] = (
        headers(6, subject("base64 body, CRLF line ends"), cte="base64") + "\n"
        + base64.encodebytes(BODY.encode()).decode()).replace("\n", "\r\n").encode()
    files["broken-base64.eml"] = (
        headers(7, subject("broken base64"), cte="base64") + "\n"
        + base64.encodebytes(BODY.encode()).decode()[:-7] + "!!*\n").encode()
    files["html-only.eml"] = (
        headers(8, subject("HTML only"), ctype="text/html; charset=UTF-8") + "\n"
        "<html><body><pre>" + BODY.replace("<", "&lt;").replace(">", "&gt;")
        + "</pre></body></html>\n").encode()
    files["missing-message-id.eml"] = (
        headers(9, subject("no Message-ID"), msgid=None) + "\n" + BODY).encode()
    files["same-message-id-first.eml"] = (
        headers(10, subject("same Message-ID, first copy"), msgid="<malformed-dup@example.org>")
        + "\n" + BODY).encode()
    files["same-message-id-second.eml"] = (
        headers(10, subject("same Message-ID, second copy with other content"),
                msgid="<malformed-dup@example.org>")
        + "\n" + BODY.replace("int at,", "int offset,")).encode()
    files["bidi-in-patch.eml"] = (
        headers(11, subject("bidi control characters")) + "\n"
        + BODY.replace("int sysfs_emit_at(char *buf, int at,",
                       "int sysfs_emit_at(char *buf, int at /*\u202e } \u2066*/,")).encode()
    files["broken-encoded-words.eml"] = (
        headers(12, "=?utf-8?b?W1BBVENIXSBoZWFkZXJz?= =?x-unknown?q?broken=ZZ?= =?utf-8?b?!!!?=",
                extra="X-Junk: =?utf-8?q?=C3?=\n") + "\n" + BODY).encode()
    files["no-body.eml"] = headers(13, subject("no body at all")).encode()
    files["header-without-colon.eml"] = (
        headers(14, subject("a header line without a colon"))
        + "This line is not a header\n\n" + BODY).encode()
    # mbox (mboxo): a body line starting with "From " is escaped as ">From ".
    escaped = BODY.replace("sysfs_emit_at() came together",
                           ">From the 5.10 changelog: sysfs_emit_at() came together")
    files["from-escaping.mbox"] = (
        "From rita.odd@example.org Tue Feb  3 09:15:00 2026\n"
        + headers(15, subject("mbox >From escaping")) + "\n" + escaped + "\n"
        "From someone@example.org Tue Feb  3 09:16:00 2026\n"
        "From: Some One <someone@example.org>\nTo: backports@vger.kernel.org\n"
        "Subject: question about sysfs\nMessage-ID: <malformed-15-question@example.org>\n"
        "Date: Tue, 3 Feb 2026 09:16:00 +0000\n\n>From what I read, this is fine.\n").encode()
    return files


def main() -> None:
    for name, raw in corpus().items():
        (HERE / name).write_bytes(raw)
        print(HERE / name)


if __name__ == "__main__":
    main()
