"""The portfolio as Markdown and as one self-contained HTML page.

The pages' structure is one pair of templates beside this module (`portfolio_pages/page.md.j2`,
`page.html.j2`); every word on them comes from the locale's `prompts/<locale>/portfolio/words.j2`
(headings, and the names of levels, categories and statuses).

HTML is autoescaped, so a student's `<script>` is shown as text; Markdown gets its own escaping
(`md`), so their `*`, `#` or `<b>` stays what they typed. Neither evaluates a value as a template:
a `{{ }}` a student wrote is text. The page's pictures arrive as data: URIs, so it stands alone.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import jinja2

from core.render.templates import LOCALES, PROMPTS_DIR, format_day

PAGES = Path(__file__).parent / "portfolio_pages"
FORMATS = {"md": "page.md.j2", "html": "page.html.j2"}
MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~&-])")


def markdown_text(value: object) -> str:
    """A value as literal Markdown text on one line: every character that could mean markup is escaped."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(value).split()))


@lru_cache(maxsize=None)
def environment(locale: str, root: Path = PROMPTS_DIR) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(root / locale / "portfolio"),
                                    jinja2.FileSystemLoader(PAGES)]),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["day"] = lambda value: format_day(value, locale)
    env.filters["md"] = markdown_text
    return env


def render_portfolio(context: dict, locale: str, fmt: str) -> str:
    """The portfolio in `fmt` ("md" or "html") and `locale` (English when it has none)."""
    locale = locale if locale in LOCALES else LOCALES[0]
    return environment(locale).get_template(FORMATS[fmt]).render({**context, "locale": locale})
