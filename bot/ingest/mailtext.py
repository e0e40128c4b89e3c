"""Mail bodies as text for command parsing: text/plain, else HTML read as
lines with <blockquote> text quoted ('> '), so quoted commands never count.
And mail text made safe to print on a terminal (``for_terminal``)."""

from __future__ import annotations

import re
import unicodedata
from html.parser import HTMLParser

from bot.ingest import mail


def body_text(msg) -> tuple[str, str]:
    """The first text/plain part, else the first text/html part as text."""
    text, note = mail.text_body(msg)
    if not note.startswith("HTML only"):
        return text, note
    for part in msg.walk():
        if part.get_content_type() == "text/html" and not part.is_multipart():
            payload = part.get_payload(decode=True) or b""
            charset = part.get_content_charset() or "utf-8"
            html = payload.decode(charset if mail.known_charset(charset) else "latin-1", "replace")
            return html_text(html), "HTML only: read as text"
    return "", note


_BLOCKS = {"p", "div", "br", "li", "tr", "table", "ul", "ol", "pre", "h1", "h2", "h3", "h4",
           "hr"}
_SKIP = {"script", "style", "head", "title"}


class _HtmlText(HTMLParser):
    """HTML to lines; text inside <blockquote> comes out quoted with '> '."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current = ""
        self.quote = 0
        self.skip = 0

    def _break(self) -> None:
        if self.current.strip():
            self.lines.append("> " * self.quote + self.current.strip())
        self.current = ""

    def handle_starttag(self, tag, attrs):  # noqa: ARG002 - HTMLParser's API
        if tag in _SKIP:
            self.skip += 1
        elif tag == "blockquote":
            self._break()
            self.quote += 1
        elif tag in _BLOCKS:
            self._break()

    def handle_endtag(self, tag):
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag == "blockquote":
            self._break()
            self.quote = max(0, self.quote - 1)
        elif tag in _BLOCKS:
            self._break()

    def handle_data(self, data):
        if not self.skip:
            self.current += re.sub(r"\s+", " ", data)


def html_text(html: str) -> str:
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    parser._break()
    return "\n".join(parser.lines)


# Control (C0, DEL, C1), format (bidi overrides such as U+202E, zero-width),
# line and paragraph separators, lone surrogates: none of them is shown as
# itself by a terminal, and some drive it (ESC sequences, \r).
_UNSAFE = frozenset(("Cc", "Cf", "Cs", "Zl", "Zp"))


def for_terminal(text: str, keep: str = "") -> str:
    """``text`` (a subject, a reason, an address from mail) safe to print on a
    terminal: each character it could not show or that would drive it becomes
    an escape (``\\x1b``, ``\\x0d``, ``\\u202e``, ``\\U000e0041``); characters
    in ``keep`` (``"\\n\\t"`` for a text of several lines) stay."""
    if text.isprintable():
        return text
    return "".join(_escape(c) if c not in keep and unicodedata.category(c) in _UNSAFE else c
                   for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
