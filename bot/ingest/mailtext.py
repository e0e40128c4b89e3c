"""Mail bodies as text for command parsing: text/plain, else HTML read as
lines with <blockquote> text quoted ('> '), so quoted commands never count."""

from __future__ import annotations

import re
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
            html = payload.decode(part.get_content_charset() or "utf-8", "replace")
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
