"""Every user-facing sentence is a Jinja2 template under `prompts/<locale>/`."""

from __future__ import annotations

import tomllib
from datetime import date
from functools import cache
from pathlib import Path

import jinja2
from babel.dates import format_date

import prompts
from core.render.lexicon import Lexicon, SafetyWatch
from core.domain.messages import Button, Outbound, Rendered

PROMPTS_DIR = Path(prompts.__file__).parent
LOCALES = ("en", "es")
DEFAULT_LOCALE = "en"


def format_day(value: date | str, locale: str) -> str:
    """A day as people say it in `locale`: "Thursday, Nov 26" / "jueves, 26 nov"."""
    day = date.fromisoformat(value) if isinstance(value, str) else value
    return format_date(day, "EEEE, d MMM" if locale == "es" else "EEEE, MMM d", locale=locale)


class Catalog:
    """The templates, button labels and listening words of every locale, loaded once."""

    def __init__(self, root: Path = PROMPTS_DIR):
        self.root = root
        self._envs = {locale: self._environment(root, locale) for locale in LOCALES}
        self._labels = {
            locale: {
                key: self._envs[locale].from_string(value)
                for key, value in tomllib.loads((root / locale / "labels.toml").read_text("utf-8")).items()
            }
            for locale in LOCALES
        }
        self.lexicons = {locale: Lexicon.load(root / locale / "lexicon.toml") for locale in LOCALES}
        self.safety = SafetyWatch(self.lexicons.values())

    @staticmethod
    def _environment(root: Path, locale: str) -> jinja2.Environment:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(root / locale),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # plain chat text; a variable's value is never evaluated as a template
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters["day"] = lambda value: format_day(value, locale)
        return env

    def lexicon(self, locale: str) -> Lexicon:
        return self.lexicons.get(locale) or self.lexicons[DEFAULT_LOCALE]

    def env(self, locale: str) -> jinja2.Environment:
        """The Jinja2 environment of `locale`, falling back to English."""
        return self._envs.get(locale) or self._envs[DEFAULT_LOCALE]

    def text(self, template: str, locale: str, context: dict) -> str:
        """Render `prompts/<locale>/<template>.j2`."""
        return self.env(locale).get_template(template + ".j2").render(context).strip()

    def label(self, key: str, locale: str, context: dict | None = None) -> str:
        """Render a button label from `labels.toml`."""
        labels = self._labels.get(locale) or self._labels[DEFAULT_LOCALE]
        return labels[key].render(context or {})

    def render(self, message: Outbound, locale: str) -> Rendered:
        """Turn a neutral outbound message into text and labelled buttons."""
        return Rendered(
            text=self.text(message.template, locale, message.context),
            buttons=tuple(self._button(button, locale) for button in message.buttons),
        )

    def _button(self, button: Button, locale: str) -> tuple[str, str]:
        return self.label(button.label, locale, button.context), button.payload

    def template_names(self, locale: str) -> list[str]:
        """Every template of `locale`, without the `.j2` suffix."""
        base = self.root / locale
        return sorted(str(p.relative_to(base).with_suffix("")) for p in base.rglob("*.j2"))

    def label_keys(self, locale: str) -> list[str]:
        return sorted(self._labels[locale])


@cache
def catalog() -> Catalog:
    """The installed prompts, loaded once per process (read-only)."""
    return Catalog()
