"""Reply texts from template files: bot/reply/templates/mail/*.txt (Jinja2).

One render function for every mail body, and the filters the templates use:

- ``wrap``: a paragraph to 72 columns (``{% filter wrap %}...{% endfilter %}``
  or ``{{ text | wrap("  ") }}``). Blank lines separate paragraphs; a
  paragraph starting with a space or ``>`` is kept as it is (a table, a
  quoted line).
- ``code``: a compiler line or a command, verbatim and indented: wrapping
  would break grep and copy-paste, so these are the only lines allowed past
  72 columns.

The web page (bot/web/html.py) uses the same filters with autoescape on.
"""

from __future__ import annotations

import textwrap

import jinja2

WIDTH = 72
TEMPLATES = "templates/mail"


def wrap_lines(text: str, indent: str = "", first: str | None = None,
               width: int = WIDTH) -> list[str]:
    """One paragraph as wrapped lines; ``first`` is the first line's indent."""
    if not text:
        return [""]
    if text[0] in " >":
        return [indent + line for line in text.split("\n")]
    return textwrap.wrap(text, width, initial_indent=indent if first is None else first,
                         subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False) or [""]


def wrap(text: str, indent: str = "", first: str | None = None) -> str:
    """Paragraphs (split at blank lines) wrapped to 72 columns; a trailing
    newline stays, so a ``{% filter wrap %}`` block keeps its line end."""
    body = text.rstrip("\n")
    paragraphs = body.split("\n\n") if body else [""]
    out = ["\n".join(wrap_lines(p.strip("\n") if p[:1] not in " >" else p, indent,
                                first if i == 0 else None))
           for i, p in enumerate(paragraphs)]
    return "\n\n".join(out) + ("\n" if text.endswith("\n") else "")


def code(line: str, indent: str = "  ") -> str:
    """A compiler line or a command, verbatim (never wrapped)."""
    return indent + str(line).rstrip()


def first_name(name: str | None) -> str:
    """The first word of a display name, for "Hi Jane,"; '' when there is none."""
    words = (name or "").split()
    return words[0] if words else ""


def add_filters(env: jinja2.Environment) -> jinja2.Environment:
    env.filters.update(wrap=wrap, code=code, first_name=first_name)
    return env


_ENV = add_filters(jinja2.Environment(
    loader=jinja2.PackageLoader("bot.reply", TEMPLATES), autoescape=False,
    undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    keep_trailing_newline=True))


def render(name: str, **view) -> str:
    """The text of mail template ``name`` (e.g. "report.txt"), without its last newline."""
    return _ENV.get_template(name).render(**view).rstrip("\n")


def template_names() -> list[str]:
    return sorted(_ENV.list_templates(extensions=["txt"]))


def compile_all() -> list[str]:
    """Compile every mail template (a syntax error raises); returns their names."""
    names = template_names()
    for name in names:
        _ENV.get_template(name)
    return names
